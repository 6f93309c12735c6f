"""chart-boot inside `make test`: the rendered chart boots and serves the whole flow for every
overlay that can run here, and a wrongly wired chart fails it with the precise reason.

All boots run at once (each in its own node network): a boot mostly waits on probes and
queues. The wiring mistakes are made by mutating the rendered manifests, generically: the first
readiness probe, the first ingress rule, the first secretKeyRef.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from risingstars.dev.chartboot import cluster, netns, netpol, overlays
from risingstars.dev.chartboot.clip import clip_bytes
from risingstars.dev.chartboot.manifests import Manifests, WiringError, matches, render

_REASON = netns.available()
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"chart-boot: {_REASON}"),
    # The first test waits for every boot (bounded inside: BOOT_TIMEOUT, flow deadlines).
    pytest.mark.timeout(600),
]

OVERLAYS = list(overlays.ALL)


def _probe_path(objects: list[dict]) -> tuple[str, set[str]]:
    """The first Deployment's readiness probe path made wrong; only that Deployment boots."""
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            get = c.get("readinessProbe", {}).get("httpGet")
            if get:
                get["path"] += "-wrong"
                return f"{obj['metadata']['name']} {get['path']}", {obj["metadata"]["name"]}
    raise AssertionError("no readiness probe to break")


def _ingress_backend(objects: list[dict]) -> tuple[str, set[str]]:
    """The first ingress rule sent to another rule's Service; only the Deployments behind the
    Ingress's Services boot (the flow's first request goes to the wrong one and must fail)."""
    ing = next(o for o in objects if o["kind"] == "Ingress")
    paths = [p for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]]
    first = paths[0]["backend"]["service"]
    other = next(
        p["backend"]["service"] for p in paths if p["backend"]["service"]["name"] != first["name"]
    )
    paths[0]["backend"]["service"] = copy.deepcopy(other)
    services = [
        o
        for o in objects
        if o["kind"] == "Service" and o["metadata"]["name"] in {first["name"], other["name"]}
    ]
    behind = {
        o["metadata"]["name"]
        for o in objects
        for svc in services
        if o["kind"] == "Deployment"
        and matches(svc["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"])
    }
    return f"{paths[0]['path']} -> {other['name']}", behind


MUTATIONS = {"wrong-probe": _probe_path, "wrong-ingress": _ingress_backend}
broken: dict[str, str] = {}


@pytest.fixture(scope="module")
def results() -> dict[str, cluster.Result]:
    runs = [overlays.ALL[name]() for name in OVERLAYS]
    # The failure runs: the production-shaped values, one pod per Deployment.
    base = overlays.boot()
    for name in MUTATIONS:
        runs.append(dataclasses.replace(base, name=name, replicas_cap=1, terminate=False))

    def mutator(name):
        def mutate(objects):
            broken[name], focus = MUTATIONS[name](objects)
            return focus

        return mutate

    return cluster.run(runs, clip_bytes(), mutate={n: mutator(n) for n in MUTATIONS})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_chart_boots_and_serves_the_flow(results, overlay: str) -> None:
    result = results[overlay]
    assert result.passed, f"{overlay}: {result.error}\nsteps:\n" + "\n".join(
        result.report.get("steps", [])
    )
    flow = result.report["flow"]
    assert set(flow["downloads"]) == {"processed_url", "original_url"}


def test_pods_stop_cleanly_with_requests_in_flight(results) -> None:
    """The production-shaped boot deletes every pod: each ends within its grace period and
    the request in flight through its preStop and SIGTERM gets its answer."""
    term = results["boot"].report["termination"]
    served = [r for r in term.values() if r.get("inflight", "").startswith("HTTP ")]
    assert len(served) >= 2, term  # at least the auth and upload pods
    # The largest request replayed to the upload API pods is the upload itself: accepted.
    assert any(r["inflight"].startswith("HTTP 201") for r in served), term
    for pod, r in term.items():
        for name, c in r["term"]["containers"].items():
            assert not c["killed"], f"{pod}/{name} killed at the end of its grace period"


def test_a_wrong_probe_path_fails_the_boot(results) -> None:
    result = results["wrong-probe"]
    assert not result.passed
    deployment, path = broken["wrong-probe"].split()
    assert f"{deployment}-0: GET {path} on :" in result.error, result.error
    assert "-> HTTP 404" in result.error, result.error


