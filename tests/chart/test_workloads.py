"""The workloads' shape: the upload worker apart from the API, the spill volume, production-safe
base values, one drain knob, and the Deployment settings values expose (issue 12)."""

from __future__ import annotations

import re

import pytest
import yaml
from chart.manifests import component, containers, env_value, of_kind, pod_spec
from chart.rendering import CHART, VALUES_SETS, helm_template, render

SETS = sorted(VALUES_SETS)


def deployment(objects: list[dict], name: str) -> dict:
    (found,) = [d for d in of_kind(objects, "Deployment") if component(d) == name]
    return found


def container(objects: list[dict], name: str) -> dict:
    (found,) = pod_spec(deployment(objects, name))["containers"]
    return found


def policy(objects: list[dict], name: str) -> dict:
    (found,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == name]
    return found


def quantity_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi)?", quantity).groups()
    return int(number) * {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}[unit]


# --- the upload worker ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_the_upload_worker_runs_the_consumers_apart_from_the_api(renders, name):
    objects = renders[name]
    api, worker = container(objects, "upload"), container(objects, "upload-worker")
    assert api["args"] == ["serve"]
    assert worker["args"] == ["worker"]
    assert worker["command"] == api["command"]
    assert worker["image"] == api["image"]
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Its own Service (metrics) and ServiceAccount.
    services = [s for s in of_kind(objects, "Service") if component(s) == "upload-worker"]
    assert len(services) == 1
    account = pod_spec(deployment(objects, "upload-worker"))["serviceAccountName"]
    assert account != pod_spec(deployment(objects, "upload"))["serviceAccountName"]


@pytest.mark.parametrize("name", SETS)
def test_the_upload_worker_is_reached_only_for_metrics_and_talks_to_db_and_aws(renders, name):
    objects = renders[name]
    worker = policy(objects, "upload-worker")
    (rule,) = worker["spec"]["ingress"]
    scrapers = policy(objects, "upload")["spec"]["ingress"][0]["from"]
    assert rule["from"] and all(peer in scrapers for peer in rule["from"])
    # Neither the ingress (ipBlock) nor any pod of the release but the helm test pod.
    assert not [p for p in rule["from"] if "ipBlock" in p]
    release_pods = [p for p in rule["from"] if "namespaceSelector" not in p]
    assert all(
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
        for p in release_pods
    )
    upload_egress = policy(objects, "upload")["spec"]["egress"]
    # DNS, the database and AWS: upload's egress less the auth Service.
    assert worker["spec"]["egress"] == upload_egress[:3]


def test_the_upload_worker_scaler_and_budget_follow_its_own_values():
    fixed = render(settings={"uploadWorker.replicaCount": 3})
    assert deployment(fixed, "upload-worker")["spec"]["replicas"] == 3
    assert [p for p in of_kind(fixed, "PodDisruptionBudget") if component(p) == "upload-worker"]
    scaled = render(settings={"uploadWorker.autoscaling.enabled": True})
    (hpa,) = [
        h for h in of_kind(scaled, "HorizontalPodAutoscaler") if component(h) == "upload-worker"
    ]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rising-stars-upload-worker"
    assert "replicas" not in deployment(scaled, "upload-worker")["spec"]


