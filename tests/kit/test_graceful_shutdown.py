"""SIGTERM: readiness fails at once, requests are still served during the drain delay, the
in-flight request completes, then the lifespan shutdown runs and the process exits."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from risingstars.dev.infra import free_port, stop, wait_until


def test_sigterm_drains_then_finishes_in_flight_requests() -> None:
    port = free_port()
    env = dict(os.environ, PORT=str(port), DRAIN_SECONDS="1.5", SHUTDOWN_TIMEOUT_SECONDS="10")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("drainapp.py"))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 20, "drain example", proc)
        result: dict = {}

        def in_flight() -> None:
            result["response"] = httpx.get(f"{base}/slow", params={"seconds": 2.5}, timeout=10)

        worker = threading.Thread(target=in_flight)
        worker.start()
        wait_until(lambda: _in_flight(base) >= 1, 10, "request in flight")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 503, 5, "readiness to fail")
        # Still serving new requests while draining.
        assert httpx.get(f"{base}/healthz").status_code == 200
        worker.join(15)
        assert result["response"].status_code == 200
        # uvicorn re-raises the signal after its graceful shutdown: exit by SIGTERM, not a crash.
        assert proc.wait(15) in (0, -signal.SIGTERM)
        assert b'"message": "stopped"' in proc.stdout.read()
    finally:
        stop(proc)


def _in_flight(base: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("http_requests_in_flight "):
            # The /metrics request itself counts as one.
            return float(line.split()[1]) - 1
    return 0.0
