"""The outbox: a job is never lost while SQS is away, and concurrent relays (replicas) never
send the same row twice at once."""

from __future__ import annotations

import asyncio
import json
import uuid

import boto3

from risingstars.dev import infra
from risingstars.upload import outbox


def _jobs_queue(endpoint: str, name: str) -> tuple[object, str]:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    return sqs, sqs.create_queue(QueueName=name)["QueueUrl"]


async def test_sqs_down_during_an_upload_still_201_and_the_job_arrives_later(
    service, clips, tools, tmp_path
) -> None:
    port = infra.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    # Where the queue will be once SQS is back (moto names queues by account and name).
    queue_url = f"{endpoint}/123456789012/{name}"
    async with service(aws_endpoint_url_sqs=endpoint, jobs_queue_url=queue_url) as svc:
        response = await svc.upload(clips["ok"])
        assert response.status_code == 201
        video_id = response.json()["video_id"]
        row = await svc.runtime.pool.fetchrow("SELECT kind, payload, attempts FROM outbox")
        assert row["kind"] == "job" and json.loads(row["payload"])["video_id"] == video_id
        assert row["attempts"] >= 1  # the in-request attempt failed and was recorded

        async def retried() -> bool:
            return await svc.sql("SELECT attempts FROM outbox") >= 2

        await tools.eventually(retried, what="the relay retrying")

        async def gauge(value: str) -> bool:
            text = (await svc.client.get("/metrics")).text
            return f"upload_outbox_backlog {value}" in text

        await tools.eventually(lambda: gauge("1.0"), what="the backlog gauge at 1")

        with infra.running(infra.start_moto, port=port, log_path=tmp_path / "sqs.log"):
            sqs, created_url = await asyncio.to_thread(_jobs_queue, endpoint, name)
            assert created_url == queue_url
            received: list[dict] = []

            def arrived() -> bool:
                received.extend(tools.receive_jobs(sqs, queue_url))
                return bool(received)

            await tools.eventually(arrived, timeout=30, what="the job reaching the queue")
            assert [job["video_id"] for job in received] == [video_id]
            assert received[0]["source_key"] == f"originals/{video_id}.mp4"

            async def drained() -> bool:
                return await svc.sql("SELECT count(*) FROM outbox") == 0

            await tools.eventually(drained, what="outbox drained")
            # The relay sets the gauge after its transaction commits: the row can be gone a
            # moment before the gauge says so.
            await tools.eventually(lambda: gauge("0.0"), what="the backlog gauge at 0")


async def test_concurrent_relays_send_each_row_once(svc, sqs, tools) -> None:
    pool = svc.runtime.pool
    ids = [uuid.uuid4() for _ in range(35)]
    # Three replicas' relays, besides the worker's own, racing over the same rows.
    relays = [
        outbox.Outbox(pool, svc.runtime.outbox.sqs, svc.runtime.s3, bucket=svc.settings.s3_bucket,
                      jobs_queue_url=svc.settings.jobs_queue_url, grace_seconds=0)
        for _ in range(3)
    ]  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        for video_id in ids:
            await relays[0].add(conn, outbox.JOB, video_id, outbox.job_message(video_id))

    async def drain(relay: outbox.Outbox) -> None:
        while await relay.relay_once():
            pass

    await asyncio.gather(*(drain(r) for r in relays))

    async def drained() -> bool:
        return await svc.sql("SELECT count(*) FROM outbox") == 0

    await tools.eventually(drained, what="outbox drained")
    received: list[dict] = []
    while batch := tools.receive_jobs(sqs, svc.settings.jobs_queue_url):
        received += batch
    assert sorted(job["video_id"] for job in received) == sorted(str(i) for i in ids)
