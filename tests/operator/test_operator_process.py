"""`python -m risingstars.operator` as the chart runs it (liveness, metrics, JSON logs, a clean
stop on SIGTERM), and the dry-run command `make run` documents."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import httpx

from risingstars.dev.infra import free_port


async def test_the_process_serves_liveness_and_metrics_and_stops_on_sigterm(
    cluster, kubeconfig, jobs, namespace, moto_url, wait_for, tmp_path, chart
):
    await cluster.deployment(namespace, replicas=1)
    await cluster.queuescaler(namespace, "processor", jobs.spec())
    await jobs.send(8)
    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACES": namespace,
        "METRICS_PORT": str(metrics_port),
        "HEALTH_PORT": str(health_port),
        "AWS_ENDPOINT_URL": moto_url,
    }
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "risingstars.operator"], env=env, stdout=out, stderr=out
        )
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def answers(url: str) -> httpx.Response | None:
                try:
                    response = await http.get(url)
                except httpx.HTTPError:
                    return None
                return response if response.status_code == 200 else None

            await wait_for(
                lambda: answers(f"http://127.0.0.1:{health_port}/healthz"), "the liveness endpoint"
            )
            await wait_for(lambda: cluster.replicas(namespace) == 2, "the scale-up to ceil(8 / 5)")
            metrics = await answers(f"http://127.0.0.1:{metrics_port}/metrics")
            assert metrics is not None
            assert f'operator_desired_replicas{{namespace="{namespace}"' in metrics.text
            assert "operator_reconcile_duration_seconds_count" in metrics.text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0, log.read_text()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    scaled = [line for line in lines if line["message"] == "scaled"]
    assert scaled and scaled[0]["service"] == "operator" and scaled[0]["to"] == 2
    # No per-run success lines (a timer logged one each second): at most the daemon's own exit
    # on SIGTERM.
    succeeded = [
        line["message"]
        for line in lines
        if line["message"].endswith("' succeeded.") and line.get("logger") == "kopf.objects"
    ]
    assert succeeded in ([], ["Daemon 'reconcile' succeeded."]), succeeded
    assert all("settings" not in line for line in lines)
    assert chart.denied(cluster, [namespace]) == []


def _dry_run(moto_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_url}
    return subprocess.run(
        [sys.executable, "-m", "risingstars.operator", "dry-run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_dry_run_prints_the_decision_on_the_live_queue(jobs, moto_url):
    await jobs.send(12)
    await jobs.client.receive_message(QueueUrl=jobs.url, MaxNumberOfMessages=2)  # in flight
    done = await asyncio.to_thread(
        _dry_run, moto_url, "--queue-url", jobs.url, "--target", "4", "--current", "1", "--json"
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["backlog"] == {"visible": 10, "inFlight": 2, "delayed": 0, "counted": 12}
    assert (answer["desiredReplicas"], answer["reason"]) == (3, "ScaledUp")

    done = await asyncio.to_thread(
        _dry_run, moto_url, "--queue-url", jobs.url, "--target", "4", "--current", "6"
    )
    assert done.returncode == 0, done.stderr
    assert "would scale to  6 (Stabilizing" in done.stdout
    assert "settles at      3" in done.stdout


def test_dry_run_says_clearly_when_the_queue_cannot_be_read(moto_url):
    done = _dry_run(moto_url, "--queue-name", "no-such-queue")
    assert done.returncode == 1
    assert "cannot read the queue (QueueNotFound)" in done.stderr
    done = _dry_run(moto_url, "--queue-name", "q", "--target", "0")
    assert done.returncode == 2 and "targetBacklogPerReplica" in done.stderr
