"""The kopf handlers: login and one reconcile daemon per QueueScaler (health checks: health.py).

Each QueueScaler gets a daemon for as long as it exists: it reconciles, sleeps the object's own
polling interval (or a retry delay after a fault), and again, holding the decision's memory in
its own state. kopf puts a finalizer on objects with daemons; it is the only one, and it is what
guarantees a deleted QueueScaler's daemon has stopped (and so no longer touches its Deployment)
before the object disappears.
"""

from __future__ import annotations

import random
from typing import Any

import kopf

from risingstars.operator import metrics
from risingstars.operator.reconcile import Deps, ScalerState, reconcile
from risingstars.operator.spec import GROUP, PLURAL, VERSION

# How long a stopping daemon (object deleted, operator exiting) may take to finish its run.
CANCELLATION_TIMEOUT = 10.0
# Daemons of objects seen together (an operator start) would send their first SQS and API
# requests in one burst: each starts at a random phase within this many seconds (the second
# run then comes after a random half to whole interval, see reconcile.py).
START_SPREAD_SECONDS = 1.0


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo:
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig (KUBECONFIG)")
    deps: Deps = memo.deps
    deps.kube.use(info)  # our own API calls use the same server and identity as kopf
    return info


def _start_phase(**_: Any) -> float:
    return random.uniform(0, START_SPREAD_SECONDS)


@kopf.daemon(
    GROUP,
    VERSION,
    PLURAL,
    id="reconcile",
    initial_delay=_start_phase,
    cancellation_timeout=CANCELLATION_TIMEOUT,
)
async def reconcile_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    # `body` is kopf's live view of the object: each run reads the spec as it is now.
    state = ScalerState()
    try:
        while not stopped:
            delay = await reconcile(memo.deps, state, namespace=namespace, name=name, body=body)
            await stopped.wait(delay)
    finally:
        # Deleted (or the operator stops): its series go with it.
        metrics.forget(namespace, name)


@kopf.on.cleanup()
async def close_clients(memo: kopf.Memo, **_: Any) -> None:
    deps: Deps = memo.deps
    await deps.kube.close()
    await deps.queues.close()
    await deps.pod_metrics.close()
