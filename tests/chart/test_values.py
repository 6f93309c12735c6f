"""Behaviour chosen by values: the processor's scaler, secrets, and what the schema rejects."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from chart.manifests import component, of_kind, pod_spec, scalers_of
from chart.rendering import CHART, RELEASE, VALUES_SETS, helm_template, render
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ROOT = Path(__file__).resolve().parents[2]
PROCESSOR = f"{RELEASE}-processor"


def processor_scalers(objects: list[dict]) -> list[str]:
    return [s.split("/")[0] for s in scalers_of(objects, PROCESSOR)]


@pytest.mark.parametrize(
    ("mode", "scaler"),
    [("hpa", ["HorizontalPodAutoscaler"]), ("keda", ["ScaledObject"]), ("none", [])],
)
def test_processor_mode_renders_exactly_its_scaler(mode, scaler):
    objects = render(settings={"processor.autoscaling.mode": mode})
    assert processor_scalers(objects) == scaler
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == "processor"]
    assert ("replicas" in deployment["spec"]) == (not scaler)


def test_operator_mode_leaves_the_processor_to_the_operator():
    objects = render(settings={"processor.autoscaling.mode": "operator"})
    assert "HorizontalPodAutoscaler" not in processor_scalers(objects)
    assert "ScaledObject" not in processor_scalers(objects)
    assert not of_kind(objects, "TriggerAuthentication")
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == "processor"]
    assert "replicas" not in deployment["spec"]
    if list((CHART / "templates").glob("operator-*.yaml")):
        # The operator issue's templates: its QueueScaler is then the one scaler.
        assert processor_scalers(objects) == ["QueueScaler"]
        assert [d for d in of_kind(objects, "Deployment") if component(d) == "operator"]
    for other in ("hpa", "keda", "none"):
        rendered = render(settings={"processor.autoscaling.mode": other})
        # crds/ is installed whatever the values (Helm's rule); everything else is mode-bound.
        leftovers = [o for o in rendered if component(o) == "operator"]
        assert [o["kind"] for o in leftovers] in ([], ["CustomResourceDefinition"])
        assert not of_kind(rendered, "QueueScaler")


def test_keda_counts_in_flight_messages_and_uses_irsa_on_eks():
    objects = render((CHART / "values-eks.yaml",))
    (scaled,) = of_kind(objects, "ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["scaleOnInFlight"] == "true"
    assert trigger["metadata"]["queueURL"].endswith("/rising-stars-jobs")
    (auth,) = of_kind(objects, "TriggerAuthentication")
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}


def test_a_signing_key_is_generated_unless_an_existing_secret_is_named():
    objects = render()
    (secret,) = [
        s for s in of_kind(objects, "Secret") if s["metadata"]["name"].endswith("signing-keys")
    ]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (pem,) = secret["data"].values()
    key = load_pem_private_key(base64.b64decode(pem), password=None)
    assert isinstance(key, Ed25519PrivateKey)

    objects = render(settings={"auth.signingKeys.existingSecret": "my-keys"})
    assert not [
        s for s in of_kind(objects, "Secret") if s["metadata"]["name"].endswith("signing-keys")
    ]
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == "auth"]
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["signing-keys"]["secret"]["secretName"] == "my-keys"


def test_the_database_url_secret_exists_before_the_migrations_run():
    # Development only: values-kind.yaml gives the URL as a value.
    objects = render((CHART / "values-kind.yaml",))
    (secret,) = [s for s in of_kind(objects, "Secret") if component(s) == "database"]
    job_weights = [
        int(j["metadata"]["annotations"]["helm.sh/hook-weight"]) for j in of_kind(objects, "Job")
    ]
    annotations = secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < min(job_weights)
    # Production (the base values, EKS) names an existing Secret: the chart then creates none.
    objects = render((CHART / "values-eks.yaml",))
    assert not [s for s in of_kind(objects, "Secret") if component(s) == "database"]
    objects = render()
    assert not [s for s in of_kind(objects, "Secret") if component(s) == "database"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"processor.autoscaling.mode": "cpu"}, "mode"),
        ({"auth.settings.passwordMinLength": 4}, "passwordMinLength"),
        ({"aws.jobsQueueUrl": "rising-stars-jobs"}, "jobsQueueUrl"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"securityContext.runAsUser": 0}, "runAsUser"),
        ({"auth.replicaCount": 0}, "replicaCount"),
        ({"upload.settings.unknownSetting": 1}, "unknownSetting"),
        # The grace period is derived from shutdownSeconds, not set.
        ({"upload.terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
        ({"upload.shutdownSeconds": 0}, "shutdownSeconds"),
        ({"processor.autoscaling.minReplicas": 0}, "minReplicas"),
        ({"database.url": "", "database.existingSecret": ""}, "database"),
    ],
)
@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_bad_values_fail_at_install_time(settings, message, helm):
    done = helm_template(settings=settings, helm=helm)
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("name", sorted(VALUES_SETS))
def test_helm_3_and_4_render_the_same_manifests(name):
    # A named signing-key Secret: otherwise each render generates a different key.
    settings = {"auth.signingKeys.existingSecret": "keys"}
    assert render(VALUES_SETS[name], settings, "helm3") == render(
        VALUES_SETS[name], settings, "helm4"
    )


def test_the_generated_kubectl_path_holds_no_secret():
    objects = [
        d
        for d in yaml.safe_load_all((ROOT / "k8s" / "base" / "rising-stars.yaml").read_text())
        if d
    ]
    assert objects
    assert not of_kind(objects, "Secret")
    assert not [
        o for o in objects if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
