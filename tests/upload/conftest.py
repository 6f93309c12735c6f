"""Fixtures for the upload service: real MP4 clips made with ffmpeg (once per session), the
service in-process on a fresh database and fresh AWS resources, tokens, and S3/SQS/DB probes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from polling import eventually

from risingstars.dev import clips
from risingstars.dev.tokens import AUDIENCE, ISSUER, TokenFactory
from risingstars.kit import db
from risingstars.kit.tokens import TokenVerifier
from risingstars.upload.__main__ import MIGRATIONS
from risingstars.upload.app import create_app
from risingstars.upload.settings import MiB, Settings
from risingstars.upload.worker import create_worker

# name: (lavfi picture, picture size, frame rate, seconds, other encoder options)
SMALL = ("-crf", "40")  # a couple of MB: one part
CLIP_SPECS: dict[str, tuple[str, str, float, float, tuple[str, ...]]] = {
    "ok": ("testsrc2", "1920x1080", 5, 25, SMALL),
    "vertical": ("testsrc2", "1080x1920", 5, 21, SMALL),
    # About 12.5 MB: three 5 MiB parts.
    "big": ("testsrc2", "1920x1080", 10, 25, ("-b:v", "4M")),
    "short_10s": ("testsrc2", "1920x1080", 5, 10, SMALL),
    "long_90s": ("color=c=blue", "1920x1080", 2, 90, ()),
    "hd_720p": ("testsrc2", "1280x720", 5, 25, SMALL),
}

PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
) * 200


def _clip(name: str, faststart: bool = False) -> Callable[[Path], Path]:
    picture, size, fps, seconds, options = CLIP_SPECS[name]
    return lambda path: clips.make_clip(
        path, picture=picture, size=size, fps=fps, seconds=seconds,
        video=("-pix_fmt", "yuv420p", *options), faststart=faststart,
    )  # fmt: skip


def _first_half(source: Path, target: Path) -> None:
    whole = source.read_bytes()
    target.write_bytes(whole[: len(whole) // 2])


class Clips(clips.Cache):
    """Real MP4 files, each made on first use and kept for the session."""

    def __init__(self, directory: Path) -> None:
        recipes = {name: _clip(name) for name in CLIP_SPECS}
        recipes.update(
            ok_faststart=_clip("ok", faststart=True),
            long_90s_faststart=_clip("long_90s", faststart=True),
            pdf=lambda path: path.write_bytes(PDF),
            truncated=lambda path: _first_half(self["big"], path),
        )
        super().__init__(directory, recipes)


@pytest.fixture(name="clips", scope="session")
def clips_fixture(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
async def upload_db(database_url: str) -> str:
    await db.migrate(database_url, "upload", MIGRATIONS)
    return database_url


@pytest.fixture
def make_settings(upload_db: str, aws: Any, moto_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": upload_db,
            "jwks_url": "http://127.0.0.1:9/.well-known/jwks.json",  # tests inject the keys
            "s3_bucket": aws.bucket,
            "jobs_queue_url": aws.jobs_queue_url,
            "events_queue_url": aws.events_queue_url,
            "aws_endpoint_url": moto_url,
            "drain_seconds": 0,
            "rankings_cache_seconds": 0,
            "outbox_poll_seconds": 0.2,
            "outbox_max_backoff_seconds": 1,
            "events_wait_seconds": 1,
            # The smallest parts S3 takes, so modest clips exercise multipart uploads.
            "upload_part_bytes": 5 * MiB,
            "upload_buffer_bytes": 20 * MiB,
            "db_pool_size": 60,
            # Opening dozens of connections at once on a loaded 2-core machine can take longer
            # than the production wait (5 s); the tests of that wait set their own.
            "db_acquire_timeout_seconds": 30,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@dataclasses.dataclass
class Service:
    app: Any
    client: httpx.AsyncClient
    settings: Settings
    tokens: TokenFactory
    # The worker process's app (outbox relay, events, cleanup), in-process too; None if not run.
    worker_app: Any = None
    # The caller when a test does not name one.
    user: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    @property
    def worker(self) -> Any:
        return self.worker_app.state.worker

    def headers(self, sub: str | None = None, **claims: Any) -> dict[str, str]:
        return self.tokens.headers(sub or self.user, **claims)

    async def upload(
        self, path: Path, *, title: str = "Mi mejor jugada", headers: dict | None = None
    ) -> httpx.Response:
        with path.open("rb") as f:
            return await self.client.post(
                "/api/videos/upload",
                headers=headers if headers is not None else self.headers(),
                files={"video_file": (path.name, f, "video/mp4")},
                data={"title": title},
            )

    async def sql(self, query: str, *args: Any) -> Any:
        return await self.runtime.pool.fetchval(query, *args)

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self.runtime.pool.fetch(query, *args)


@pytest.fixture
def service(make_settings: Callable[..., Settings], tokens: TokenFactory):
    """`async with service(**settings_overrides) as svc:` runs the API and the worker
    in-process (`worker=False`: the API alone)."""

    @contextlib.asynccontextmanager
    async def start(*, worker: bool = True, **overrides: Any) -> AsyncIterator[Service]:
        settings = make_settings(**overrides)
        verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=tokens.jwks)
        app = create_app(settings, verifier=verifier)
        worker_app = create_worker(settings) if worker else None
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            if worker_app is not None:
                await stack.enter_async_context(worker_app.router.lifespan_context(worker_app))
            transport = httpx.ASGITransport(app=app)
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://upload.test", timeout=60)
            )
            yield Service(app, client, settings, tokens, worker_app)

    return start


@pytest.fixture
async def svc(service) -> AsyncIterator[Service]:
    async with service() as running:
        yield running


@pytest.fixture
def s3(moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_url)


@pytest.fixture
def sqs(moto_url: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_url)


def open_uploads(s3: Any, bucket: str) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def receive_jobs(sqs: Any, queue_url: str) -> list[dict]:
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    messages = response.get("Messages", [])
    for m in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def multipart_body(
    parts: list[tuple[str, str | None, Iterator[bytes] | bytes]], boundary: str = "b0undary42"
) -> tuple[str, AsyncIterator[bytes]]:
    """A multipart/form-data body streamed from generators (no Content-Length)."""

    def body() -> Iterator[bytes]:
        for name, filename, content in parts:
            disposition = f'form-data; name="{name}"'
            if filename:
                disposition += f'; filename="{filename}"'
            yield (
                f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                + ("Content-Type: video/mp4\r\n" if filename else "")
                + "\r\n"
            ).encode()
            if isinstance(content, bytes):
                yield content
            else:
                yield from content
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    async def stream() -> AsyncIterator[bytes]:
        for chunk in body():
            yield chunk

    return f"multipart/form-data; boundary={boundary}", stream()


def new_id() -> str:
    return str(uuid.uuid4())


def _queue_empty(sqs: Any, url: str) -> bool:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        attrs["ApproximateNumberOfMessages"]
        == attrs["ApproximateNumberOfMessagesNotVisible"]
        == "0"
    )


async def send_events(svc: Service, sqs: Any, *events: dict | str) -> None:
    """The processor's events (dicts, or raw text) into the events queue, applied by the
    worker: consumed means deleted, nothing visible or in flight."""
    url = svc.settings.events_queue_url
    for event in events:
        body = event if isinstance(event, str) else json.dumps(event)
        sqs.send_message(QueueUrl=url, MessageBody=body)
    await eventually(lambda: _queue_empty(sqs, url), what="events consumed")


def processed_event(video_id: str, **fields: Any) -> dict:
    """A `processed` event as an older processor sends it (no version, no service time)."""
    return {
        "type": "processed",
        "video_id": video_id,
        "processed_key": f"processed/{video_id}.mp4",
        "thumbnail_key": f"processed/{video_id}.jpg",
        "duration_seconds": 30.0,
        "size_bytes": 1234,
    } | fields


@pytest.fixture
def tools() -> Any:
    """The helpers above, for test modules (conftest modules are not importable)."""
    import types

    return types.SimpleNamespace(
        open_uploads=open_uploads,
        keys=keys,
        eventually=eventually,
        receive_jobs=receive_jobs,
        multipart_body=multipart_body,
        new_id=new_id,
        send_events=send_events,
        processed_event=processed_event,
        PDF=PDF,
    )
