"""Busy-pod protection for scale-in.

A ReplicaSet that shrinks deletes the pods with the lowest
`controller.kubernetes.io/pod-deletion-cost` first (after unscheduled, pending and unready ones).
Before every scale-in, each pod's `processor_jobs_in_flight` gauge is read from its metrics
endpoint and becomes its cost, so idle pods go first; and the scale-in removes no more pods
than are idle, unless the pods' termination grace period outlasts the longest job (then busy
pods finish their jobs while terminating).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
IN_FLIGHT_METRIC = "processor_jobs_in_flight"


@dataclasses.dataclass(frozen=True)
class PodLoad:
    name: str
    in_flight: int | None  # None: its metrics could not be read, so it may be busy
    annotated_cost: str | None

    @property
    def idle(self) -> bool:
        return self.in_flight == 0

    @property
    def cost(self) -> int:
        return 1 if self.in_flight is None else self.in_flight


@dataclasses.dataclass(frozen=True)
class ScaleInPlan:
    replicas: int
    idle: int
    busy: int
    costs: dict[str, str]  # only the pods whose annotation must change
    limited: bool  # busy pods kept more replicas than the decision asked for


def plan_scale_in(
    loads: Iterable[PodLoad], *, current: int, desired: int, busy_may_go: bool
) -> ScaleInPlan:
    loads = list(loads)
    idle = sum(1 for load in loads if load.idle)
    busy = len(loads) - idle
    # Replicas the Deployment asks for but that have no pod yet cost nothing to remove.
    missing = max(0, current - len(loads))
    removable = missing + idle + (busy if busy_may_go else 0)
    replicas = max(desired, current - removable)
    costs = {load.name: str(load.cost) for load in loads if load.annotated_cost != str(load.cost)}
    return ScaleInPlan(replicas, idle, busy, costs, limited=replicas > desired)


def parse_in_flight(text: str) -> int:
    total = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        if family.name == IN_FLIGHT_METRIC:
            for sample in family.samples:
                if sample.name == IN_FLIGHT_METRIC:
                    total += sample.value
                    found = True
    if not found:
        raise ValueError(f"no {IN_FLIGHT_METRIC} in the metrics")
    return max(0, round(total))


def live_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods that count: not already terminating, not finished."""
    return [
        pod
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}
    ]


class PodMetricsReader:
    def __init__(self, *, timeout_seconds: float = 2.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _one(self, pod: Mapping[str, Any], port: int, path: str) -> PodLoad:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        name = meta.get("name", "")
        cost = (meta.get("annotations") or {}).get(DELETION_COST)
        ip = status.get("podIP")
        if status.get("phase") != "Running" or not ip:
            return PodLoad(name, 0, cost)  # not started: runs no job
        host = f"[{ip}]" if ":" in ip else ip
        try:
            async with self._open().get(f"http://{host}:{port}{path}") as response:
                response.raise_for_status()
                return PodLoad(name, parse_in_flight(await response.text()), cost)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return PodLoad(name, None, cost)

    async def read(self, pods: Iterable[Mapping[str, Any]], port: int, path: str) -> list[PodLoad]:
        return list(await asyncio.gather(*(self._one(pod, port, path) for pod in pods)))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
