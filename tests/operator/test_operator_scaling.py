"""kopf running the operator for real against kmock's Kubernetes emulator and moto's SQS."""

from __future__ import annotations

import time

from risingstars.operator.busypods import DELETION_COST

RECONCILES = "operator_reconcile_duration_seconds_count"


async def test_backlog_rises_the_deployment_is_scaled_up_and_status_and_events_say_why(
    cluster, start_operator, jobs, namespace, wait_for
):
    await cluster.deployment(namespace, replicas=1)
    await cluster.queuescaler(namespace, "processor", jobs.spec())
    await start_operator(namespace)

    ready = await wait_for(
        lambda: cluster.condition(namespace, "processor", "Ready"), "the first reconcile"
    )
    assert ready["status"] == "True"
    assert cluster.replicas(namespace) == 1

    # Sent in batches of 10: a reconcile may see the backlog part-way (a step up on the way is
    # right then), and the status settles on the whole of it.
    await jobs.send(23)
    await wait_for(lambda: cluster.replicas(namespace) == 5, "the scale-up to ceil(23 / 5)")
    status = await wait_for(
        lambda: (
            (s := cluster.status(namespace, "processor")).get("currentReplicas") == 5
            and s["backlog"]["total"] == 23
            and s
        ),
        "the status after the scale-up",
    )
    assert status["backlog"] == {"visible": 23, "inFlight": 0, "delayed": 0, "total": 23}
    assert status["currentReplicas"] == 5 and status["desiredReplicas"] == 5
    assert status["lastScaleReason"].startswith("ScaledUp: ")
    assert status["lastScaleReason"].split(":")[1].strip().endswith("-> 5")
    assert cluster.condition(namespace, "processor", "Active")["status"] == "True"
    events = await wait_for(
        lambda: [
            e
            for e in cluster.events(namespace, "processor")
            if e["reason"] == "ScaledUp" and "-> 5:" in e["message"]
        ],
        "the ScaledUp event",
    )
    assert events[0]["type"] == "Normal"
    history = cluster.replica_history(namespace)
    assert history[0] == 1 and history[-1] == 5 and history == sorted(history), history


async def test_reports_its_metrics(cluster, start_operator, jobs, namespace, wait_for, metric):
    await cluster.deployment(namespace, replicas=1)
    await cluster.queuescaler(namespace, "processor", jobs.spec())
    await jobs.send(12)
    before = metric(RECONCILES)
    await start_operator(namespace)

    await wait_for(lambda: cluster.replicas(namespace) == 3, "the scale-up to ceil(12 / 5)")
    labels = {"namespace": namespace, "queuescaler": "processor"}
    await wait_for(lambda: metric("operator_desired_replicas", **labels) == 3, "the gauges")
    assert metric("operator_current_replicas", **labels) == 3
    assert metric("operator_queue_backlog_messages", state="visible", **labels) == 12
    assert metric("operator_scale_events_total", direction="up", **labels) == 1
    assert metric(RECONCILES) > before


async def test_backlog_drains_scaled_down_only_after_the_window_idle_pods_first(
    cluster, start_operator, jobs, namespace, pod_metrics, wait_for
):
    window = 5
    pods = {"busy": "127.0.0.2", "idle-1": "127.0.0.3", "idle-2": "127.0.0.4"}
    for name, ip in pods.items():
        await pod_metrics.add(ip, in_flight=1 if name == "busy" else 0)
        await cluster.pod(namespace, name, ip)
    await cluster.deployment(namespace, replicas=3)
    spec = jobs.spec(
        scaleDownStabilizationSeconds=window,
        busyPodProtection={"metricsPort": pod_metrics.port},
    )
    await cluster.queuescaler(namespace, "processor", spec)
    await jobs.send(15)
    await start_operator(namespace)
    await wait_for(
        lambda: cluster.status(namespace, "processor").get("backlog", {}).get("total") == 15,
        "a reconcile that sees the backlog of 15 (3 replicas' worth)",
    )

    # The busy pod's job stays in flight (counted); the rest of the backlog is gone.
    await jobs.purge()
    await jobs.send(1)
    await jobs.client.receive_message(QueueUrl=jobs.url, VisibilityTimeout=300)
    drained = time.monotonic()

    # The operator sees the low backlog and holds the size while the window lasts...
    await wait_for(
        lambda: (
            (s := cluster.status(namespace, "processor")).get("backlog", {}).get("total") == 1
            and s["currentReplicas"] == 3
        ),
        "a reconcile holding 3 replicas with a backlog of 1",
    )
    assert cluster.condition(namespace, "processor", "Ready")["message"].startswith(
        "backlog 1, target 5 per replica: 1 would do, holding 3"
    )
    # ...then goes straight to what the whole window agrees on.
    await wait_for(lambda: cluster.replicas(namespace) == 1, "the scale-down", timeout=30)
    # Not before the window has passed since the last reconcile that saw 15, which ran within
    # about a polling interval (1 s) before the drain; scaling at once would take about 1 s.
    assert time.monotonic() - drained >= window - 2.5
    assert cluster.replica_history(namespace) == [3, 1]

    costs = {name: cluster.pod_annotations(namespace, name).get(DELETION_COST) for name in pods}
    assert costs == {"busy": "1", "idle-1": "0", "idle-2": "0"}
    events = [e["reason"] for e in cluster.events(namespace, "processor")]
    await wait_for(
        lambda: "ScaledDown" in [e["reason"] for e in cluster.events(namespace, "processor")],
        f"the ScaledDown event (events so far: {events})",
    )


