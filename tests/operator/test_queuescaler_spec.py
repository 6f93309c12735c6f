"""The QueueScaler spec: parsing, and the CRD (charts/rising-stars/crds/queuescaler.yaml) in
step with it."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from risingstars.operator import spec

CRD = Path(__file__).resolve().parents[2] / "charts/rising-stars/crds/queuescaler.yaml"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"


def _schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def test_defaults_fill_what_the_spec_leaves_out():
    s = spec.parse(
        {"scaleTargetRef": {"name": "processor"}, "queue": {"url": URL}, "maxReplicas": 4}
    )
    assert s.target == "processor"
    assert s.policy.target_per_replica == 5 and s.policy.min_replicas == 1
    assert s.policy.max_replicas == 4 and s.policy.activation_backlog == 0
    assert s.policy.stabilization_seconds == 300 and s.policy.cooldown_seconds == 300
    assert (s.count_in_flight, s.count_delayed, s.polling_interval_seconds) == (True, False, 15)
    assert s.busy_pods == spec.BusyPodProtection(True, 8080, "/metrics", None)
    assert s.queue.region_or("us-east-1") == "eu-west-1"  # from the queue's URL


def test_the_crd_defaults_are_the_operators():
    props = _schema()["properties"]["spec"]["properties"]
    crd_defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    busy = props["busyPodProtection"]["properties"]
    busy_defaults = {k: v["default"] for k, v in busy.items() if "default" in v}
    assert crd_defaults == {**spec.DEFAULTS, "busyPodProtection": {}}
    assert busy_defaults == spec.BUSY_POD_DEFAULTS


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"queue": {"url": URL}, "maxReplicas": 2}, "scaleTargetRef.name"),
        ({"scaleTargetRef": {"name": "p"}, "queue": {}, "maxReplicas": 2}, "url or name"),
        ({"scaleTargetRef": {"name": "p"}, "queue": {"url": URL}}, "maxReplicas is required"),
        (
            {
                "scaleTargetRef": {"name": "p"},
                "queue": {"url": URL},
                "maxReplicas": 2,
                "minReplicas": 3,
            },
            "below spec.minReplicas",
        ),
        (
            {
                "scaleTargetRef": {"name": "p"},
                "queue": {"url": URL},
                "maxReplicas": 2,
                "targetBacklogPerReplica": 0,
            },
            "targetBacklogPerReplica must be at least 1",
        ),
        (
            {
                "scaleTargetRef": {"name": "p"},
                "queue": {"url": URL},
                "maxReplicas": 2,
                "countInFlight": "yes",
            },
            "countInFlight must be true or false",
        ),
        (
            {
                "scaleTargetRef": {"name": "p"},
                "queue": {"url": URL},
                "maxReplicas": 2,
                "busyPodProtection": {"metricsPath": "metrics"},
            },
            "metricsPath must start with /",
        ),
    ],
)
def test_a_spec_that_cannot_be_acted_on_says_which_field(raw, message):
    with pytest.raises(spec.SpecError, match=message):
        spec.parse(raw)


def test_the_chart_renders_a_queuescaler_the_crd_accepts(chart):
    (qs,) = [d for d in chart.render("rs-test") if d["kind"] == "QueueScaler"]
    jsonschema.validate(qs, _schema())
    parsed = spec.parse(qs["spec"])
    assert parsed.target == "rs-rising-stars-processor"
    assert parsed.busy_pods.metrics_port == 8080


def test_the_crd_rejects_what_the_operator_would():
    schema = _schema()
    good = {
        "apiVersion": "risingstars.io/v1alpha1",
        "kind": "QueueScaler",
        "metadata": {},
        "spec": {"scaleTargetRef": {"name": "p"}, "queue": {"url": URL}, "maxReplicas": 2},
    }
    jsonschema.validate(good, schema)
    for bad_spec in (
        {**good["spec"], "targetBacklogPerReplica": 0},
        {**good["spec"], "minReplicas": -1},
        {k: v for k, v in good["spec"].items() if k != "maxReplicas"},
        {**good["spec"], "queue": {"url": "sqs.example.com/q"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "spec": bad_spec}, schema)
