"""The QueueScaler custom resource: its API coordinates and its spec, parsed and checked.

The CRD (charts/rising-stars/crds/queuescaler.yaml) applies the same defaults on the API server;
they are repeated here so an object created before a default existed, or served by an emulator,
means the same thing. A test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from risingstars.operator.decision import Policy

GROUP = "risingstars.io"
VERSION = "v1alpha1"
PLURAL = "queuescalers"
KIND = "QueueScaler"

DEFAULTS: dict[str, Any] = {
    "targetBacklogPerReplica": 5,
    "countInFlight": True,
    "countDelayed": False,
    "minReplicas": 1,
    "activationBacklog": 0,
    "scaleDownStabilizationSeconds": 300,
    "cooldownSeconds": 300,
    "pollingIntervalSeconds": 15,
}
BUSY_POD_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "metricsPort": 8080,
    "metricsPath": "/metrics",
}

# sqs.<region>.amazonaws.com (and .com.cn), the host of every real SQS queue URL.
_SQS_HOST = re.compile(r"^(?:https?://)?sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/", re.I)


class SpecError(ValueError):
    """The QueueScaler's spec cannot be acted on; the message says which field and why."""


@dataclasses.dataclass(frozen=True)
class QueueRef:
    url: str | None
    name: str | None
    region: str | None
    endpoint_url: str | None

    def region_or(self, default: str) -> str:
        if self.region:
            return self.region
        if self.url:
            found = _SQS_HOST.match(self.url)
            if found:
                return found.group(1)
        return default

    def describe(self) -> str:
        return self.url or f"queue {self.name}"


@dataclasses.dataclass(frozen=True)
class BusyPodProtection:
    enabled: bool
    metrics_port: int
    metrics_path: str
    # The longest a job can run: when the pods' termination grace period covers it, busy pods
    # may go too (their jobs finish during the grace period). Unset: only idle pods go.
    max_job_seconds: int | None


@dataclasses.dataclass(frozen=True)
class ScalerSpec:
    target: str
    queue: QueueRef
    count_in_flight: bool
    count_delayed: bool
    polling_interval_seconds: float
    policy: Policy
    busy_pods: BusyPodProtection


def _int(spec: Mapping[str, Any], key: str, minimum: int, path: str = "spec") -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{path}.{key} must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"{path}.{key} must be at least {minimum}, got {value}")
    return value


def _bool(spec: Mapping[str, Any], key: str, path: str = "spec") -> bool:
    value = spec.get(key)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key} must be true or false, got {value!r}")
    return value


def _str(spec: Mapping[str, Any], key: str, path: str) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SpecError(f"{path}.{key} must be a string, got {value!r}")
    return value


def parse(raw: Mapping[str, Any]) -> ScalerSpec:
    spec = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}

    target_ref = spec.get("scaleTargetRef") or {}
    target = (
        _str(target_ref, "name", "spec.scaleTargetRef") if isinstance(target_ref, Mapping) else None
    )
    if not target:
        raise SpecError("spec.scaleTargetRef.name (the Deployment to scale) is required")

    queue_raw = spec.get("queue") or {}
    if not isinstance(queue_raw, Mapping):
        raise SpecError("spec.queue must be an object with url or name")
    queue = QueueRef(
        url=_str(queue_raw, "url", "spec.queue"),
        name=_str(queue_raw, "name", "spec.queue"),
        region=_str(queue_raw, "region", "spec.queue"),
        endpoint_url=_str(queue_raw, "endpointUrl", "spec.queue"),
    )
    if not queue.url and not queue.name:
        raise SpecError("spec.queue needs url or name")

    if "maxReplicas" not in spec:
        raise SpecError("spec.maxReplicas is required")
    min_replicas = _int(spec, "minReplicas", 0)
    max_replicas = _int(spec, "maxReplicas", 1)
    if max_replicas < min_replicas:
        raise SpecError(
            f"spec.maxReplicas ({max_replicas}) is below spec.minReplicas ({min_replicas})"
        )
    policy = Policy(
        target_per_replica=_int(spec, "targetBacklogPerReplica", 1),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        activation_backlog=_int(spec, "activationBacklog", 0),
        stabilization_seconds=_int(spec, "scaleDownStabilizationSeconds", 0),
        cooldown_seconds=_int(spec, "cooldownSeconds", 0),
    )

    busy_raw = spec.get("busyPodProtection") or {}
    if not isinstance(busy_raw, Mapping):
        raise SpecError("spec.busyPodProtection must be an object")
    busy = {**BUSY_POD_DEFAULTS, **{k: v for k, v in busy_raw.items() if v is not None}}
    path = "spec.busyPodProtection"
    metrics_path = _str(busy, "metricsPath", path) or "/metrics"
    if not metrics_path.startswith("/"):
        raise SpecError(f"{path}.metricsPath must start with /, got {metrics_path!r}")
    busy_pods = BusyPodProtection(
        enabled=_bool(busy, "enabled", path),
        metrics_port=_int(busy, "metricsPort", 1, path),
        metrics_path=metrics_path,
        max_job_seconds=_int(busy, "maxJobSeconds", 0, path) if "maxJobSeconds" in busy else None,
    )
    if busy_pods.metrics_port > 65535:
        raise SpecError(f"{path}.metricsPort must be a port number, got {busy_pods.metrics_port}")

    return ScalerSpec(
        target=target,
        queue=queue,
        count_in_flight=_bool(spec, "countInFlight"),
        count_delayed=_bool(spec, "countDelayed"),
        polling_interval_seconds=float(_int(spec, "pollingIntervalSeconds", 1)),
        policy=policy,
        busy_pods=busy_pods,
    )
