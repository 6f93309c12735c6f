"""Faults and the end of life: SQS cut off, a QueueScaler deleted."""

from __future__ import annotations

RECONCILES = "operator_reconcile_duration_seconds_count"


async def test_sqs_unreachable_no_scaling_error_condition_then_recovery(
    cluster, start_operator, jobs, namespace, sqs_proxy, wait_for, metric
):
    await cluster.deployment(namespace, replicas=1)
    # The operator reaches SQS through a proxy the test can cut.
    spec = jobs.spec(queue={"url": jobs.url, "endpointUrl": sqs_proxy.url})
    await cluster.queuescaler(namespace, "processor", spec)
    await start_operator(namespace)
    await wait_for(
        lambda: (c := cluster.condition(namespace, "processor", "Ready")) and c["status"] == "True",
        "the first reconcile",
    )

    await sqs_proxy.cut()
    await jobs.send(30)  # straight to moto: a backlog the operator cannot see
    errors = {"namespace": namespace, "queuescaler": "processor", "reason": "QueueUnavailable"}
    error = await wait_for(
        lambda: (
            (c := cluster.condition(namespace, "processor", "Error"))
            and c["status"] == "True"
            and c
        ),
        "the Error condition",
    )
    assert error["reason"] == "QueueUnavailable"
    ready = cluster.condition(namespace, "processor", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "QueueUnavailable")
    # Retried with backoff, never scaled on what it cannot read.
    await wait_for(lambda: metric("operator_reconcile_errors_total", **errors) >= 2, "a retry")
    assert cluster.replicas(namespace) == 1
    assert cluster.status(namespace, "processor")["backlog"]["total"] == 0  # the last good read
    scale_patches = [r for r in cluster.operator_requests() if r.url.path.endswith("/scale")]
    assert scale_patches == []
    warnings = [e for e in cluster.events(namespace, "processor") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["QueueUnavailable"]  # once, not per retry

    await sqs_proxy.start()
    await wait_for(lambda: cluster.replicas(namespace) == 6, "the scale-up after recovery")
    await wait_for(
        lambda: cluster.condition(namespace, "processor", "Error")["status"] == "False",
        "the Error condition to clear",
    )
    assert cluster.condition(namespace, "processor", "Ready")["status"] == "True"
    await wait_for(
        lambda: "Recovered" in {e["reason"] for e in cluster.events(namespace, "processor")},
        "the Recovered event",
    )


async def test_deleted_queuescaler_is_no_longer_acted_on(
    cluster, start_operator, jobs, wait_for, metric
):
    kept, deleted = "ns-kept", "ns-deleted"
    for ns in (kept, deleted):
        await cluster.deployment(ns, replicas=1)
        await cluster.queuescaler(ns, "processor", jobs.spec())
    await start_operator(kept, deleted)
    for ns in (kept, deleted):
        await wait_for(
            lambda ns=ns: cluster.condition(ns, "processor", "Ready"), f"{ns} reconciled"
        )

    await cluster.delete_queuescaler(deleted, "processor")
    # kopf stops the daemon, then lets the object go (its finalizer is the only one).
    await wait_for(lambda: cluster.get(QS, deleted, "processor") is None, "the object to go")
    touched_before = _deployment_requests(cluster, deleted)

    await jobs.send(30)
    await wait_for(lambda: cluster.replicas(kept) == 6, "the kept QueueScaler to scale up")
    reconciles = metric(RECONCILES)
    await wait_for(lambda: metric(RECONCILES) >= reconciles + 2, "two more reconciles")

    assert cluster.replicas(deleted) == 1
    assert _deployment_requests(cluster, deleted) == touched_before
    labels = {"namespace": deleted, "queuescaler": "processor"}
    assert metric("operator_desired_replicas", **labels) == 0  # its series are gone


QS = "risingstars.io/v1alpha1/queuescalers"


def _deployment_requests(cluster, ns: str) -> int:
    prefix = f"/apis/apps/v1/namespaces/{ns}/deployments"
    return sum(1 for r in cluster.operator_requests() if r.url.path.startswith(prefix))