# --- the spill volume -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_upload_api_pods_spill_into_a_size_limited_empty_dir(renders, name):
    objects = renders[name]
    api = container(objects, "upload")
    spill_dir = env_value(api, "UPLOAD_SPILL_DIR")
    mounts = {m["mountPath"]: m["name"] for m in api["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment(objects, "upload"))["volumes"]}
    limit = volumes[mounts[spill_dir]]["emptyDir"]["sizeLimit"]
    assert quantity_bytes(limit) > int(env_value(api, "UPLOAD_SPILL_BYTES"))
    for variable in ("UPLOAD_IDLE_SECONDS", "UPLOAD_DEADLINE_SECONDS", "UPLOAD_MAX_PER_USER"):
        assert int(env_value(api, variable)) > 0
    assert env_value(container(objects, "upload-worker"), "UPLOAD_SPILL_DIR") is None


def test_spill_settings_come_from_values():
    objects = render(settings={"upload.settings.spillBytes": 5, "upload.settings.maxPerUser": 7})
    api = container(objects, "upload")
    assert env_value(api, "UPLOAD_SPILL_BYTES") == "5"
    assert env_value(api, "UPLOAD_MAX_PER_USER") == "7"


# --- production-safe base values ----------------------------------------------------------------


def test_the_base_values_carry_no_emulator_or_credentials():
    objects = render()
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        for c in containers(workload):
            assert env_value(c, "AWS_ENDPOINT_URL") is None, workload["metadata"]["name"]
            assert "envFrom" not in c, workload["metadata"]["name"]
            for entry in c.get("env", []):
                assert "localstack" not in str(entry.get("value", "")), entry
    # The database URL is never a value: no Secret is rendered from values.
    assert not [s for s in of_kind(objects, "Secret") if component(s) == "database"]
    values = yaml.safe_dump(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert "localstack" not in values.lower()


def test_the_kind_values_keep_the_local_dependencies():
    objects = render((CHART / "values-kind.yaml",))
    assert env_value(container(objects, "upload"), "AWS_ENDPOINT_URL") == "http://localstack:4566"
    assert [s for s in of_kind(objects, "Secret") if component(s) == "database"]


# --- one drain knob -------------------------------------------------------------------------------


@pytest.mark.parametrize("component_name", ["auth", "upload", "upload-worker", "processor"])
def test_one_knob_sets_the_shutdown_timeout_and_the_grace_period(component_name):
    key = {"upload-worker": "uploadWorker"}.get(component_name, component_name)
    short = render(settings={f"{key}.shutdownSeconds": 30, "config.drainSeconds": 4})
    long = render(settings={f"{key}.shutdownSeconds": 300, "config.drainSeconds": 4})
    for objects, seconds in ((short, 30), (long, 300)):
        spec = pod_spec(deployment(objects, component_name))
        (c,) = spec["containers"]
        assert env_value(c, "SHUTDOWN_TIMEOUT_SECONDS") == str(seconds)
        assert env_value(c, "DRAIN_SECONDS") == "4"
        assert c["lifecycle"]["preStop"]["sleep"]["seconds"] == 4
        assert spec["terminationGracePeriodSeconds"] >= 4 + 4 + seconds


def test_the_processor_grace_must_cover_the_longest_job_the_operator_may_interrupt():
    settings = {
        "processor.autoscaling.mode": "operator",
        "processor.shutdownSeconds": 120,
        "processor.autoscaling.operator.busyPodProtection.maxJobSeconds": 600,
    }
    done = helm_template(settings=settings)
    assert done.returncode != 0
    assert "maxJobSeconds" in done.stderr
    ok = render(settings={**settings, "processor.shutdownSeconds": 600})
    spec = pod_spec(deployment(ok, "processor"))
    assert spec["terminationGracePeriodSeconds"] >= 600


# --- what values expose ------------------------------------------------------------------------


def test_probes_port_strategy_and_history_come_from_values():
    objects = render(
        settings={
            "workloadDefaults.revisionHistoryLimit": 2,
            "auth.probes": {"readiness": {"periodSeconds": 11}},
            "auth.containerPort": 9000,
            "auth.strategy": {"type": "Recreate"},
        }
    )
    auth = deployment(objects, "auth")
    (c,) = pod_spec(auth)["containers"]
    assert auth["spec"]["revisionHistoryLimit"] == 2
    assert auth["spec"]["strategy"] == {"type": "Recreate"}
    assert c["readinessProbe"]["periodSeconds"] == 11
    assert c["readinessProbe"]["failureThreshold"] == 2, "defaults kept for the other keys"
    assert c["ports"][0]["containerPort"] == 9000
    assert env_value(c, "PORT") == "9000"
    (auth_policy,) = [p for p in of_kind(objects, "NetworkPolicy") if component(p) == "auth"]
    assert auth_policy["spec"]["ingress"][0]["ports"] == [{"port": 9000, "protocol": "TCP"}]
    upload = policy(objects, "upload")
    assert {"port": 9000, "protocol": "TCP"} in upload["spec"]["egress"][-1]["ports"]
    # The other components keep the defaults.
    assert deployment(objects, "upload")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_service_accounts_can_be_brought_by_the_installer():
    objects = render(settings={"auth.serviceAccount": {"create": False, "name": "mine"}})
    assert pod_spec(deployment(objects, "auth"))["serviceAccountName"] == "mine"
    assert not [a for a in of_kind(objects, "ServiceAccount") if component(a) == "auth"]
    done = helm_template(settings={"auth.serviceAccount": {"create": False, "name": ""}})
    assert done.returncode != 0 and "serviceAccount.name" in done.stderr


def test_security_contexts_take_per_component_overrides_over_the_hardened_defaults():
    objects = render(
        settings={
            "processor.podSecurityContext": {"fsGroupChangePolicy": "OnRootMismatch"},
            "processor.securityContext": {"runAsUser": 20000},
        }
    )
    spec = pod_spec(deployment(objects, "processor"))
    assert spec["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    assert spec["securityContext"]["runAsNonRoot"] is True
    (c,) = spec["containers"]
    assert c["securityContext"]["runAsUser"] == 20000
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert (
        pod_spec(deployment(objects, "auth"))["containers"][0]["securityContext"]["runAsUser"]
        == 10001
    )


@pytest.mark.parametrize("registry", ["registry.example.com/team", "registry.example.com/team/"])
def test_the_chart_joins_the_registry_with_or_without_a_trailing_slash(registry):
    objects = render(settings={"image.registry": registry, "image.tag": "1"})
    assert container(objects, "auth")["image"] == "registry.example.com/team/rising-stars-auth:1"


@pytest.mark.parametrize("name", SETS)
def test_checkov_skips_are_keyed_by_the_check_they_skip(renders, name):
    for obj in renders[name]:
        annotated = [obj["metadata"].get("annotations") or {}]
        if obj["kind"] == "Deployment":
            annotated.append(obj["spec"]["template"]["metadata"].get("annotations") or {})
        for found in annotated:
            for key, value in found.items():
                if key.startswith("checkov.io/skip"):
                    check = value.split("=", 1)[0]
                    assert key == f"checkov.io/skip-{check.lower().replace('_', '-')}", key


def test_service_monitor_extra_labels_are_labels():
    objects = render(settings={"metrics.serviceMonitor": {"enabled": True, "labels": {"a": "b"}}})
    monitors = of_kind(objects, "ServiceMonitor")
    assert {component(m) for m in monitors} == {
        "auth",
        "upload",
        "upload-worker",
        "processor",
        "web",
    }
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["a"] == "b"
        assert monitor["metadata"]["labels"]["app.kubernetes.io/instance"] == "rising-stars"
