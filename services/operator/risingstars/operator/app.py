"""Wiring: kopf's settings, the shared clients, logging, and the operator coroutine that
`python -m risingstars.operator`, the tests and the benchmark all run."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading

import kopf

from risingstars.kit import logs
from risingstars.operator import handlers  # noqa: F401  (registers the handlers)
from risingstars.operator.busypods import PodMetricsReader
from risingstars.operator.kube import KubeAPI
from risingstars.operator.queue import QueueReader
from risingstars.operator.reconcile import Deps
from risingstars.operator.settings import OperatorSettings

FINALIZER = "risingstars.io/queuescaler-timer"
# Watch requests end server-side before the client gives up, and are re-opened at once.
WATCH_SERVER_TIMEOUT = 300
WATCH_CLIENT_TIMEOUT = 330


def kopf_settings(cfg: OperatorSettings) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # One replica (the chart's Deployment uses strategy Recreate) instead of peering, which
    # would need cluster-wide peering CRDs and RBAC for them.
    settings.peering.standalone = True
    settings.peering.mandatory = False
    # No watching of CRDs and namespaces cluster-wide: the served namespaces are named, so a
    # namespaced Role is all the operator needs.
    settings.scanning.disabled = True
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.posting.reporting_component = "risingstars-operator"
    settings.posting.reporting_instance = cfg.pod_name or socket.gethostname()
    settings.persistence.finalizer = FINALIZER
    return settings


def build_memo(cfg: OperatorSettings) -> kopf.Memo:
    deps = Deps(
        kube=KubeAPI(),
        queues=QueueReader(
            default_region=cfg.aws_region, default_endpoint_url=cfg.aws_endpoint_url
        ),
        pod_metrics=PodMetricsReader(),
    )
    return kopf.Memo(deps=deps)


# Per tick and per watch event: they would drown everything else.
_ROUTINE_SUCCESS = re.compile(r"^(Timer 'reconcile'|Handler 'forget_deleted') succeeded\.$")


class _KopfRecordFilter(logging.Filter):
    """kopf's records carry its settings object and an object reference as extras: keep the
    reference as `object`, drop the rest, and drop the routine "... succeeded" lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("kopf") and _ROUTINE_SUCCESS.match(record.getMessage()):
            return False
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
    cfg: OperatorSettings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness_endpoint: str | None = None,
) -> None:
    namespaces = list(cfg.watch_namespaces)
    await kopf.operator(
        settings=kopf_settings(cfg),
        memo=build_memo(cfg),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
