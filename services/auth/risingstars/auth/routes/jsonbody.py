"""The route class of every auth endpoint that takes a body: the body must be a JSON object,
and whatever is wrong with it is a 400 `{"detail": "<Spanish reason>", "code"}` naming the
field."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from risingstars.auth import validation
from risingstars.kit import errors

NOT_JSON = "El cuerpo debe ser JSON (Content-Type: application/json)"
BAD_JSON = "JSON inválido en el cuerpo de la petición"
NOT_AN_OBJECT = "El cuerpo debe ser un objeto JSON"


def bad_request(detail: str) -> errors.Invalid:
    # The kit's code for a request its validation refused.
    return errors.Invalid(detail, code="invalid_request")


def describe(errors: Sequence[Any]) -> str:
    """The first validation error as the client reads it."""
    if not errors:
        return "Petición inválida"
    error = errors[0]
    field = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    if error.get("type") == validation.MISSING:
        return f"Campo requerido: {field}"
    if not field:  # a rule about the whole body (passwords that differ)
        return error.get("msg", "Petición inválida")
    reason = error.get("msg") if error.get("type") == validation.INVALID else "valor inválido"
    return f"Campo inválido: {field}: {reason}"


async def _json_object(request: Request) -> None:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise bad_request(NOT_JSON)
    try:
        # Starlette keeps the parsed body: FastAPI's own parsing reuses it.
        data = await request.json()
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and bad JSON alike
        raise bad_request(BAD_JSON) from None
    if not isinstance(data, dict):
        raise bad_request(NOT_AN_OBJECT)


class JSONBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def checked(request: Request) -> Response:
            await _json_object(request)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise bad_request(describe(exc.errors())) from None

        return checked
