"""One video, one trace: the upload request, the job the outbox sends, the processor's attempt
and the events the upload worker records all share the trace id the client started, each span
the child of the hop before it (W3C trace context in the request's header, the outbox row and the
SQS messages' attributes). The three processes run in this one: the upload API and its worker
(their app lifespans), the processor (its app lifespan) with the real ffmpeg, on the real
PostgreSQL and moto's S3 and SQS."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from polling import eventually

from risingstars.dev import clips, infra
from risingstars.dev.tokens import AUDIENCE, ISSUER, TokenFactory
from risingstars.kit import db, logs, tracing
from risingstars.kit.tokens import TokenVerifier
from risingstars.processor import app as processor_app
from risingstars.processor import settings as processor_settings
from risingstars.upload import outbox
from risingstars.upload.__main__ import MIGRATIONS
from risingstars.upload.app import create_app
from risingstars.upload.settings import Settings
from risingstars.upload.worker import create_worker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Small and short (the service's limits are lowered to take it): the trace, not the
    # encoding, is under test.
    return clips.make_clip(tmp_path_factory.mktemp("trace") / "small.mp4", size="320x240")


@contextlib.asynccontextmanager
async def _system(
    database_url: str, aws: infra.AWSResources, moto_url: str, work_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenFactory, Any]]:
    await db.migrate(database_url, "upload", MIGRATIONS)
    settings = Settings(
        database_url=database_url,
        jwks_url="http://127.0.0.1:9/.well-known/jwks.json",
        s3_bucket=aws.bucket,
        jobs_queue_url=aws.jobs_queue_url,
        events_queue_url=aws.events_queue_url,
        aws_endpoint_url=moto_url,
        drain_seconds=0,
        outbox_poll_seconds=0.2,
        events_wait_seconds=1,
        db_pool_size=10,
        min_duration_seconds=1,
        min_short_side_px=240,
    )
    work_dir.mkdir()
    processor = processor_settings.Settings(
        s3_bucket=aws.bucket,
        jobs_queue_url=aws.jobs_queue_url,
        events_queue_url=aws.events_queue_url,
        aws_endpoint_url=moto_url,
        drain_seconds=0.0,
        receive_wait_seconds=1,
        work_dir=str(work_dir),
    )
    tokens = TokenFactory()
    api = create_app(
        settings, verifier=TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=tokens.jwks)
    )
    apps = (api, create_worker(settings), processor_app.create_app(processor))
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api), base_url="http://upload.test", timeout=60
            )
        )
        yield client, tokens, api


def _by_name(spans: list[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_one_videos_spans_form_one_trace_across_the_three_processes(
    database_url, aws, moto_url, tmp_path, clip, spans
) -> None:
    async with _system(database_url, aws, moto_url, tmp_path / "work") as (client, tokens, _):
        headers = tokens.headers(str(uuid.uuid4())) | {
            "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
        }
        with clip.open("rb") as f:
            answer = await client.post(
                "/api/videos/upload",
                headers=headers,
                files={"video_file": ("ok.mp4", f, "video/mp4")},
                data={"title": "Una jugada"},
            )
        assert answer.status_code == 201, answer.text
        video_id = answer.json()["video_id"]

        async def recorded() -> bool:
            names = {s.name for s in spans.get_finished_spans()}
            return "event apply" in names and any(
                s.name == "event apply" and s.attributes.get("event.type") == "processed"
                for s in spans.get_finished_spans()
            )

        await eventually(recorded, timeout=180, what="the processed event recorded")
        detail = await client.get(f"/api/videos/{video_id}", headers=headers)
        assert detail.json()["status"] == "processed"

    mine = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]
    named = _by_name(mine)
    (request,) = named["POST /api/videos/upload"]
    (send,) = named["jobs send"]
    (job,) = named["job process"]
    (started,) = named["event started send"]
    (processed,) = named["event processed send"]
    applied = {s.attributes["event.type"]: s for s in named["event apply"]}
    # upload -> stored -> queued -> processed -> recorded, each hop the child of the one before.
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN
    assert request.kind.name == "SERVER"
    assert [e.name for e in request.events] == ["stored"]
    assert request.attributes["video.id"] == video_id
    assert send.parent.span_id == request.context.span_id and send.kind.name == "PRODUCER"
    assert job.parent.span_id == send.context.span_id and job.kind.name == "CONSUMER"
    assert job.attributes["video.id"] == video_id
    assert started.parent.span_id == processed.parent.span_id == job.context.span_id
    assert applied["started"].parent.span_id == started.context.span_id
    assert applied["processed"].parent.span_id == processed.context.span_id
    assert applied["processed"].attributes["video.id"] == video_id


async def test_a_job_the_relay_sends_later_continues_the_trace_of_its_upload(
    database_url, aws, moto_url, tmp_path, spans
) -> None:
    """The request could not send the job (SQS away): the row keeps the request's trace
    context, and the relay's send, whenever it happens, joins that trace."""
    await db.migrate(database_url, "upload", MIGRATIONS)
    pool = await db.create_pool(database_url, max_size=2)
    try:
        async with tracing_clients(moto_url) as sqs:
            box = outbox.Outbox(
                pool, sqs, None, bucket=aws.bucket, jobs_queue_url=aws.jobs_queue_url,
                grace_seconds=0,
            )  # fmt: skip
            video_id = uuid.uuid4()
            with tracing.tracer().start_as_current_span("POST /api/videos/upload") as request:
                async with pool.acquire() as conn, conn.transaction():
                    await box.add(conn, outbox.JOB, video_id, outbox.job_message(video_id))
            stored = await pool.fetchval("SELECT traceparent FROM outbox")
            assert stored.split("-")[1:3] == [
                format(request.get_span_context().trace_id, "032x"),
                format(request.get_span_context().span_id, "016x"),
            ]
            assert await box.relay_once() == 1
            response = await sqs.receive_message(
                QueueUrl=aws.jobs_queue_url, MessageAttributeNames=tracing.MESSAGE_ATTRIBUTES
            )
            (message,) = response["Messages"]
            assert json.loads(message["Body"])["video_id"] == str(video_id)
    finally:
        await pool.close()
    (send,) = [s for s in spans.get_finished_spans() if s.name == "jobs send"]
    assert send.context.trace_id == request.get_span_context().trace_id
    assert send.parent.span_id == request.get_span_context().span_id
    carried = message["MessageAttributes"]["traceparent"]["StringValue"]
    assert carried.split("-")[2] == format(send.context.span_id, "016x")


@contextlib.asynccontextmanager
async def tracing_clients(endpoint: str) -> AsyncIterator[Any]:
    from risingstars.kit import aws as kit_aws
    from risingstars.kit.settings import AWSSettings

    async with kit_aws.client("sqs", AWSSettings(aws_endpoint_url=endpoint)) as sqs:
        yield sqs


def test_log_lines_carry_the_trace_and_span_ids_of_the_current_span(spans) -> None:
    formatter = logs.JSONFormatter("upload")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", (), None)
    assert "trace_id" not in json.loads(formatter.format(record))
    with tracing.tracer().start_as_current_span("work") as span:
        entry = json.loads(formatter.format(record))
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert entry["span_id"] == format(span.get_span_context().span_id, "016x")


def test_spans_are_exported_over_otlp_only_when_an_endpoint_is_configured() -> None:
    assert not tracing.exporting({})
    assert tracing.exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.exporting({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
