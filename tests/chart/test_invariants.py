"""Invariants of the rendered chart, for every values file it is checked with (VALUES_SETS)."""

from __future__ import annotations

import pytest
from chart.manifests import (
    component,
    containers,
    min_replicas,
    of_kind,
    pod_labels,
    pod_spec,
    scalers_of,
    selects,
    workloads,
)
from chart.rendering import VALUES_SETS

SETS = sorted(VALUES_SETS)
HARDENED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
}


@pytest.mark.parametrize("name", SETS)
def test_one_scaler_per_deployment_and_no_replicas_where_it_owns_them(renders, name):
    objects = renders[name]
    for deployment in of_kind(objects, "Deployment"):
        owners = scalers_of(objects, deployment["metadata"]["name"])
        assert len(owners) <= 1, f"{deployment['metadata']['name']} has several scalers: {owners}"
        if owners:
            assert "replicas" not in deployment["spec"], (
                f"{deployment['metadata']['name']} sets replicas although {owners[0]} owns them"
            )
        else:
            assert "replicas" in deployment["spec"]


@pytest.mark.parametrize("name", SETS)
def test_every_scaler_targets_a_deployment_of_the_release(renders, name):
    objects = renders[name]
    deployments = {d["metadata"]["name"] for d in of_kind(objects, "Deployment")}
    for kind in ("HorizontalPodAutoscaler", "ScaledObject", "QueueScaler"):
        for scaler in of_kind(objects, kind):
            assert scaler["spec"]["scaleTargetRef"]["name"] in deployments


@pytest.mark.parametrize("name", SETS)
def test_every_container_has_probes_resources_and_a_hardened_security_context(renders, name):
    for workload in workloads(renders[name]):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        for container in containers(workload):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where}: {part}"
            context = container.get("securityContext", {})
            for key, wanted in HARDENED.items():
                assert context.get(key) == wanted, f"{where}: securityContext.{key}"
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            if workload["kind"] == "Deployment":
                # Long-running containers only: Jobs and test pods run to completion.
                assert container.get("livenessProbe"), f"{where}: livenessProbe"
                assert container.get("readinessProbe"), f"{where}: readinessProbe"


@pytest.mark.parametrize("name", SETS)
def test_pods_run_as_a_fixed_non_root_user_with_a_size_limited_tmp(renders, name):
    objects = renders[name]
    bound = {s["name"] for b in of_kind(objects, "RoleBinding") for s in b["subjects"]}
    bound |= {s["name"] for b in of_kind(objects, "ClusterRoleBinding") for s in b["subjects"]}
    for workload in workloads(objects):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] >= 10000, where
        assert context["seccompProfile"]["type"] == "RuntimeDefault", where
        # Only a pod whose ServiceAccount is granted API access mounts a token.
        if spec.get("serviceAccountName") not in bound:
            assert spec.get("automountServiceAccountToken") is False, where
        tmp = {v["name"]: v for v in spec.get("volumes", [])}.get("tmp")
        assert tmp and tmp["emptyDir"].get("sizeLimit"), f"{where}: /tmp emptyDir with a sizeLimit"
        for container in containers(workload):
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, where


@pytest.mark.parametrize("name", SETS)
def test_pdb_only_when_the_minimum_is_above_one(renders, name):
    objects = renders[name]
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["selector"]["matchLabels"]
        covering = [p for p in pdbs if p["spec"]["selector"]["matchLabels"] == labels]
        minimum = min_replicas(objects, deployment)
        if minimum > 1:
            assert len(covering) == 1, f"{deployment['metadata']['name']}: min {minimum}, no PDB"
        else:
            assert not covering, f"{deployment['metadata']['name']}: min {minimum}, yet a PDB"


@pytest.mark.parametrize("name", SETS)
def test_termination_grace_covers_prestop_drain_and_shutdown(renders, name):
    for deployment in of_kind(renders[name], "Deployment"):
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if "SHUTDOWN_TIMEOUT_SECONDS" not in env:
            continue
        pre_stop = (
            container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        )
        needed = pre_stop + float(env["DRAIN_SECONDS"]) + float(env["SHUTDOWN_TIMEOUT_SECONDS"])
        assert spec["terminationGracePeriodSeconds"] >= needed, deployment["metadata"]["name"]


