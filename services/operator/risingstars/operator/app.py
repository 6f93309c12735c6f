"""Wiring: kopf's settings, the shared clients, logging, and the operator coroutine that
`python -m risingstars.operator`, the tests and the benchmark all run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

import kopf

from risingstars.kit import logs
from risingstars.operator import (
    handlers,  # noqa: F401  (registers the handlers)
    health,
)
from risingstars.operator.busypods import PodMetricsReader
from risingstars.operator.kube import KubeAPI
from risingstars.operator.queue import QueueReader
from risingstars.operator.reconcile import Deps
from risingstars.operator.settings import Settings

# Named when a timer did the reconciling; kept, because QueueScalers in clusters carry it.
FINALIZER = "risingstars.io/queuescaler-timer"
# Watch requests end server-side before the client gives up, and are re-opened at once.
WATCH_SERVER_TIMEOUT = 300
WATCH_CLIENT_TIMEOUT = 330


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    options = kopf.OperatorSettings()
    # One replica (the chart's Deployment uses strategy Recreate) instead of peering, which
    # would need cluster-wide peering CRDs and RBAC for them.
    options.peering.standalone = True
    options.peering.mandatory = False
    # No watching of CRDs and namespaces cluster-wide: the served namespaces are named, so a
    # namespaced Role is all the operator needs.
    options.scanning.disabled = True
    options.watching.server_timeout = WATCH_SERVER_TIMEOUT
    options.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    options.watching.connect_timeout = 10
    options.networking.request_timeout = 30
    options.networking.connect_timeout = 10
    options.posting.reporting_component = "risingstars-operator"
    options.posting.reporting_instance = settings.pod_name or socket.gethostname()
    options.persistence.finalizer = FINALIZER
    return options


def build_memo(settings: Settings) -> kopf.Memo:
    deps = Deps(
        kube=KubeAPI(),
        queues=QueueReader(
            default_region=settings.aws_region, default_endpoint_url=settings.aws_endpoint_url
        ),
        pod_metrics=PodMetricsReader(),
    )
    return kopf.Memo(deps=deps)


class _KopfRecordFilter(logging.Filter):
    """kopf's records carry its settings object and an object reference as extras: keep the
    reference as `object`, drop the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = record.__dict__.pop("k8s_ref", None)
        if ref:
            record.__dict__["object"] = f"{ref.get('namespace') or ''}/{ref.get('name') or ''}"
        record.__dict__.pop("settings", None)
        record.__dict__.pop("k8s_skip", None)
        return True


def setup_logging(level: str) -> None:
    logs.setup("operator", level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_KopfRecordFilter())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def operator(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    health_port: int | None = None,
) -> None:
    """Run kopf until stopped; with `health_port`, serve /healthz and /readyz there."""
    namespaces = list(settings.watch_namespaces)
    memo = build_memo(settings)
    started = ready_flag if ready_flag is not None else asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        if health_port is not None:
            checks = health.Health(memo.deps.kube, started.is_set)
            await stack.enter_async_context(health.serving(checks, health_port))
        await kopf.operator(
            settings=kopf_settings(settings),
            memo=memo,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            stop_flag=stop_flag,
            ready_flag=started,
        )
