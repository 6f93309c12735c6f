"""The operator's /healthz and /readyz on HEALTH_PORT, both answered from one check: an
authenticated discovery request of our API group, made at most every CHECK_MAX_AGE (5) seconds
however often the probes come.

Liveness fails (500) while the API server cannot be reached or refuses our credentials: the
operator can do nothing then, and a restart logs in afresh (the chart's probe tolerates a few
failures, so a short blip does not restart it). Readiness (503) also waits for kopf's start (its
login and startup activities); the operator takes no traffic, so readiness is what rollouts and
`kubectl wait` read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp.web

from risingstars.operator.kube import KubeAPI
from risingstars.operator.spec import GROUP, VERSION

log = logging.getLogger("risingstars.operator.health")

# Probes come every 10-15 s (the chart); the cache only spares the API server concurrent ones.
CHECK_MAX_AGE = 5.0
# Under the chart's probe timeout (5 s), so a hanging API server is a clear 500, not a timeout.
CHECK_TIMEOUT = 4.0


class Health:
    def __init__(self, kube: KubeAPI, started: Callable[[], bool]) -> None:
        self._kube = kube
        self._started = started
        self._checked_at = float("-inf")
        self._failure: str | None = "not checked yet"
        self._lock = asyncio.Lock()

    async def api_failure(self) -> str | None:
        """Why the API server is not usable now, or None."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= CHECK_MAX_AGE:
                try:
                    async with asyncio.timeout(CHECK_TIMEOUT):
                        await self._kube.request("GET", f"/apis/{GROUP}/{VERSION}")
                    self._failure = None
                except Exception as exc:  # whatever went wrong is the answer, not an error
                    self._failure = f"failing: {type(exc).__name__}"
                    log.warning("Kubernetes API check failed", extra={"error": repr(exc)})
                self._checked_at = time.monotonic()
            return self._failure

    async def healthz(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        failure = await self.api_failure()
        return aiohttp.web.json_response(
            {
                "status": "failing" if failure else "ok",
                "checks": {"kubernetes_api": failure or "ok"},
            },
            status=500 if failure else 200,
        )

    async def readyz(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        if not self._started():
            checks = {"startup": "starting"}
        else:
            checks = {"kubernetes_api": await self.api_failure() or "ok"}
        ready = all(value == "ok" for value in checks.values())
        return aiohttp.web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )


@contextlib.asynccontextmanager
async def serving(health: Health, port: int, host: str = "0.0.0.0") -> AsyncIterator[None]:
    app = aiohttp.web.Application()
    app.add_routes(
        [aiohttp.web.get("/healthz", health.healthz), aiohttp.web.get("/readyz", health.readyz)]
    )
    runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await aiohttp.web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()
