"""The kopf handlers: login, the reconcile timer, and forgetting deleted QueueScalers.

The timer ticks every second and each QueueScaler reconciles when its polling interval is due,
so every object keeps its own interval. kopf puts a finalizer on objects with timers; it is the
only one, and it is what guarantees a deleted QueueScaler's timer has stopped (and so no longer
touches its Deployment) before the object disappears.
"""

from __future__ import annotations

import random
from typing import Any

import kopf

from risingstars.operator import metrics
from risingstars.operator.reconcile import Deps, ScalerState, reconcile
from risingstars.operator.spec import GROUP, PLURAL, VERSION

TICK_SECONDS = 1.0


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig (KUBECONFIG)")
    deps: Deps = memo.deps
    deps.kube.use(info)  # our own API calls use the same server and identity as kopf
    return info


def _tick_phase(**_: Any) -> float:
    # Timers of objects seen together (an operator start) would tick in lockstep and send their
    # SQS and API requests in bursts; a random phase within the tick spreads them out.
    return random.uniform(0, TICK_SECONDS)


@kopf.timer(
    GROUP, VERSION, PLURAL, id="reconcile", interval=TICK_SECONDS, initial_delay=_tick_phase
)
async def reconcile_timer(
    name: str, namespace: str, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    state = memo.get("scaler")
    if state is None:
        state = memo["scaler"] = ScalerState()
    await reconcile(memo.deps, state, namespace=namespace, name=name, body=body, patch=patch)


@kopf.on.event(GROUP, VERSION, PLURAL)
def forget_deleted(type: str, name: str, namespace: str, **_: Any) -> None:
    if type == "DELETED":
        metrics.forget(namespace, name)


@kopf.on.cleanup()
async def close_clients(memo: kopf.Memo, **_: Any) -> None:
    deps: Deps = memo.deps
    await deps.kube.close()
    await deps.queues.close()
    await deps.pod_metrics.close()
