"""One reconcile of one QueueScaler: read the queue and the Deployment, decide, protect busy
pods, patch the scale subresource, and report through status, Events, metrics and logs.

Level-based and idempotent: every run starts from what the queue and the API say now. Any fault
(SQS, the API) ends the run before anything is scaled, marks the Error condition and asks for
the next run sooner, with backoff; the decision's memory only advances on a complete run.
Each run returns how long to wait before the next one (the QueueScaler's daemon sleeps it).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from risingstars.operator import busypods, metrics, spec
from risingstars.operator.decision import Decision, Memory, decide
from risingstars.operator.kube import KubeAPI, KubeError, selector_string
from risingstars.operator.queue import Backlog, QueueError, QueueReader
from risingstars.operator.spec import GROUP, PLURAL, VERSION
from risingstars.operator.status import diff, is_true, now_iso, set_condition

log = logging.getLogger("risingstars.operator")

MAX_RETRY_DELAY = 60.0
INVALID_SPEC_RECHECK = 30.0
DEFAULT_GRACE_SECONDS = 30


@dataclasses.dataclass
class Deps:
    kube: KubeAPI
    queues: QueueReader
    pod_metrics: busypods.PodMetricsReader
    clock: Callable[[], float] = time.monotonic


@dataclasses.dataclass
class ScalerState:
    """Per-QueueScaler memory between runs (its daemon holds it)."""

    memory: Memory | None = None
    failures: int = 0
    status: dict[str, Any] | None = None  # what we last wrote, never a lagging watch copy


def _backlog_status(backlog: Backlog, total: int) -> dict[str, int]:
    return {
        "visible": backlog.visible,
        "inFlight": backlog.in_flight,
        "delayed": backlog.delayed,
        "total": total,
    }


class Run:
    """The context of one reconcile: where status changes and Events accumulate."""

    def __init__(
        self,
        deps: Deps,
        state: ScalerState,
        *,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
    ) -> None:
        self.deps = deps
        self.state = state
        self.namespace = namespace
        self.name = name
        self.body = body
        meta = body.get("metadata") or {}
        self.generation = meta.get("generation")
        # What the API server has (kopf's live view, possibly a moment behind our last write)
        # and what we last wrote (for transitions, so a lagging view never repeats an Event).
        self.observed = dict(body.get("status") or {})
        if state.status is None:
            state.status = dict(self.observed)
        self.old = state.status
        self.new: dict[str, Any] = dict(self.old)
        self.now = now_iso()

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.new.get("conditions") or [])

    def set(self, kind: str, true: bool, reason: str, message: str) -> None:
        self.new["conditions"] = set_condition(
            self.conditions, kind, true, reason, message, generation=self.generation, now=self.now
        )

    def event(self, kind: str, reason: str, message: str) -> None:
        kopf.event(dict(self.body), type=kind, reason=reason, message=message)

    async def commit(self) -> None:
        """Write the status changes (the status subresource, merge patch). A write lost to an
        API fault is repeated by the next run: `old` stays what the server last accepted."""
        if self.generation is not None:
            self.new["observedGeneration"] = self.generation
        # Also rewrite what the server does not show: a status write lost earlier.
        changes = {**diff(self.observed, self.new), **diff(self.old, self.new)}
        if changes:
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.name}"
            try:
                await self.deps.kube.patch_status(path, changes)
            except KubeError as exc:
                log.warning(
                    "status not written",
                    extra={"queuescaler": f"{self.namespace}/{self.name}", "detail": str(exc)},
                )
                return
        self.state.status = self.new

    async def mark_failed(self, reason: str, message: str) -> None:
        """Record a fault: Error and Ready conditions, an Event when it is new, the metric."""
        was_failing = is_true(self.conditions, "Error", reason)
        self.set("Error", True, reason, message)
        self.set("Ready", False, reason, message)
        await self.commit()
        if not was_failing:
            self.event("Warning", reason, message)
        metrics.record_error(self.namespace, self.name, reason)

    async def fail(self, reason: str, message: str, *, base_delay: float) -> float:
        """Record the fault; the delay before the next run, with exponential backoff."""
        await self.mark_failed(reason, message)
        self.state.failures += 1
        delay = min(base_delay * 2 ** (self.state.failures - 1), MAX_RETRY_DELAY)
        log.warning(
            "reconcile failed",
            extra={
                "queuescaler": f"{self.namespace}/{self.name}",
                "reason": reason,
                "detail": message,
                "retry_in_seconds": delay,
            },
        )
        return delay


async def reconcile(
    deps: Deps,
    state: ScalerState,
    *,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
) -> float:
    """Run one reconcile; returns the seconds to wait before the next one."""
    started = time.perf_counter()
    run = Run(deps, state, namespace=namespace, name=name, body=body)
    try:
        return await _reconcile(run, deps.clock())
    finally:
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)


async def _reconcile(run: Run, now: float) -> float:
    deps, state, namespace = run.deps, run.state, run.namespace
    try:
        scaler = spec.parse(run.body.get("spec") or {})
    except spec.SpecError as exc:
        # Nothing to retry until someone edits the spec; look again now and then (level-based).
        await run.mark_failed("InvalidSpec", str(exc))
        return INVALID_SPEC_RECHECK

    base_delay = min(scaler.polling_interval_seconds, 5.0)
    try:
        backlog = await deps.queues.backlog(scaler.queue)
    except QueueError as exc:
        return await run.fail(exc.reason, str(exc), base_delay=base_delay)
    try:
        deployment = await deps.kube.get_deployment(namespace, scaler.target)
    except KubeError as exc:
        reason = "TargetNotFound" if exc.not_found else "KubernetesUnavailable"
        return await run.fail(reason, str(exc), base_delay=base_delay)

    dep_spec = deployment.get("spec") or {}
    current = int(dep_spec.get("replicas", 1))
    total = backlog.total(
        count_in_flight=scaler.count_in_flight, count_delayed=scaler.count_delayed
    )
    decision = decide(scaler.policy, total, current, now, state.memory)

    replicas = decision.desired
    held_by_busy: busypods.ScaleInPlan | None = None
    if replicas < current and scaler.busy_pods.enabled:
        try:
            plan = await _protect_busy_pods(run, scaler, deployment, current, replicas)
        except KubeError as exc:
            return await run.fail("KubernetesUnavailable", str(exc), base_delay=base_delay)
        replicas = plan.replicas
        held_by_busy = plan if plan.limited else None

    if replicas != current:
        try:
            await deps.kube.scale_deployment(namespace, scaler.target, replicas)
        except KubeError as exc:
            reason = "TargetNotFound" if exc.not_found else "KubernetesUnavailable"
            return await run.fail(reason, str(exc), base_delay=base_delay)

    # Everything succeeded: the decision's memory advances, and status tells what happened.
    interval = scaler.polling_interval_seconds
    if state.memory is None:
        # Objects first seen together (an operator start) would stay in lockstep and hit SQS
        # and the API in bursts: spread their phases over one interval.
        interval *= random.uniform(0.5, 1.0)
    state.memory = decision.memory
    state.failures = 0
    await _report(run, scaler, backlog, total, decision, current, replicas, held_by_busy)
    return interval


async def _protect_busy_pods(
    run: Run, scaler: spec.ScalerSpec, deployment: Mapping[str, Any], current: int, desired: int
) -> busypods.ScaleInPlan:
    dep_spec = deployment.get("spec") or {}
    selector = selector_string(dep_spec.get("selector") or {})
    pods = busypods.live_pods(await run.deps.kube.list_pods(run.namespace, selector))
    loads = await run.deps.pod_metrics.read(
        pods, scaler.busy_pods.metrics_port, scaler.busy_pods.metrics_path
    )
    pod_spec = ((dep_spec.get("template") or {}).get("spec")) or {}
    grace = pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    max_job = scaler.busy_pods.max_job_seconds
    busy_may_go = max_job is not None and grace >= max_job
    plan = busypods.plan_scale_in(loads, current=current, desired=desired, busy_may_go=busy_may_go)
    # Costs go on before the scale patch: the ReplicaSet reads them when it picks its victims.
    for pod_name, cost in plan.costs.items():
        try:
            await run.deps.kube.annotate_pod(
                run.namespace, pod_name, {busypods.DELETION_COST: cost}
            )
        except KubeError as exc:
            if not exc.not_found:  # a pod that is gone needs no cost
                raise
    return plan


async def _report(
    run: Run,
    scaler: spec.ScalerSpec,
    backlog: Backlog,
    total: int,
    decision: Decision,
    current: int,
    replicas: int,
    held_by_busy: busypods.ScaleInPlan | None,
) -> None:
    namespace, name = run.namespace, run.name
    recovered = is_true(run.conditions, "Error")
    run.new["backlog"] = _backlog_status(backlog, total)
    run.new["currentReplicas"] = replicas
    run.new["desiredReplicas"] = decision.desired

    run.set("Error", False, "NoError", "the queue and the target were read")
    run.set("Ready", True, "Reconciled", decision.message)
    if decision.active:
        run.set(
            "Active",
            True,
            "BacklogAboveActivation",
            f"backlog {total} > activation {scaler.policy.activation_backlog}",
        )
    else:
        run.set(
            "Active",
            False,
            "BacklogAtOrBelowActivation",
            f"backlog {total} <= activation {scaler.policy.activation_backlog}",
        )
    was_held = is_true(run.conditions, "ScalingLimited", "BusyPods")
    held_message = ""
    if held_by_busy is not None:
        held_message = (
            f"{current} -> {decision.desired} wanted; {held_by_busy.busy} busy pod(s) "
            f"keep {replicas} replicas until their jobs finish"
        )
        run.set("ScalingLimited", True, "BusyPods", held_message)
    elif decision.limited:
        run.set("ScalingLimited", True, decision.limited, decision.message)
    else:
        run.set("ScalingLimited", False, "WithinLimits", "between the minimum and the maximum")

    if replicas != current:
        direction = "up" if replicas > current else "down"
        reason = decision.reason if replicas == decision.desired else "ScaledDownPartially"
        message = f"{current} -> {replicas}: {decision.message}"
        run.new["lastScaleTime"] = run.now
        run.new["lastScaleReason"] = f"{reason}: {message}"
        run.event("Normal", reason, message)
        metrics.SCALE_EVENTS.labels(namespace, name, direction).inc()
        log.info(
            "scaled",
            extra={
                "queuescaler": f"{namespace}/{name}",
                "target": scaler.target,
                "from": current,
                "to": replicas,
                "reason": reason,
                "backlog": total,
            },
        )
    if held_by_busy is not None and not was_held:
        run.event("Normal", "BusyPods", held_message)
    if recovered:
        run.event("Normal", "Recovered", "the queue and the target are reachable again")
    await run.commit()

    metrics.BACKLOG.labels(namespace, name, "visible").set(backlog.visible)
    metrics.BACKLOG.labels(namespace, name, "in_flight").set(backlog.in_flight)
    metrics.BACKLOG.labels(namespace, name, "delayed").set(backlog.delayed)
    metrics.DESIRED.labels(namespace, name).set(decision.desired)
    metrics.CURRENT.labels(namespace, name).set(replicas)
    log.debug(
        "reconciled",
        extra={
            "queuescaler": f"{namespace}/{name}",
            "backlog": total,
            "current": current,
            "desired": decision.desired,
            "replicas": replicas,
            "reason": decision.reason,
        },
    )
