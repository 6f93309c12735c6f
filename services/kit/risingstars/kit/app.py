"""The FastAPI application every service starts from: health, readiness, metrics, errors, the
body limit, OPTIONS and 405 answers with `Allow`, and the draining state that graceful shutdown
flips."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from risingstars.kit import errors, metrics, tracing
from risingstars.kit.bodylimit import BodyLimitMiddleware

log = logging.getLogger("risingstars.lifecycle")

Check = Callable[[], Awaitable[Any]]
Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


class Lifecycle:
    """Readiness checks registered by the service, and whether the process is draining."""

    def __init__(self, check_timeout: float = 2.0) -> None:
        self.checks: dict[str, Check] = {}
        self.draining = False
        self.started = False
        self.check_timeout = check_timeout

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        if self.draining:
            return False, {"shutdown": "draining"}
        if not self.started:
            return False, {"startup": "starting"}

        async def run(name: str, check: Check) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), self.check_timeout)
                return name, "ok"
            except Exception as exc:  # a failing dependency is the answer, not an error
                log.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
                return name, f"failing: {type(exc).__name__}"

        results = dict(await asyncio.gather(*(run(n, c) for n, c in self.checks.items())))
        return all(v == "ok" for v in results.values()), results


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> set[str]:
    """Every method some route of the request's path answers, OPTIONS included. Each method is
    asked of the router's own matching (included routers nest their routes)."""
    return {"OPTIONS"} | {
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    }


async def _method_not_allowed(request: Request, exc: StarletteHTTPException) -> Response:
    """No route of this path takes the method: OPTIONS is answered (204) with the path's
    methods, anything else is the 405 with them (the router names only the first route's)."""
    allow = {"Allow": ", ".join(sorted(allowed_methods(request.app, request.scope)))}
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=allow)
    response = await errors.http_error(request, exc)
    response.headers.update(allow)
    return response


def create_app(
    service: str,
    *,
    lifespan: Lifespan | None = None,
    max_body_bytes: int = 64 * 1024,
    body_limit_routes: Iterable[tuple[str, str]] = (),
    **fastapi_kwargs: Any,
) -> FastAPI:
    """`body_limit_routes`: (method, path template) of the routes that enforce their own body
    limits, e.g. ("PATCH", "/api/videos/tus/{upload_id}") (see kit.bodylimit)."""
    lifecycle = Lifecycle()

    @contextlib.asynccontextmanager
    async def lifespan_with_state(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            lifecycle.started = True
            log.info("started", extra={"service": service})
            yield
            lifecycle.draining = True
        log.info("stopped", extra={"service": service})

    fastapi_kwargs.setdefault("telemetry", tracing.FASTAPI_TELEMETRY)
    app = FastAPI(title=f"Rising Stars {service}", lifespan=lifespan_with_state, **fastapi_kwargs)
    app.state.lifecycle = lifecycle
    app.state.service = service
    errors.install(app)
    app.add_exception_handler(405, _method_not_allowed)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=max_body_bytes,
        own_limits=tuple(body_limit_routes),
    )
    app.add_middleware(metrics.ObserveMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready, checks = await lifecycle.readiness()
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not ready", "checks": checks},
        )

    app.add_route("/metrics", metrics.metrics_endpoint, include_in_schema=False)
    return app
