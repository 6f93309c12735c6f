"""tracing.otlpEndpoint: the services that trace (auth, upload, upload-worker, processor) get
OTEL_EXPORTER_OTLP_ENDPOINT and a NetworkPolicy egress rule to the collector (tracing.egress);
left empty, the chart renders neither (docs/observability.md)."""

from __future__ import annotations

import pytest
from chart.manifests import component, env_names, env_value, of_kind, pod_spec
from chart.rendering import VALUES_SETS, helm_template, render

SETS = sorted(VALUES_SETS)
TRACED = ["auth", "upload", "upload-worker", "processor"]
ENDPOINT = "http://otel-collector.monitoring.svc:4318"
COLLECTOR = [
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "otel-collector"}},
    }
]
VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def _container(objects: list[dict], name: str) -> dict:
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == name]
    (found,) = pod_spec(deployment)["containers"]
    return found


def _egress(objects: list[dict], name: str) -> list[dict]:
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == name]
    return policy["spec"]["egress"]


def _all_containers(objects: list[dict]) -> list[dict]:
    found = []
    for obj in objects:
        if obj["kind"] in {"Deployment", "Job", "Pod"}:
            spec = pod_spec(obj)
            found += spec.get("initContainers", []) + spec["containers"]
    return found


@pytest.mark.parametrize("ports", [None, [4317, 4318]])
def test_the_endpoint_reaches_the_traced_containers_and_their_policies_let_them_out(ports):
    egress = {"peers": COLLECTOR} | ({"ports": ports} if ports else {})
    objects = render(settings={"tracing": {"otlpEndpoint": ENDPOINT, "egress": egress}})
    expected_ports = [{"port": p, "protocol": "TCP"} for p in ports or [4318]]
    for name in TRACED:
        assert env_value(_container(objects, name), VARIABLE) == ENDPOINT, name
        assert {"to": COLLECTOR, "ports": expected_ports} in _egress(objects, name), name
    # The web app and the operator make no spans: neither the variable nor the way out.
    for name in ("web", "operator"):
        deployments = [d for d in of_kind(objects, "Deployment") if component(d) == name]
        for deployment in deployments:
            assert VARIABLE not in env_names(pod_spec(deployment)["containers"][0]), name
    for rule in _egress(objects, "web"):
        assert rule["to"] != COLLECTOR


@pytest.mark.parametrize("name", SETS)
def test_without_an_endpoint_nothing_is_rendered(renders, name):
    objects = renders[name]
    for container in _all_containers(objects):
        assert not {n for n in env_names(container) if n.startswith("OTEL_")}, container["name"]
    for traced in TRACED:
        for rule in _egress(objects, traced):
            assert {"port": 4318, "protocol": "TCP"} not in rule.get("ports", []), traced


def test_an_endpoint_without_collector_peers_is_refused():
    # An egress rule with no peers would let the pods reach every address.
    done = helm_template(settings={"tracing.otlpEndpoint": ENDPOINT})
    assert done.returncode != 0
    assert "tracing.egress.peers" in done.stderr
    # Without NetworkPolicies there is nothing to open: the variable alone.
    objects = render(settings={"tracing.otlpEndpoint": ENDPOINT, "networkPolicy.enabled": False})
    for name in TRACED:
        assert env_value(_container(objects, name), VARIABLE) == ENDPOINT, name