def test_an_ingress_rule_to_the_wrong_service_fails_the_flow(results) -> None:
    result = results["wrong-ingress"]
    assert not result.passed
    path, service = broken["wrong-ingress"].split(" -> ")
    assert f"rule {path} (Prefix) -> Service {service}:" in result.error, result.error
    assert "expected HTTP 201" in result.error, result.error


def test_a_missing_secret_key_fails_before_anything_starts() -> None:
    objects = render(overlays.boot().values, release="rising-stars", namespace="rising-stars")
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    ref["key"] += "-missing"
                    with pytest.raises(WiringError) as failure:
                        cluster.preflight(
                            Manifests(objects, "rising-stars", overlays.boot().existing())
                        )
                    want = (
                        f"Deployment/{obj['metadata']['name']} container {c['name']}: "
                        f"env {env['name']}: couldn't find key {ref['key']} in Secret "
                        f"rising-stars/{ref['name']}"
                    )
                    assert str(failure.value) == want
                    return
    raise AssertionError("no secretKeyRef to break")


def test_network_policies_are_judged_on_the_connections_made(results) -> None:
    """The boot saw upload fetch auth's JWKS through the Service, the pods reach the database
    and the AWS endpoint, and the load balancer reach the API pods; all of it allowed."""
    connections = results["boot"].report["connections"]
    assert any(
        c.startswith("rising-stars-upload-") and " -> rising-stars-auth-" in c for c in connections
    )
    assert any(" -> rds.chartboot.test:5432" in c for c in connections)
    assert any(" -> aws.chartboot.test:4566" in c for c in connections)
    assert any(c.startswith("load balancer -> rising-stars-auth-") for c in connections)


def test_a_policy_missing_a_needed_peer_denies_the_connection() -> None:
    objects = render(overlays.boot().values, release="rising-stars", namespace="rising-stars")
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] == "Deployment"
    }
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    upload = netpol.Peer(
        "upload", "10.77.0.5", "rising-stars", tuple(pods["rising-stars-upload"].items())
    )
    auth = netpol.Peer(
        "auth", "10.77.0.6", "rising-stars", tuple(pods["rising-stars-auth"].items())
    )
    assert netpol.denied(policies, upload, auth, 8080) is None
    auth_policy = next(p for p in policies if p["metadata"]["name"] == "rising-stars-auth")
    for rule in auth_policy["spec"]["ingress"]:
        rule["from"] = [
            peer
            for peer in rule["from"]
            if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
            != "upload"
        ]
    assert netpol.denied(policies, upload, auth, 8080) == (
        "the ingress of auth (NetworkPolicy rising-stars-auth, "
        "rising-stars-namespace-default-deny) allows none"
    )


def test_nothing_is_left_behind(results) -> None:
    """Namespaces, their /etc/netns directories and work directories are gone after the boots."""
    mine = f"{netns.PREFIX}-{os.getpid()}-"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert mine not in listed
    assert not list(Path("/etc/netns").glob(f"{mine}*")) if Path("/etc/netns").exists() else True
    assert not list(Path(netns.WORK_ROOT).glob(f"{mine}*"))


def test_a_crashed_run_is_cleaned_up_by_the_next() -> None:
    """Whatever a killed run left (its process is gone) goes: namespaces, their /etc/netns
    directories, work directories."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    prefix = f"{netns.PREFIX}-{gone.pid}-stale"
    subprocess.run(["ip", "netns", "add", f"{prefix}-node"], check=True)
    (Path("/etc/netns") / f"{prefix}-node").mkdir(parents=True)
    work = Path(netns.WORK_ROOT) / f"{prefix}-work"
    work.mkdir()
    try:
        removed = netns.clean_stale()
        assert f"{prefix}-node" in removed
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert prefix not in listed
        assert not (Path("/etc/netns") / f"{prefix}-node").exists()
        assert not work.exists()
    finally:
        subprocess.run(["ip", "netns", "delete", f"{prefix}-node"], capture_output=True)


def test_the_operator_logs_in_and_reconciles(results) -> None:
    """In the production-shaped boot the operator reaches the API server with its service
    account token and CA, reads the jobs queue with its IRSA role, and writes status."""
    controllers = results["boot"].report["controllers"]
    assert controllers, results["boot"].report["steps"]
    for who, conditions in controllers.items():
        assert conditions["Ready"].startswith("True"), (who, conditions)
        assert conditions["Error"].startswith("False"), (who, conditions)
