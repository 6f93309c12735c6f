"""The request body limit of every service: bodies over `limit` bytes are refused with 413 (by
Content-Length, or while reading), except on the routes that enforce their own limits.

Those routes are named exactly, by method and path template, as the router declares them:

    create_app("upload", max_body_bytes=64 * 1024, body_limit_routes=[
        ("POST", "/api/videos/upload"),
        ("PATCH", "/api/videos/tus/{upload_id}"),
    ])

A `{name}` matches one path segment; nothing else is exempt (`/api/videos/uploads/...` keeps
the limit although it starts like the streamed upload's path)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from risingstars.kit.errors import code_for

Route = tuple[str, str]  # (method, path template)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing lets it through to the kit's handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"El cuerpo de la petición supera el máximo de {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int, own_limits: Iterable[Route] = ()) -> None:
        self.app = app
        self.limit = limit
        self.own = [(method.upper(), _pattern(template)) for method, template in own_limits]

    def _exempt(self, scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        return any(m == method and pattern.fullmatch(path) for m, pattern in self.own)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
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
        response = JSONResponse(
            status_code=413, content={"detail": error.detail, "code": code_for(413)}
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
