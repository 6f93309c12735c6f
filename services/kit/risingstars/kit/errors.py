"""Every error leaves as `{"detail": ..., "code": ...}` with the message in Spanish: domain
errors (the hierarchy below) by their status, validation errors as 400 (never 422), unknown routes
and wrong methods as 404/405, faults of a dependency as 503 with Retry-After, anything else as
500 without internals. This module is the one place that maps errors to status codes; the body
limit (an ASGI middleware) lives in kit.bodylimit."""

from __future__ import annotations

import http
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    """Every error answer of every service (the OpenAPI documents name it)."""

    detail: str = Field(description="Why, in Spanish, for the player")
    code: str | None = Field(None, description="A machine-readable reason, when there is one")


log = logging.getLogger("risingstars.errors")

INTERNAL_ERROR = "Error interno del servidor. Intente de nuevo más tarde."
DATABASE_DOWN = "La base de datos no está disponible. Intente de nuevo más tarde."
# What the framework itself answers (no route, wrong method...), in the contract's language.
_FRAMEWORK_DETAIL = {
    400: "Petición inválida",
    404: "Recurso no encontrado",
    405: "Método no permitido para este recurso",
    413: "El cuerpo de la petición es demasiado grande",
    415: "Tipo de contenido no admitido",
}
_FRAMEWORK_CODE = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    423: "locked",
    429: "too_many",
    503: "unavailable",
}


def code_for(status: int) -> str:
    """The `code` of an answer that no typed error chose (an HTTPException's status)."""
    if status in _FRAMEWORK_CODE:
        return _FRAMEWORK_CODE[status]
    try:
        return http.HTTPStatus(status).name.lower()
    except ValueError:
        return "error"


class ServiceError(Exception):
    """A domain error: raised anywhere below the routes, carrying the client's Spanish message;
    `install` turns it into `{"detail", "code"}` with the class's status code."""

    status_code = 500
    code = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str] | None:
        return None


class Invalid(ServiceError):
    status_code = 400
    code = "invalid"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Unauthorized(ServiceError):
    """No valid credentials: 401 with the Bearer challenge (RFC 6750)."""

    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class Gone(ServiceError):
    """The resource existed and is no more (an expired or terminated upload)."""

    status_code = 410
    code = "gone"


class TooLarge(ServiceError):
    status_code = 413
    code = "too_large"


class Locked(ServiceError):
    """Someone else is using the resource right now (a concurrent tus PATCH): try again later."""

    status_code = 423
    code = "locked"


class TimedOut(ServiceError):
    """The client was too slow sending its request (an idle or overlong upload)."""

    status_code = 408
    code = "timeout"


class _RetryLater(ServiceError):
    def __init__(
        self, detail: str, *, retry_after_seconds: int = 5, code: str | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.retry_after_seconds = max(1, int(retry_after_seconds))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class TooMany(_RetryLater):
    """A per-client limit was reached (429); Retry-After says when to try again."""

    status_code = 429
    code = "too_many"


class Unavailable(_RetryLater):
    """A dependency (database, storage) is down, overloaded or too slow: 503, worth a retry."""

    status_code = 503
    code = "unavailable"


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


async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if exc.status_code in _FRAMEWORK_DETAIL and detail == http.HTTPStatus(exc.status_code).phrase:
        # The framework's own English default (no such route, wrong method...).
        detail = _FRAMEWORK_DETAIL[exc.status_code]
    content = {"detail": detail, "code": code_for(exc.status_code)}
    return JSONResponse(
        status_code=exc.status_code, content=content, headers=getattr(exc, "headers", None)
    )


def response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        status_code=error.status_code,
        content={"detail": error.detail, "code": error.code},
        headers=error.headers(),
    )


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    if isinstance(exc, Unavailable):
        log.warning(
            "dependency unavailable",
            extra={"path": request.url.path, "error": repr(exc.__cause__ or exc)},
        )
    return response(exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"path": request.url.path},
    )
    return JSONResponse(status_code=500, content={"detail": INTERNAL_ERROR, "code": "internal"})


def unavailable(detail: str, retry_after_seconds: int = 5):
    """A handler for faults of a dependency that no code turned into `Unavailable` (database
    down, storage unreachable): the same 503 with Retry-After, which a client may retry."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        error = Unavailable(detail, retry_after_seconds=retry_after_seconds)
        error.__cause__ = exc
        return await _service_error(request, error)

    return handler


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(Exception, _unexpected)


def install_unavailable(app: FastAPI, faults: tuple[type[BaseException], ...], detail: str) -> None:
    """Map a dependency's fault types (e.g. `db.UNAVAILABLE`) to the one 503 answer."""
    for fault in faults:
        app.add_exception_handler(fault, unavailable(detail))
