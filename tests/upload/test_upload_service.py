"""The service as it runs in a container: `python -m risingstars.upload migrate|serve` with its
environment, uvicorn on a real socket, readiness, and clients that hang up mid-upload."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from risingstars.dev import infra
from risingstars.dev.tokens import serve_jwks
from risingstars.kit.tokens import TokenVerifier
from risingstars.upload import outbox
from risingstars.upload.app import create_app
from risingstars.upload.settings import MiB


@pytest.fixture
def jwks_url(tokens) -> Iterator[str]:
    with serve_jwks(tokens.jwks) as url:
        yield url


@pytest.fixture
def service_env(upload_db, aws, moto_url, jwks_url) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "S3_"))}
    env.update(
        DATABASE_URL=upload_db,
        JWKS_URL=jwks_url,
        S3_BUCKET=aws.bucket,
        JOBS_QUEUE_URL=aws.jobs_queue_url,
        EVENTS_QUEUE_URL=aws.events_queue_url,
        AWS_ENDPOINT_URL=moto_url,
        PORT=str(infra.free_port()),
        DRAIN_SECONDS="0",
        EVENTS_WAIT_SECONDS="1",
        UPLOAD_PART_BYTES=str(5 * MiB),
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "risingstars.upload", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_applies_once_and_bad_settings_fail_clearly(service_env) -> None:
    assert _run(["migrate"], service_env).returncode == 0
    again = _run(["migrate"], service_env)
    assert again.returncode == 0
    assert "migration applied" not in again.stdout

    broken = {k: v for k, v in service_env.items() if k != "S3_BUCKET"}
    broken["MAX_UPLOAD_BYTES"] = "lots"
    failed = _run(["serve"], broken)
    assert failed.returncode != 0
    assert "S3_BUCKET is required" in failed.stderr
    assert "MAX_UPLOAD_BYTES='lots' is invalid" in failed.stderr


def test_migrate_needs_only_the_database(upload_db, service_env) -> None:
    env = {k: v for k, v in service_env.items() if not k.startswith(("AWS_", "S3_", "JWKS_"))}
    env = {k: v for k, v in env.items() if not k.endswith("_QUEUE_URL")}
    migrated = _run(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert _run(["nonsense"], env).returncode == 2


async def test_the_worker_process_relays_jobs_and_has_its_own_lifecycle(
    service_env, upload_db, sqs, aws, tools
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.upload", "worker"],
        env={**service_env, "OUTBOX_POLL_SECONDS": "0.2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{service_env['PORT']}"
    try:
        infra.wait_until(lambda: _answers(f"{url}/readyz"), 30, "upload worker", proc)
        assert httpx.get(f"{url}/readyz").json()["checks"] == {"database": "ok", "s3": "ok"}
        assert "upload_outbox_backlog" in httpx.get(f"{url}/metrics").text
        # The API is not served here.
        assert httpx.get(f"{url}/api/public/rankings").status_code == 404
        video_id = str(uuid.uuid4())
        conn = await asyncpg.connect(upload_db)
        try:
            await conn.execute(
                "INSERT INTO outbox (kind, video_id, payload) VALUES ('job', $1, $2::jsonb)",
                uuid.UUID(video_id),
                outbox.job_message(uuid.UUID(video_id)),
            )
        finally:
            await conn.close()
        received: list[dict] = []

        def arrived() -> bool:
            received.extend(tools.receive_jobs(sqs, aws.jobs_queue_url))
            return bool(received)

        await tools.eventually(arrived, what="the relayed job")
        assert [job["video_id"] for job in received] == [video_id]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        infra.stop(proc)


@pytest.fixture
def running_service(service_env, upload_db, tmp_path) -> Iterator[str]:
    log = (tmp_path / "upload.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.upload"],
        env=service_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{service_env['PORT']}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        infra.wait_until(ready, 30, "upload service", proc)
        yield url
    finally:
        infra.stop(proc)
        log.close()


async def test_the_served_service_streams_uploads_and_survives_hangups(
    running_service, clips, tokens, s3, aws, tools, upload_db
) -> None:
    url = running_service
    headers = tokens.headers(username="sofia", city="Cali")
    readiness = httpx.get(f"{url}/readyz").json()
    assert readiness["checks"] == {"database": "ok", "s3": "ok", "jwks": "ok"}

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        path = clips["big"]
        with path.open("rb") as f:
            accepted = await client.post(
                "/api/videos/upload",
                headers=headers,
                files={"video_file": ("big.mp4", f, "video/mp4")},
                data={"title": "por la red"},
            )
        assert accepted.status_code == 201, accepted.text
        with clips["pdf"].open("rb") as f:
            refused = await client.post(
                "/api/videos/upload",
                headers=headers,
                files={"video_file": ("doc.mp4", f, "video/mp4")},
                data={"title": "pdf"},
            )
        assert refused.status_code == 400

    # A client that sends half of a multi-part file and hangs up.
    data = path.read_bytes()
    boundary = "hangup"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; '
        f'filename="a.mp4"\r\n\r\n'
    ).encode()
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            (
                "POST /api/videos/upload HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {headers['Authorization']}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + len(data) + 100}\r\n\r\n"
            ).encode()
            + head
            + data[: 7 * MiB]
        )

        def started() -> bool:
            return bool(tools.open_uploads(s3, aws.bucket))

        await tools.eventually(started, what="the multipart upload to start")
    await tools.eventually(lambda: not tools.open_uploads(s3, aws.bucket), what="abort")
    assert tools.keys(s3, aws.bucket) == [f"originals/{accepted.json()['video_id']}.mp4"]
    metrics = httpx.get(f"{url}/metrics").text
    assert (
        'upload_uploads_total{outcome="aborted",path="stream",reason="disconnect"} 1.0' in metrics
    )


def test_sigterm_stops_the_service_cleanly(service_env) -> None:
    service_env["DRAIN_SECONDS"] = "0.2"
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.upload", "serve"],
        env=service_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{service_env['PORT']}"
    try:
        infra.wait_until(lambda: _answers(f"{url}/healthz"), 30, "upload service", proc)
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once shut down: "killed by SIGTERM" after a clean stop.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        infra.stop(proc)
    lines = [json.loads(line) for line in proc.stdout.read().decode().splitlines() if line]
    assert any(entry["message"] == "stopped" for entry in lines)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_readiness_reports_missing_signing_keys(make_settings) -> None:
    settings = make_settings()
    verifier = TokenVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        jwks_url=f"http://127.0.0.1:{infra.free_port()}/jwks",
    )
    app = create_app(settings, verifier=verifier)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == checks["s3"] == "ok"
    assert checks["jwks"].startswith("failing")
