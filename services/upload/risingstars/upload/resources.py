"""What the API and the worker both open, and the readiness checks on them."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import asyncpg
from aiobotocore.config import AioConfig

from risingstars.kit import aws, db
from risingstars.kit.app import Lifecycle
from risingstars.upload.outbox import Outbox
from risingstars.upload.settings import Settings


@dataclasses.dataclass(frozen=True)
class Clients:
    pool: asyncpg.Pool
    s3: Any
    sqs: Any


def _s3_config(settings: Settings) -> Any:
    # Every part in flight needs a connection; SigV4 presigned URLs work in every region.
    return aws.client_config(
        max_pool_connections=max(50, settings.buffer_count * 2), signature_version="s3v4"
    )


def _sqs_config() -> Any:
    # The outbox relay and the events loop retry on their own schedule: fail fast here.
    return aws.client_config().merge(
        AioConfig(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2)
    )


async def open_clients(stack: contextlib.AsyncExitStack, settings: Settings) -> Clients:
    pool = await db.create_pool(
        settings.database_url,
        max_size=settings.db_pool_size,
        acquire_timeout=settings.db_acquire_timeout_seconds,
    )
    stack.push_async_callback(pool.close)
    s3 = await stack.enter_async_context(aws.client("s3", settings, _s3_config(settings)))
    sqs = await stack.enter_async_context(aws.client("sqs", settings.sqs_settings(), _sqs_config()))
    return Clients(pool, s3, sqs)


def outbox(settings: Settings, clients: Clients) -> Outbox:
    return Outbox(
        clients.pool,
        clients.sqs,
        clients.s3,
        bucket=settings.s3_bucket,
        jobs_queue_url=settings.jobs_queue_url,
        grace_seconds=settings.outbox_grace_seconds,
        poll_seconds=settings.outbox_poll_seconds,
        max_backoff_seconds=settings.outbox_max_backoff_seconds,
    )


def add_checks(lifecycle: Lifecycle, settings: Settings, clients: Clients) -> None:
    lifecycle.add_check("database", lambda: db.ping(clients.pool))
    lifecycle.add_check("s3", lambda: clients.s3.head_bucket(Bucket=settings.s3_bucket))