@pytest.mark.parametrize("name", SETS)
def test_alb_annotations_only_in_the_eks_values(renders, name):
    annotated = [
        f"{o['kind']}/{o['metadata']['name']}: {key}"
        for o in renders[name]
        for key in (o["metadata"].get("annotations") or {})
        if key.startswith("alb.ingress.kubernetes.io/")
    ]
    if name == "eks":
        assert annotated
    else:
        assert not annotated, annotated


def test_eks_ingress_is_an_internet_facing_alb_with_tls_and_long_idle_timeout(renders):
    (ingress,) = of_kind(renders["eks"], "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    assert annotations["alb.ingress.kubernetes.io/group.name"]
    idle = annotations["alb.ingress.kubernetes.io/load-balancer-attributes"]
    assert int(idle.split("idle_timeout.timeout_seconds=")[1].split(",")[0]) >= 120
    for service in of_kind(renders["eks"], "Service"):
        if component(service) in {"auth", "upload"}:
            assert (
                service["metadata"]["annotations"]["alb.ingress.kubernetes.io/healthcheck-path"]
                == "/readyz"
            )


@pytest.mark.parametrize("name", [n for n in SETS if n != "ci-minimal"])
def test_ingress_routes_auth_and_upload_paths(renders, name):
    (ingress,) = of_kind(renders[name], "Ingress")
    routes = {
        path["path"]: path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    auth = next(
        s["metadata"]["name"] for s in of_kind(renders[name], "Service") if component(s) == "auth"
    )
    upload = next(
        s["metadata"]["name"] for s in of_kind(renders[name], "Service") if component(s) == "upload"
    )
    web = next(
        s["metadata"]["name"] for s in of_kind(renders[name], "Service") if component(s) == "web"
    )
    assert routes == {
        "/api/auth": auth,
        "/.well-known": auth,
        "/api/videos": upload,
        "/api/public": upload,
        "/api/openapi.json": upload,
        "/api/docs": upload,
        "/assets": web,
        "/": web,
    }


@pytest.mark.parametrize("name", SETS)
def test_every_pod_is_selected_by_a_network_policy_for_both_directions(renders, name):
    objects = renders[name]
    policies = of_kind(objects, "NetworkPolicy")
    for workload in workloads(objects):
        labels = pod_labels(workload)
        covering = [p for p in policies if selects(p, labels)]
        assert covering, f"{workload['kind']}/{workload['metadata']['name']} has no NetworkPolicy"
        types = {t for p in covering for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}


@pytest.mark.parametrize("name", SETS)
def test_only_scrapers_the_operator_and_the_test_pod_reach_the_processor(renders, name):
    objects = renders[name]
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == "processor"]
    (rule,) = policy["spec"]["ingress"]
    pod_peers = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in rule["from"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    }
    assert pod_peers <= {"operator", "test"}
    assert [p["port"] for p in rule["ports"]] == [8080]


@pytest.mark.parametrize("name", SETS)
def test_service_accounts_are_per_component_with_irsa_slots(renders, name):
    objects = renders[name]
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    for deployment in of_kind(objects, "Deployment"):
        account = pod_spec(deployment)["serviceAccountName"]
        assert account in accounts
        assert component(accounts[account]) == component(deployment)
    if name == "eks":
        roles = {
            component(a): (a["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn")
            for a in accounts.values()
        }
        assert roles["upload"] and roles["processor"]
        assert not roles["auth"], "auth needs no AWS access"


@pytest.mark.parametrize("name", SETS)
def test_migrations_run_as_pre_install_and_pre_upgrade_hooks(renders, name):
    jobs = of_kind(renders[name], "Job")
    if name == "ci-minimal":
        assert not jobs
        return
    commands = set()
    for job in jobs:
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        (container,) = pod_spec(job)["containers"]
        commands.add(tuple(container["command"]))
    assert commands == {
        ("python", "-m", "risingstars.auth", "migrate"),
        ("python", "-m", "risingstars.upload", "migrate"),
    }
