"""The operator's Prometheus metrics, labelled by QueueScaler (namespace, name)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

BACKLOG = Gauge(
    "operator_queue_backlog_messages",
    "Messages in the QueueScaler's queue at the last reconcile, by state",
    ["namespace", "queuescaler", "state"],
)
DESIRED = Gauge(
    "operator_desired_replicas",
    "Replicas the scaling decision asked for at the last reconcile",
    ["namespace", "queuescaler"],
)
CURRENT = Gauge(
    "operator_current_replicas",
    "Replicas of the target Deployment after the last reconcile",
    ["namespace", "queuescaler"],
)
SCALE_EVENTS = Counter(
    "operator_scale_events_total",
    "Changes made to a target Deployment's replica count",
    ["namespace", "queuescaler", "direction"],
)
ERRORS = Counter(
    "operator_reconcile_errors_total",
    "Reconciles that failed and were retried later, by reason",
    ["namespace", "queuescaler", "reason"],
)
RECONCILE_SECONDS = Histogram(
    "operator_reconcile_duration_seconds",
    "Time of one reconcile: queue attributes, Deployment, pods when scaling in, patches",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

_STATES = ("visible", "in_flight", "delayed")
_DIRECTIONS = ("up", "down")
_seen_error_reasons: dict[tuple[str, str], set[str]] = {}


def record_error(namespace: str, name: str, reason: str) -> None:
    _seen_error_reasons.setdefault((namespace, name), set()).add(reason)
    ERRORS.labels(namespace, name, reason).inc()


def forget(namespace: str, name: str) -> None:
    """Drop a deleted QueueScaler's series, so dashboards do not show it forever."""
    for state in _STATES:
        _remove(BACKLOG, namespace, name, state)
    _remove(DESIRED, namespace, name)
    _remove(CURRENT, namespace, name)
    for direction in _DIRECTIONS:
        _remove(SCALE_EVENTS, namespace, name, direction)
    for reason in _seen_error_reasons.pop((namespace, name), set()):
        _remove(ERRORS, namespace, name, reason)


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
