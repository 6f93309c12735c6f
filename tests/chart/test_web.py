"""The web component (issue 23) in every overlay: its own Deployment and Service, reached at
exactly `/` and under /assets (its metrics and probes are not public), talking to nothing."""

from __future__ import annotations

import pytest
from chart.manifests import component, containers, of_kind, pod_spec
from chart.rendering import VALUES_SETS

SETS = sorted(VALUES_SETS)


@pytest.mark.parametrize("name", SETS)
def test_every_overlay_renders_the_web_component(renders, name):
    objects = renders[name]
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == "web"]
    (container,) = containers(deployment)
    assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith("rising-stars-web")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec(deployment)["automountServiceAccountToken"] is False
    (service,) = [s for s in of_kind(objects, "Service") if component(s) == "web"]
    assert service["spec"]["type"] == "ClusterIP"
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == "web"]
    # DNS only: the browser calls the API itself, through the ingress.
    for rule in policy["spec"]["egress"]:
        assert {p["port"] for p in rule["ports"]} <= {53}, rule


@pytest.mark.parametrize("name", [n for n in SETS if n != "ci-minimal"])
def test_the_ingress_sends_the_page_and_its_assets_and_nothing_else_to_web(renders, name):
    objects = renders[name]
    (ingress,) = of_kind(objects, "Ingress")
    web = next(s["metadata"]["name"] for s in of_kind(objects, "Service") if component(s) == "web")
    to_web = {
        (path["path"], path["pathType"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
        if path["backend"]["service"]["name"] == web
    }
    assert to_web == {("/", "Exact"), ("/assets", "Prefix")}
