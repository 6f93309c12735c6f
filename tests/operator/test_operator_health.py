"""The operator's liveness endpoint (kopf's /healthz, what the chart's probes call) reports
whether the operator can use the Kubernetes API: 200 against the (emulated) API server (see
test_operator_process.py), 500
while it cannot log in (kopf alone answers 200 then, retrying its login every minute while it
does nothing), so Kubernetes restarts it. (Credentials the API server refuses make kopf stop
on its own: "Ran out of valid credentials", the process exits.) /readyz, beside it, fails too
while the API server is unreachable, and both recover when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import yaml

from risingstars.dev.infra import free_port


@contextlib.asynccontextmanager
async def operator(kubeconfig: Path, namespace: str, moto_url: str) -> AsyncIterator[str]:
    """`python -m risingstars.operator` as the chart runs it; yields its /healthz URL."""
    health_port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACES": namespace,
        "METRICS_PORT": str(free_port()),
        "HEALTH_PORT": str(health_port),
        "AWS_ENDPOINT_URL": moto_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.operator"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{health_port}/healthz"
        assert proc.poll() is None, f"the operator exited with {proc.returncode}"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)


async def _answers(url: str, code: int) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            return (await http.get(url)).status_code == code
        except httpx.HTTPError:
            return False


async def test_liveness_fails_while_the_operator_cannot_log_in(
    namespace, moto_url, wait_for, tmp_path
):
    # Healthy against the emulated API server: test_operator_process.py waits for that 200.
    missing = tmp_path / "no-kubeconfig"  # and no service account token: login fails
    async with operator(missing, namespace, moto_url) as healthz:
        await wait_for(lambda: _answers(healthz, 500), "unhealthy without a login", timeout=60)


def _kubeconfig_via(proxy_url: str, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": proxy_url}}],
                "users": [{"name": "operator", "user": {"token": "operator-token"}}],
                "contexts": [
                    {"name": "kmock", "context": {"cluster": "kmock", "user": "operator"}}
                ],
                "current-context": "kmock",
            }
        )
    )
    return path


async def test_liveness_and_readiness_fail_while_the_api_server_is_unreachable(
    kube_proxy, namespace, moto_url, wait_for, tmp_path
):
    proxy = kube_proxy
    kubeconfig = _kubeconfig_via(proxy.url, tmp_path / "kubeconfig")
    async with operator(kubeconfig, namespace, moto_url) as healthz:
        readyz = healthz.replace("/healthz", "/readyz")
        await wait_for(lambda: _answers(healthz, 200), "healthy", timeout=60)
        await wait_for(lambda: _answers(readyz, 200), "ready", timeout=60)
        await proxy.cut()  # the API server is gone; the operator keeps running
        await wait_for(lambda: _answers(healthz, 500), "unhealthy without the API", timeout=60)
        await wait_for(lambda: _answers(readyz, 503), "not ready without the API", timeout=60)
        await proxy.start()  # back on the same port: healthy again without a restart
        await wait_for(lambda: _answers(healthz, 200), "healthy again", timeout=60)
        await wait_for(lambda: _answers(readyz, 200), "ready again", timeout=60)
