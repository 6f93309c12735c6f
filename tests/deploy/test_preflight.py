"""`make preflight` against kmock's Kubernetes emulator and moto (with the stack deployed):
an empty cluster fails with one fixing sentence per missing item; a prepared one passes."""

from __future__ import annotations

import subprocess
import sys

import yaml
from chart.rendering import CHART
from deploy.conftest_helpers import kubeconfig, prepare

from risingstars.dev import aws_stack, preflight

NS = "rising-stars"
EKS = CHART / "values-eks.yaml"


def _preflight(tmp_path, url: str, values, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "risingstars.dev.preflight", *extra, "--kubeconfig"]
    args.append(str(kubeconfig(tmp_path / "kubeconfig", url)))
    for path in values:
        args += ["-f", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def _stack_values(tmp_path, outputs):
    path = tmp_path / "values-stack.yaml"
    path.write_text(yaml.safe_dump(aws_stack.values_from_outputs(outputs)))
    return path


def test_an_unprepared_cluster_and_account_fail_with_how_to_fix_each(
    kube_emulator, moto_url, tmp_path
):
    _, url = kube_emulator
    # values-eks.yaml's names, in an account where nothing was created (other tests deploy the
    # stack with the same names on the same moto).
    text = EKS.read_text().replace("/rising-stars-", "/absent-")
    text = text.replace("rising-stars-videos", "absent-videos")
    absent = tmp_path / "values-absent.yaml"
    absent.write_text(text)
    done = _preflight(tmp_path, url, [absent])
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    for what in (
        "AWS Load Balancer Controller",
        f"namespace {NS}",
        "pod-readiness-gate-inject=enabled",
        "metrics-server",
        "CRD scaledobjects.keda.sh",
        "CRD triggerauthentications.keda.sh",
        f"Secret {NS}/rising-stars-database",
        "JOBS_QUEUE_URL",
        "EVENTS_QUEUE_URL",
        "bucket absent-videos-123456789012",
        "IRSA role arn:aws:iam::123456789012:role/absent-upload",
        "Prometheus namespace monitoring",
    ):
        lines = [f for f in failed if what in f]
        assert lines, f"no FAIL line for {what}:\n{done.stdout}"
        assert len(lines[0].split(what, 1)[1]) > 20, f"no fix given: {lines[0]}"


def test_a_prepared_cluster_and_the_deployed_stack_pass(kube_emulator, stack, tmp_path):
    api, url = kube_emulator
    _, outputs = stack
    prepare(api, url)
    done = _preflight(tmp_path, url, [EKS, _stack_values(tmp_path, outputs)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 missing" in done.stdout


def test_a_missing_secret_key_and_a_role_that_does_not_trust_the_account_fail(
    kube_emulator, stack, tmp_path
):
    api, url = kube_emulator
    _, outputs = stack
    prepare(api, url)
    values = yaml.safe_load(_stack_values(tmp_path, outputs).read_text())
    values["database"] = {"uploadUrlKey": "upload-url-2"}
    # The processor role trusts only the processor's account, not the upload worker's.
    values["uploadWorker"]["serviceAccount"]["annotations"] = {
        preflight.IRSA: outputs["ProcessorRoleArn"]
    }
    path = tmp_path / "values-broken.yaml"
    path.write_text(yaml.safe_dump(values))
    done = _preflight(tmp_path, url, [EKS, path])
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert any("key upload-url-2" in line for line in failed), done.stdout
    assert any(
        "rising-stars-processor for system:serviceaccount:rising-stars:rising-stars-upload-worker"
        in line
        for line in failed
    ), done.stdout
    assert len(failed) == 2, done.stdout


def test_kedas_role_must_trust_kedas_own_account(kube_emulator, stack, tmp_path):
    api, url = kube_emulator
    _, outputs = stack
    prepare(api, url)
    values = [EKS, _stack_values(tmp_path, outputs)]
    done = _preflight(tmp_path, url, values, "--keda-account", "autoscaling:keda-operator")
    assert done.returncode == 1
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert outputs["KedaRoleArn"] in failed and "autoscaling:keda-operator" in failed
