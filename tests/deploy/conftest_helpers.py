"""What tests/deploy's fixtures and tests share."""

from __future__ import annotations

import base64

import httpx
import yaml

from risingstars.dev import preflight

OIDC = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
STACK = "rising-stars"
NS = "rising-stars"


def kubeconfig(path, url: str):
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "read-only"}}],
            }
        )
    )
    return path


def prepare(api, url: str) -> None:
    """What docs/deploy.md's prerequisites make of a cluster."""
    api.namespaces[NS] = {
        "metadata": {"name": NS, "labels": {preflight.READINESS_GATE_LABEL: "enabled"}}
    }
    api.namespaces["monitoring"] = {"metadata": {"name": "monitoring"}}
    with httpx.Client(base_url=url) as http:
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for name in [preflight.ALB_CONTROLLER_CRD, *(c for c, _ in preflight.CRDS.values())]:
            http.post(crds, json={"kind": "CustomResourceDefinition", "metadata": {"name": name}})
        http.post(
            "/apis/apiregistration.k8s.io/v1/apiservices",
            json={
                "kind": "APIService",
                "metadata": {"name": preflight.METRICS_API},
                "status": {"conditions": [{"type": "Available", "status": "True"}]},
            },
        )
        url_b64 = base64.b64encode(b"postgresql://x").decode()
        http.post(
            f"/api/v1/namespaces/{NS}/secrets",
            json={
                "kind": "Secret",
                "metadata": {"name": "rising-stars-database", "namespace": NS},
                "data": {"auth-url": url_b64, "upload-url": url_b64},
            },
        )
