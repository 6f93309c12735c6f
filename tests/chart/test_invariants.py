"""Invariants of the rendered chart, for every values file it is checked with (VALUES_SETS)."""

from __future__ import annotations

import pytest
from chart.manifests import (
    COMPONENT,
    component,
    containers,
    env_value,
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


# --- ALB timings (issue 20): pairs that, out of order, turn rollouts and idle connections into
# 502s. Each is checked for every values set whose Ingress is an ALB.

ALB = "alb.ingress.kubernetes.io/"
# The AWS Load Balancer Controller deregisters a terminating pod's target only after the
# endpoint change reaches it and the ALB's API call completes; new requests keep arriving until
# then. Its documentation suggests a preStop sleep of at least this long.
CONTROLLER_DEREGISTRATION_SECONDS = 15


def _alb_attributes(annotations: dict, key: str) -> dict[str, str]:
    """`a=1,b=2` in an attributes annotation, as a dict."""
    raw = annotations.get(ALB + key, "")
    return dict(part.strip().split("=", 1) for part in raw.split(",") if part.strip())


def _alb_backends(objects: list[dict]):
    """(component, container, target group attributes) for each Service behind the ALB."""
    (ingress,) = of_kind(objects, "Ingress")
    ingress_annotations = ingress["metadata"].get("annotations") or {}
    names = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    for service in of_kind(objects, "Service"):
        if service["metadata"]["name"] not in names:
            continue
        # A Service's own annotation overrides the Ingress's for its target group.
        annotations = {**ingress_annotations, **(service["metadata"].get("annotations") or {})}
        deployments = of_kind(objects, "Deployment")
        (deployment,) = [d for d in deployments if component(d) == component(service)]
        (container,) = pod_spec(deployment)["containers"]
        yield component(service), container, _alb_attributes(annotations, "target-group-attributes")


def _is_alb(objects: list[dict]) -> bool:
    ingresses = of_kind(objects, "Ingress")
    return bool(ingresses) and ingresses[0]["spec"].get("ingressClassName") == "alb"


@pytest.mark.parametrize("name", SETS)
def test_keepalive_outlives_the_alb_idle_timeout(renders, name):
    """AWS: the target's keep-alive must exceed the ALB's idle timeout, or the ALB reuses a
    connection the pod has just closed and answers 502."""
    objects = renders[name]
    if not _is_alb(objects):
        return
    (ingress,) = of_kind(objects, "Ingress")
    idle = int(
        _alb_attributes(ingress["metadata"]["annotations"], "load-balancer-attributes").get(
            "idle_timeout.timeout_seconds", 60
        )
    )
    for _, container, _ in _alb_backends(objects):
        keepalive = int(env_value(container, "KEEPALIVE_SECONDS"))
        assert keepalive > idle, (
            f"{container['name']}: keep-alive {keepalive} s <= ALB idle {idle} s"
        )


@pytest.mark.parametrize("name", SETS)
def test_alb_deregistration_delay_covers_each_backends_shutdown(renders, name):
    """The ALB cuts a deregistered target's open requests after the deregistration delay: it must
    last until the pod has finished its in-flight work (preStop, drain, shutdown)."""
    objects = renders[name]
    if not _is_alb(objects):
        return
    for _, container, attributes in _alb_backends(objects):
        delay = int(attributes.get("deregistration_delay.timeout_seconds", 300))
        pre_stop = (
            container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        )
        busy = (
            pre_stop
            + int(env_value(container, "DRAIN_SECONDS"))
            + int(env_value(container, "SHUTDOWN_TIMEOUT_SECONDS"))
        )
        assert delay >= busy, f"{container['name']}: deregistration delay {delay} s < {busy} s"


@pytest.mark.parametrize("name", SETS)
def test_drain_lasts_until_the_alb_controller_deregisters_the_pod(renders, name):
    objects = renders[name]
    if not _is_alb(objects):
        return
    for _, container, _ in _alb_backends(objects):
        pre_stop = (
            container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        )
        assert pre_stop >= CONTROLLER_DEREGISTRATION_SECONDS, container["name"]
        assert int(env_value(container, "DRAIN_SECONDS")) >= CONTROLLER_DEREGISTRATION_SECONDS


@pytest.mark.parametrize("name", SETS)
def test_alb_subnets_network_policy_and_trusted_proxies_are_one_list(renders, name):
    """The ALB is pinned to its subnets, the API pods admit exactly those subnets, and only they
    may set X-Forwarded-For: one value (ingress.alb.subnets), so none can drift."""
    objects = renders[name]
    if not _is_alb(objects):
        return
    (ingress,) = of_kind(objects, "Ingress")
    subnets = [
        s for s in ingress["metadata"]["annotations"].get(ALB + "subnets", "").split(",") if s
    ]
    assert subnets, "the ALB is not pinned to subnets (alb.ingress.kubernetes.io/subnets)"
    for name_, container, _ in _alb_backends(objects):
        trusted = env_value(container, "FORWARDED_ALLOW_IPS").split(",")
        (policy,) = [
            p
            for p in of_kind(objects, "NetworkPolicy")
            if p["spec"]["podSelector"].get("matchLabels", {}).get(COMPONENT) == name_
        ]
        cidrs = [
            peer["ipBlock"]["cidr"]
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
            if "ipBlock" in peer
        ]
        assert cidrs == trusted, f"{name_}: policy {cidrs} != trusted {trusted}"
        assert len(cidrs) == len(subnets), f"{name_}: {cidrs} vs subnets {subnets}"


def _quantity_mi(text: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for unit, factor in units.items():
        if str(text).endswith(unit):
            return float(str(text)[: -len(unit)]) * factor
    return float(text) / 2**20


@pytest.mark.parametrize("name", SETS)
def test_ephemeral_storage_requests_cover_the_upload_spill(renders, name):
    """The scheduler reserves node disk only for what is requested: an upload pod whose spill
    emptyDir (and /tmp) may grow past its request can fill the node and be evicted."""
    for deployment in of_kind(renders[name], "Deployment"):
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if "spill" not in volumes:
            continue
        limits = [_quantity_mi(volumes[n]["emptyDir"]["sizeLimit"]) for n in ("spill", "tmp")]
        requested = sum(
            _quantity_mi(c.get("resources", {}).get("requests", {}).get("ephemeral-storage", 0))
            for c in spec["containers"]
        )
        assert requested >= sum(limits), f"{deployment['metadata']['name']}: {requested} Mi"


def test_a_changed_database_secret_rolls_the_pods():
    from chart.rendering import render

    def annotation(url: str) -> set[str]:
        objects = render(settings={"database.existingSecret": "", "database.url": url})
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/database-secret"]
            for d in of_kind(objects, "Deployment")
        }

    before, after = annotation("postgresql://a@db/x"), annotation("postgresql://b@db/x")
    assert len(before) == 1 and before != after


@pytest.mark.parametrize("name", SETS)
def test_operator_egress_is_not_the_whole_internet_on_the_api_ports(renders, name):
    for policy in of_kind(renders[name], "NetworkPolicy"):
        if component(policy) != "operator":
            continue
        for rule in policy["spec"]["egress"]:
            ports = {p.get("port") for p in rule.get("ports", [])}
            if ports & {6443}:
                cidrs = {p["ipBlock"]["cidr"] for p in rule["to"] if "ipBlock" in p}
                assert "0.0.0.0/0" not in cidrs, name
