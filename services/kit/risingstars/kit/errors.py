"""Every error leaves as `{"detail": ...}`: validation errors as 400 (never 422), faults as 500
without internals."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("risingstars.errors")

INTERNAL_ERROR = "Error interno del servidor. Intente de nuevo más tarde."


def _describe(error: dict) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",))
    kind = error.get("type", "")
    if kind == "missing":
        return f"Campo requerido: {location}"
    if kind == "json_invalid":
        return "JSON inválido en el cuerpo de la petición"
    if kind in {"model_attributes_type", "dict_type"} and not location:
        return "El cuerpo debe ser un objeto JSON"
    message = error.get("msg", "valor inválido")
    return f"Campo inválido: {location}: {message}" if location else message


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    detail = _describe(errors[0]) if errors else "Petición inválida"
    fields = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "error": e.get("type")}
        for e in errors
    ]
    return JSONResponse(
        status_code=400, content={"detail": detail, "code": "invalid_request", "errors": fields}
    )


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": exc.detail},
        headers=getattr(exc, "headers", None),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"path": request.url.path},
    )
    return JSONResponse(status_code=500, content={"detail": INTERNAL_ERROR, "code": "internal"})


def unavailable(detail: str, retry_after_seconds: int = 5):
    """A handler for faults of a dependency (database down, storage unreachable): 503 with
    Retry-After, which a client may retry, unlike a 500."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable", extra={"path": request.url.path, "error": repr(exc)})
        return JSONResponse(
            status_code=503,
            content={"detail": detail, "code": "unavailable"},
            headers={"Retry-After": str(retry_after_seconds)},
        )

    return handler


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing lets it through to the handler above."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"El cuerpo de la petición supera el máximo de {limit} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over `limit` bytes with 413, by Content-Length or while reading; paths
    under `exempt_prefixes` (streaming uploads) enforce their own limits."""

    def __init__(self, app: ASGIApp, limit: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt or ("\0",)):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = BodyTooLarge(self.limit)
        response = JSONResponse(status_code=413, content={"detail": error.detail})
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