async def test_busy_pods_are_not_removed_until_idle(
    cluster, start_operator, jobs, namespace, pod_metrics, wait_for, metric
):
    pods = {"busy-a": ("127.0.0.5", 1), "busy-b": ("127.0.0.6", 2), "idle": ("127.0.0.7", 0)}
    for name, (ip, in_flight) in pods.items():
        await pod_metrics.add(ip, in_flight=in_flight)
        await cluster.pod(namespace, name, ip)
    # A grace period shorter than a job: busy pods must not be picked.
    await cluster.deployment(namespace, replicas=3, grace=30)
    spec = jobs.spec(
        scaleDownStabilizationSeconds=0,
        busyPodProtection={"metricsPort": pod_metrics.port, "maxJobSeconds": 120},
    )
    await cluster.queuescaler(namespace, "processor", spec)
    await start_operator(namespace)

    # Empty queue: 1 replica would do, but only the idle pod may go.
    await wait_for(lambda: cluster.replicas(namespace) == 2, "the partial scale-down")
    limited = await wait_for(
        lambda: cluster.condition(namespace, "processor", "ScalingLimited"), "the status"
    )
    assert (limited["status"], limited["reason"]) == ("True", "BusyPods")
    assert cluster.pod_annotations(namespace, "idle")[DELETION_COST] == "0"
    assert cluster.pod_annotations(namespace, "busy-a")[DELETION_COST] == "1"
    assert cluster.pod_annotations(namespace, "busy-b")[DELETION_COST] == "2"
    reasons = await wait_for(
        lambda: (
            {e["reason"] for e in cluster.events(namespace, "processor")} >= {"BusyPods"}
            and {e["reason"] for e in cluster.events(namespace, "processor")}
        ),
        "the BusyPods event",
    )
    assert "ScaledDownPartially" in reasons

    # The ReplicaSet removes the cheapest pod; both others are still busy: nothing more goes.
    await cluster.delete_pod(namespace, "idle")
    reconciles = metric(RECONCILES)
    await wait_for(lambda: metric(RECONCILES) >= reconciles + 2, "two more reconciles")
    assert cluster.replicas(namespace) == 2

    pod_metrics.set(pods["busy-a"][0], 0)
    await wait_for(lambda: cluster.replicas(namespace) == 1, "the scale-down once a pod is idle")
    assert cluster.pod_annotations(namespace, "busy-a")[DELETION_COST] == "0"
    # Still limited, now by the minimum (an empty queue would take it to 0), not by busy pods.
    await wait_for(
        lambda: (
            cluster.condition(namespace, "processor", "ScalingLimited")["reason"] == "AtMinimum"
        ),
        "ScalingLimited to say AtMinimum",
    )
    assert cluster.replica_history(namespace) == [3, 2, 1]


async def test_scales_to_zero_after_the_cooldown_and_back(
    cluster, start_operator, jobs, namespace, wait_for
):
    await cluster.deployment(namespace, replicas=2)
    spec = jobs.spec(minReplicas=0, cooldownSeconds=1, scaleDownStabilizationSeconds=1)
    await cluster.queuescaler(namespace, "processor", spec)
    await start_operator(namespace)

    await wait_for(lambda: cluster.replicas(namespace) == 0, "the scale to zero")
    assert cluster.condition(namespace, "processor", "Active")["status"] == "False"
    await jobs.send(7)
    await wait_for(lambda: cluster.replicas(namespace) == 2, "the wake-up to ceil(7 / 5)")
    reasons = [e["reason"] for e in cluster.events(namespace, "processor")]
    await wait_for(
        lambda: (
            {"ScaledToZero", "Activated"}
            <= {e["reason"] for e in cluster.events(namespace, "processor")}
        ),
        f"the ScaledToZero and Activated events (so far {reasons})",
    )
