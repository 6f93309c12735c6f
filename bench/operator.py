"""The operator's reconcile cost: kopf running for real against kmock's Kubernetes emulator (in
its own process, risingstars.dev.kube_api) and moto's SQS, as in tests/operator.

- operator.reconcile_ms: mean time of one reconcile (the queue's attributes, the Deployment, the
  decision) with one QueueScaler, in steady state;
- operator.reconcile_ratio_100: the same mean with 100 QueueScalers (each with its own queue and
  Deployment) divided by the one-object figure, measured in the same run. 1.0 means reconciles
  do not slow each other down. The 100 poll every 5 s (20 reconciles/s): moto's SQS serves
  about 70 requests/s on these machines, and beyond that the emulators would be measured.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import boto3
import yaml
from prometheus_client import REGISTRY

from bench import printer
from risingstars.dev import infra
from risingstars.operator import app
from risingstars.operator.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MANY = 100
ONE_ROUNDS, ONE_POLL = 20, 1
MANY_ROUNDS, MANY_POLL = 6, 5


def _reconciles() -> tuple[float, float]:
    total = REGISTRY.get_sample_value("operator_reconcile_duration_seconds_sum") or 0.0
    count = REGISTRY.get_sample_value("operator_reconcile_duration_seconds_count") or 0.0
    return total, count


async def _until(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _create(http: aiohttp.ClientSession, path: str, body: dict) -> None:
    body["metadata"].update(uid=str(uuid.uuid4()), generation=1, resourceVersion="1")
    async with http.post(path, json=body) as response:
        if response.status >= 300:
            raise RuntimeError(await response.text())


async def _objects(api_url: str, ns: str, queue_urls: list[str], poll: int) -> None:
    async with aiohttp.ClientSession(base_url=api_url) as http:
        for i, url in enumerate(queue_urls):
            name = f"processor-{i}"
            labels = {"app": name}
            await _create(
                http,
                f"/apis/apps/v1/namespaces/{ns}/deployments",
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "replicas": 2,
                        "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": {}},
                    },
                },
            )
            await _create(
                http,
                f"/apis/risingstars.io/v1alpha1/namespaces/{ns}/queuescalers",
                {
                    "apiVersion": "risingstars.io/v1alpha1",
                    "kind": "QueueScaler",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "scaleTargetRef": {"name": name},
                        "queue": {"url": url},
                        "targetBacklogPerReplica": 5,
                        "maxReplicas": 10,
                        "pollingIntervalSeconds": poll,
                    },
                },
            )


async def _measure(
    api_url: str, moto_url: str, queue_urls: list[str], rounds: int, poll: int
) -> float:
    """Mean seconds per reconcile over `rounds` rounds of every object, after one round of
    warm-up (the first reconcile of each object writes its status and opens the clients)."""
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    await _objects(api_url, ns, queue_urls, poll)
    stop, ready = threading.Event(), threading.Event()
    cfg = Settings(aws_endpoint_url=moto_url, watch_namespaces=(ns,))
    thread = threading.Thread(
        target=lambda: asyncio.run(app.operator(cfg, stop_flag=stop, ready_flag=ready)),
        name="operator",
    )
    thread.start()
    try:
        n = len(queue_urls)
        _, start = _reconciles()
        await _until(lambda: _reconciles()[1] >= start + n, "the warm-up", 120)
        sum0, count0 = _reconciles()
        await _until(lambda: _reconciles()[1] >= count0 + rounds * n, "the rounds", 600)
        sum1, count1 = _reconciles()
        return (sum1 - sum0) / (count1 - count0)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)


def _kube_api(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.dev.kube_api", str(port), "--keep", "32"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("serving"):
        proc.kill()
        raise RuntimeError(f"the Kubernetes API emulator did not start: {line!r}")
    return proc


def run() -> None:
    saved = {k: os.environ.get(k) for k in [*infra.AWS_DUMMY_ENV, "KUBECONFIG"]}
    os.environ.update(infra.AWS_DUMMY_ENV)
    port = infra.free_port()
    api_url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        infra.running(infra.start_moto, log_path=Path(tmp) / "moto.log") as moto,
    ):
        kube = _kube_api(port)
        try:
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "current-context": "bench",
                        "clusters": [{"name": "k", "cluster": {"server": api_url}}],
                        "users": [{"name": "u", "user": {"token": "bench"}}],
                        "contexts": [{"name": "bench", "context": {"cluster": "k", "user": "u"}}],
                    }
                )
            )
            os.environ["KUBECONFIG"] = str(kubeconfig)
            sqs = boto3.client("sqs", endpoint_url=moto.url, region_name="us-east-1")
            queue_urls = []
            for i in range(MANY):
                url = sqs.create_queue(QueueName=f"bench-{i}")["QueueUrl"]
                entries = [{"Id": str(j), "MessageBody": "{}"} for j in range(10)]
                sqs.send_message_batch(QueueUrl=url, Entries=entries)
                queue_urls.append(url)
            one = asyncio.run(_measure(api_url, moto.url, queue_urls[:1], ONE_ROUNDS, ONE_POLL))
            many = asyncio.run(_measure(api_url, moto.url, queue_urls, MANY_ROUNDS, MANY_POLL))
        finally:
            infra.stop(kube)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    say = printer("operator", digits=2)
    say("reconcile_ms", one * 1000, "ms")
    say(f"reconcile_ms_{MANY}", many * 1000, "ms")
    say(f"reconcile_ratio_{MANY}", many / one)


main = run

if __name__ == "__main__":
    run()
