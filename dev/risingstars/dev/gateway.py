"""A small streaming reverse proxy that routes paths the way the production ingress does, so
`make run` serves the whole API on one local URL."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.types import Message, Receive, Scope, Send

# Hop-by-hop headers are the proxy's business, not the upstream's.
_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}


# Sized so the gateway is never what a load test measures: httpx's default pool (100
# connections) queued the 101st concurrent upload behind the others. Each upload holds one
# upstream connection for its whole duration; 1,000 covers the client's 300-user plan three
# times over (the services' own limits answer 503/429 well before).
# An idle upstream connection is dropped here well before the service drops it (uvicorn's
# keep-alive, KEEPALIVE_SECONDS: 75 s), so the gateway never sends a request on a connection the
# service is closing at that moment (the keep-alive race); a service that closes early anyway
# (stopping) is covered by the retry below.
KEEPALIVE_SECONDS = 30
LIMITS = httpx.Limits(
    max_connections=1000, max_keepalive_connections=200, keepalive_expiry=KEEPALIVE_SECONDS
)
# A link-limited upload of 100 MB at 130 KB/s takes ~13 minutes, and a service holding back a
# body (back-pressure) stops reading for a while: write and read waits are generous but bounded
# (UPLOAD_DEADLINE_SECONDS bounds an upload in the service); a free connection is found at once
# or never.
TIMEOUT = httpx.Timeout(connect=5, read=900, write=900, pool=30)
# A service restarting (make run has one instance of each) refuses connections for a few
# seconds: a request is tried again after these pauses before the client gets 503 + Retry-After.
RETRY_PAUSES = (0.2, 0.5, 1.0)
RETRY_AFTER_SECONDS = 2
UNAVAILABLE = "Servicio no disponible temporalmente. Intente de nuevo más tarde."
BAD_PATH = "Ruta inválida"
_IDEMPOTENT = {"GET", "HEAD", "OPTIONS"}


def normalize(raw_path: str) -> tuple[str, str] | None:
    """The path to forward (dot segments resolved, still percent-encoded) and the decoded path
    to route on, which is exactly what the service will see; None for a path whose meaning
    would change again once decoded (an encoded `/`, `.` or `..` segment, a backslash)."""
    kept: list[str] = []
    for segment in raw_path.split("/")[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    forwarded = "/" + "/".join(kept)
    decoded = urllib.parse.unquote(forwarded, errors="strict")
    segments = decoded.split("/")
    if (
        len(segments) != len(kept) + 1
        or any(segment in (".", "..") for segment in segments)
        or "\\" in decoded
    ):
        return None
    return forwarded, decoded


class Gateway:
    def __init__(
        self, routes: Sequence[tuple[str, str]], retry_pauses: Sequence[float] = RETRY_PAUSES
    ) -> None:
        # Longest prefix first, as ingress controllers match.
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.retry_pauses = tuple(retry_pauses)
        self.client = httpx.AsyncClient(
            timeout=TIMEOUT, limits=LIMITS, follow_redirects=False, trust_env=False
        )

    def upstream(self, path: str) -> str | None:
        for prefix, target in self.routes:
            if (
                path == prefix
                or path.startswith(prefix.rstrip("/") + "/")
                or (path.startswith(prefix) and prefix.endswith("/"))
            ):
                return target
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        # Routed on exactly what is forwarded: `/api/public/../../metrics` would otherwise match a
        # public prefix and reach a path the ingress never exposes.
        try:
            paths = normalize((scope.get("raw_path") or scope["path"].encode()).decode("latin-1"))
        except UnicodeDecodeError:
            paths = None
        if paths is None:
            await _json(send, 400, {"detail": BAD_PATH, "code": "invalid_request"})
            return
        forwarded, decoded = paths
        target = self.upstream(decoded)
        if target is None:
            await _json(
                send, 404, {"detail": "Ruta no encontrada", "routes": [r[0] for r in self.routes]}
            )
            return
        url = target + forwarded
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        client_host = (scope.get("client") or ("127.0.0.1", 0))[0]
        headers.append((b"x-forwarded-for", client_host.encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        has_body = any(
            k.lower() in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"]
        )

        sent_body = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent_body
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    return
                sent_body = True
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        method = scope["method"]
        pauses = iter(self.retry_pauses)
        while True:
            request = self.client.build_request(
                method, url, headers=headers, content=body() if has_body else None
            )
            try:
                response = await self.client.send(request, stream=True)
                break
            except httpx.PoolTimeout:
                # Every upstream connection busy: the gateway itself is full.
                await _json(send, 503, _unavailable("Servicio saturado, intente de nuevo"), 5)
                return
            except (httpx.ReadTimeout, httpx.WriteTimeout):
                detail = "El servicio no respondió a tiempo. Intente de nuevo más tarde."
                await _json(send, 504, {"detail": detail, "code": "timeout"})
                return
            except httpx.TransportError as exc:
                # Refused (the service is restarting): nothing reached it, any request may go
                # again. Closed before an answer (a service stopping, or an idle connection it
                # closed as it was reused): it may have acted, so only a GET or HEAD goes again.
                again = isinstance(exc, httpx.ConnectError) or (
                    method in _IDEMPOTENT and not sent_body
                )
                pause = next(pauses, None) if again else None
                if pause is None:
                    await _json(send, 503, _unavailable(UNAVAILABLE), RETRY_AFTER_SECONDS)
                    return
                await asyncio.sleep(pause)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


def _unavailable(detail: str) -> dict[str, str]:
    # The services' own error shape (kit/errors.py), so a client handles one kind of 503.
    return {"detail": detail, "code": "unavailable"}


async def _json(send: Send, status: int, payload: dict, retry: int | None = None) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry is not None:
        headers.append((b"retry-after", str(retry).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
