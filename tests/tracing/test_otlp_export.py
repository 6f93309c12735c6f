"""A service started as in production (`python -m risingstars.processor`, `python -m
risingstars.auth`) with OTEL_EXPORTER_OTLP_ENDPOINT set sends its spans there over OTLP/HTTP, with
the trace ids its log lines carry: here the collector is a small HTTP server of the test's own."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import ClassVar

import boto3
import httpx
from polling import eventually

from risingstars.auth import keys
from risingstars.dev import clips, infra

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Collector.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_spans_reach_the_configured_otlp_endpoint(aws, moto_url, tmp_path: Path) -> None:
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    _Collector.received = []
    video_id = str(uuid.uuid4())
    source = clips.make_clip(tmp_path / "tiny.mp4", size="320x240", video=(), faststart=True)
    client = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    boto3.client("s3", **client).put_object(
        Bucket=aws.bucket, Key=f"originals/{video_id}.mp4", Body=source.read_bytes()
    )
    job = {"type": "process", "video_id": video_id, "source_key": f"originals/{video_id}.mp4",
           "processed_key": f"processed/{video_id}.mp4",
           "thumbnail_key": f"processed/{video_id}.jpg"}  # fmt: skip
    boto3.client("sqs", **client).send_message(
        QueueUrl=aws.jobs_queue_url,
        MessageBody=json.dumps(job),
        MessageAttributes={
            "traceparent": {
                "DataType": "String",
                "StringValue": f"00-{TRACE_ID}-b7ad6b7169203331-01",
            }
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ) | infra.AWS_DUMMY_ENV | {
        "AWS_ENDPOINT_URL": moto_url, "S3_BUCKET": aws.bucket,
        "JOBS_QUEUE_URL": aws.jobs_queue_url, "EVENTS_QUEUE_URL": aws.events_queue_url,
        "PORT": str(infra.free_port()), "DRAIN_SECONDS": "0", "RECEIVE_WAIT_SECONDS": "1",
        "WORK_DIR": str(work),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }  # fmt: skip
    with (tmp_path / "processor.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "risingstars.processor"], env=env, stdout=log, stderr=log
        )
    try:

        def exported() -> bool:
            bodies = [body for path, body in _Collector.received if path == "/v1/traces"]
            return any(b"job process" in b and bytes.fromhex(TRACE_ID) in b for b in bodies)

        await eventually(exported, timeout=120, what="the job's span at the collector")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        collector.shutdown()
    lines = [json.loads(line) for line in (tmp_path / "processor.log").read_text().splitlines()]
    finished = [e for e in lines if e.get("message") == "job finished"]
    assert finished and finished[0]["trace_id"] == TRACE_ID


async def test_auth_exports_its_request_spans_and_logs_their_trace_ids(
    database_url: str, tmp_path: Path
) -> None:
    # auth's entry point installs the tracer provider too: a failed login's request span gets a
    # trace of its own (the client sent no traceparent), its log line carries that trace id and
    # the span reaches the collector.
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    _Collector.received = []
    keys.generate(tmp_path / "keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_"))} | {
        "DATABASE_URL": database_url, "AUTH_SIGNING_KEYS_DIR": str(tmp_path / "keys"),
        "PORT": str(infra.free_port()), "DRAIN_SECONDS": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }  # fmt: skip
    migrate = [sys.executable, "-m", "risingstars.auth", "migrate"]
    assert subprocess.run(migrate, env=env, capture_output=True, timeout=60).returncode == 0
    log_path = tmp_path / "auth.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "risingstars.auth"], env=env, stdout=log, stderr=log
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['PORT']}") as client:

            async def ready() -> bool:
                assert proc.poll() is None, log_path.read_text()
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=30, what="auth to become ready")
            credentials = {"email": "nadie@example.com", "password": "Vuelo-Alto-2024"}
            assert (await client.post("/api/auth/login", json=credentials)).status_code == 401

        def failed_login() -> dict | None:
            for line in log_path.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("message") == "login failed":
                    return entry
            return None

        entry = await eventually(failed_login, what="auth's `login failed` line")
        assert "trace_id" in entry, entry
        trace_id = bytes.fromhex(entry["trace_id"])

        def exported() -> bool:
            bodies = [body for path, body in _Collector.received if path == "/v1/traces"]
            return any(b"/api/auth/login" in b and trace_id in b for b in bodies)

        await eventually(exported, timeout=30, what="the login's span at the collector")
    finally:
        infra.stop(proc, timeout=30)
        collector.shutdown()
