"""Issue 10's chart findings, each named after it: 10.2 (where links point) and 10.19 (the
operator's pod patches, the signing key under GitOps renders, default deny, forwarded
addresses on EKS)."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import celpy
import pytest
import yaml
from chart.manifests import component, env_value, of_kind, pod_spec, selects
from chart.rendering import CHART, VALUES_SETS, render

ROOT = Path(__file__).resolve().parents[2]
SETS = sorted(VALUES_SETS)
# Variables the upload service has used as the base of object links (PUBLIC_BASE_URL before
# finding 10.2, MEDIA_BASE_URL after it).
LINK_BASES = ("PUBLIC_BASE_URL", "MEDIA_BASE_URL")
OPERATOR = {"processor.autoscaling.mode": "operator"}
COST = "controller.kubernetes.io/pod-deletion-cost"
# The example VPC of values-eks.yaml (its header comment): nodes, and with the VPC CNI their
# pods, live in the private subnets.
EKS_POD_SUBNETS = [
    ipaddress.ip_network(c) for c in ("10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18")
]


def upload_api(objects: list[dict]) -> dict:
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == "upload"]
    (container,) = pod_spec(deployment)["containers"]
    return container


def api_hosts(objects: list[dict]) -> set[str]:
    return {
        rule["host"]
        for ingress in of_kind(objects, "Ingress")
        for rule in ingress["spec"]["rules"]
        if rule.get("host")
    }


# --- 10.2 EKS links are dead ----------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_links_never_point_at_the_api_host(renders, name):
    """The ingress routes no object paths, so a link base on the API host is a dead link."""
    container = upload_api(renders[name])
    hosts = api_hosts(renders[name])
    for variable in LINK_BASES:
        base = env_value(container, variable)
        if base is not None:
            assert urlsplit(base).hostname not in hosts, f"{name}: {variable}={base}"


def test_eks_links_stay_presigned():
    container = upload_api(render((CHART / "values-eks.yaml",)))
    assert not [v for v in LINK_BASES if env_value(container, v) is not None]


def test_a_media_base_reaches_the_api_pods_only_when_set():
    objects = render(settings={"upload.mediaBaseUrl": "https://media.example.com"})
    assert env_value(upload_api(objects), "MEDIA_BASE_URL") == "https://media.example.com"
    assert env_value(upload_api(render()), "MEDIA_BASE_URL") is None


# --- 10.19 the operator may patch any pod -----------------------------------------------------


def _admission_policy(objects: list[dict]) -> tuple[dict, dict]:
    (policy,) = of_kind(objects, "ValidatingAdmissionPolicy")
    (binding,) = of_kind(objects, "ValidatingAdmissionPolicyBinding")
    return policy, binding


def _admits(policy: dict, username: str, old: dict, new: dict) -> bool:
    """Evaluates the policy as the API server does: match conditions, variables, validations."""
    env = celpy.Environment()

    def run(expression: str, activation: dict):
        return env.program(env.compile(expression)).evaluate(activation)

    activation = {
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"userInfo": {"username": username}}),
    }
    if not all(run(c["expression"], activation) for c in policy["spec"]["matchConditions"]):
        return True
    variables = {v["name"]: run(v["expression"], activation) for v in policy["spec"]["variables"]}
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()}
    )
    return all(bool(run(v["expression"], activation)) for v in policy["spec"]["validations"])


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "rising-stars-processor-abc",
        "labels": {"app.kubernetes.io/component": "processor"},
        "annotations": {"kubectl.kubernetes.io/default-container": "processor"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "rising-stars-processor-1"}],
    },
    "spec": {"containers": [{"name": "processor", "image": "rising-stars-processor:1"}]},
}


def _changed(change) -> dict:
    pod = copy.deepcopy(POD)
    change(pod)
    return pod


def test_the_operator_may_change_only_the_pod_deletion_cost():
    objects = render(settings=OPERATOR)
    policy, binding = _admission_policy(objects)
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "rising-stars"
    }
    (account,) = [a for a in of_kind(objects, "ServiceAccount") if component(a) == "operator"]
    operator = f"system:serviceaccount:rising-stars:{account['metadata']['name']}"

    with_cost = _changed(lambda p: p["metadata"]["annotations"].update({COST: "100"}))
    assert _admits(policy, operator, POD, with_cost)
    changed_cost = _changed(lambda p: p["metadata"]["annotations"].update({COST: "-5"}))
    assert _admits(policy, operator, with_cost, changed_cost)
    bare = _changed(lambda p: p["metadata"].pop("annotations"))
    only_cost = _changed(lambda p: p["metadata"].update({"annotations": {COST: "1"}}))
    assert _admits(policy, operator, bare, only_cost)
    denied = {
        "image": lambda p: p["spec"]["containers"][0].update({"image": "evil:1"}),
        "label": lambda p: p["metadata"]["labels"].update({"app.kubernetes.io/component": "x"}),
        "new label": lambda p: p["metadata"]["labels"].update({"quarantine": "true"}),
        "other annotation": lambda p: p["metadata"]["annotations"].update({"a": "b"}),
        "removed annotation": lambda p: p["metadata"].update({"annotations": {COST: "1"}}),
        "owner": lambda p: p["metadata"].pop("ownerReferences"),
        "finalizer": lambda p: p["metadata"].update({"finalizers": ["example.com/hold"]}),
    }
    for what, change in denied.items():
        assert not _admits(policy, operator, POD, _changed(change)), what
    # Anyone else is not this policy's business (RBAC decides).
    other = "system:serviceaccount:rising-stars:someone-else"
    assert _admits(policy, other, POD, _changed(denied["image"]))


def test_no_admission_policy_without_the_operator():
    assert not of_kind(render(), "ValidatingAdmissionPolicy")
    off = render(settings={**OPERATOR, "operator.admissionPolicy.enabled": False})
    assert not of_kind(off, "ValidatingAdmissionPolicy")


# --- 10.19 the signing key under helm template / GitOps --------------------------------------


def test_rendered_without_a_cluster_the_signing_key_comes_from_a_named_secret():
    """`helm template` (k8s/base, Argo CD, Flux) cannot look up the generated key, so each render
    would carry a new one: the generated manifests name an existing Secret and carry no key,
    and the docs say how to create it."""
    base = [
        d
        for d in yaml.safe_load_all((ROOT / "k8s" / "base" / "rising-stars.yaml").read_text())
        if d
    ]
    assert not [s for s in of_kind(base, "Secret") if "signing-keys" in s["metadata"]["name"]]
    (auth,) = [d for d in of_kind(base, "Deployment") if component(d) == "auth"]
    volumes = {v["name"]: v for v in pod_spec(auth)["volumes"]}
    assert volumes["signing-keys"]["secret"]["secretName"] == "rising-stars-auth-signing-keys"
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "GitOps" in deploy and "auth.signingKeys.existingSecret" in deploy
    values = (CHART / "values.yaml").read_text()
    assert "helm template" in values and "existingSecret" in values


# --- 10.19 a namespace default deny ------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_the_namespace_denies_by_default(renders, name):
    deny = [
        p
        for p in of_kind(renders[name], "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1, name
    # Every pod of the release still has its own allow policy besides the deny.
    for workload in of_kind(renders[name], "Deployment"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        own = [p for p in of_kind(renders[name], "NetworkPolicy") if p["spec"]["podSelector"]]
        assert [p for p in own if selects(p, labels)], workload["metadata"]["name"]


def test_kind_dependencies_have_their_own_allow_policies():
    deps = ROOT / "k8s" / "kind" / "deps"
    kustomization = yaml.safe_load((deps / "kustomization.yaml").read_text())
    policies = [
        d
        for f in kustomization["resources"]
        for d in yaml.safe_load_all((deps / f).read_text())
        if d and d["kind"] == "NetworkPolicy"
    ]
    selected = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in policies}
    assert selected == {"postgres", "localstack"}


# --- 10.19 forwarded addresses on EKS ----------------------------------------------------------


def _trusted(container: dict) -> list[ipaddress.IPv4Network]:
    value = env_value(container, "FORWARDED_ALLOW_IPS") or ""
    return [ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip()]


def test_eks_trusts_forwarded_addresses_only_from_the_alb_subnets():
    objects = render((CHART / "values-eks.yaml",))
    trusted = _trusted(upload_api(objects))
    assert trusted
    for network in trusted:
        overlapping = [s for s in EKS_POD_SUBNETS if network.overlaps(s)]
        assert not overlapping, f"{network} also holds pods ({overlapping}): they could forge it"
    # What is trusted is exactly what the API pods admit from the ingress side.
    for service in ("auth", "upload"):
        (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == service]
        admitted = {
            ipaddress.ip_network(peer["ipBlock"]["cidr"])
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
            if "ipBlock" in peer
        }
        assert admitted == set(trusted), service
        assert not [s for s in EKS_POD_SUBNETS for a in admitted if a.overlaps(s)], service


@pytest.mark.parametrize("name", SETS)
def test_forwarded_addresses_are_trusted_only_from_admitted_ingress_addresses(renders, name):
    """Where the ingress is admitted by address (ipBlock), nothing wider may be trusted: the rest
    of such a range (pods, on EKS) could connect and forge X-Forwarded-For."""
    objects = renders[name]
    trusted = _trusted(upload_api(objects))
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == "upload"]
    by_address = [
        ipaddress.ip_network(peer["ipBlock"]["cidr"])
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if "ipBlock" in peer
    ]
    if by_address:
        for network in trusted:
            assert any(network.subnet_of(peer) for peer in by_address), f"{name}: {network}"
