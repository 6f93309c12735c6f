"""The chart's RBAC for the operator against the requests the operator really makes: every
request allowed (checked after every operator test by the `start_operator` fixture), and here,
over a whole life cycle, nothing granted that is not used."""

from __future__ import annotations

QS = "risingstars.io/v1alpha1/queuescalers"


def test_the_chart_binds_the_operator_to_a_namespaced_role_only(chart):
    docs = chart.render("rs-test")
    kinds = {d["kind"] for d in docs}
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    grants = chart.grants("rs-test")
    assert [g["namespace"] for g in grants] == ["rs-test"]
    for rule in grants[0]["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


async def test_every_granted_permission_is_used_over_a_life_cycle(
    cluster, start_operator, jobs, namespace, pod_metrics, wait_for, chart
):
    await pod_metrics.add("127.0.0.8", in_flight=1)
    await pod_metrics.add("127.0.0.9", in_flight=0)
    await cluster.pod(namespace, "busy", "127.0.0.8")
    await cluster.pod(namespace, "idle", "127.0.0.9")
    await cluster.deployment(namespace, replicas=1)
    spec = jobs.spec(
        scaleDownStabilizationSeconds=1, busyPodProtection={"metricsPort": pod_metrics.port}
    )
    await cluster.queuescaler(namespace, "processor", spec)
    await start_operator(namespace)

    await jobs.send(10)
    await wait_for(lambda: cluster.replicas(namespace) == 2, "a scale-up")
    await jobs.purge()
    await wait_for(lambda: cluster.replicas(namespace) == 1, "a scale-down past busy pods")
    await wait_for(lambda: len(cluster.events(namespace, "processor")) >= 2, "the Events")
    await cluster.delete_queuescaler(namespace, "processor")
    await wait_for(lambda: cluster.get(QS, namespace, "processor") is None, "the finalizer off")

    used = {
        attrs[:3]
        for request in cluster.operator_requests()
        if (attrs := chart.attributes(request)) is not None
    }
    assert used == chart.granted(namespace)
