"""The web component: index.html (never cached) and the hashed assets (cached for a year), with
a strict Content-Security-Policy. Everything else is the API's, behind the same ingress."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request, Response

from risingstars.kit import errors
from risingstars.kit.app import create_app as kit_app
from risingstars.web import files
from risingstars.web.settings import Settings

SERVICE = "web"
# A hashed name never changes content: a year, and no revalidation.
ASSET_CACHE = "public, max-age=31536000, immutable"
# The index names the current assets: always revalidated (a 304 when unchanged).
INDEX_CACHE = "no-cache"
NOT_FOUND = "Recurso no encontrado"


def content_security_policy(media_sources: str) -> str:
    media = f"'self' {media_sources}".strip()
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media}",
            f"media-src {media}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def create_app(settings: Settings) -> FastAPI:
    served = files.load(Path(settings.web_root) if settings.web_root else files.PACKAGED)
    headers = {
        "Content-Security-Policy": content_security_policy(settings.web_media_sources),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = kit_app(SERVICE, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def answer(request: Request, name: str, cache: str) -> Response:
        file = served.get(name)
        if file is None:
            raise errors.NotFound(NOT_FOUND)
        common = headers | {"Cache-Control": cache, "ETag": file.etag, "Vary": "Accept-Encoding"}
        if file.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=common)
        body = file.body
        if file.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body, common = file.gzipped, common | {"Content-Encoding": "gzip"}
        if request.method == "HEAD":
            return Response(
                status_code=200,
                media_type=file.content_type,
                headers=common | {"Content-Length": str(len(body))},
            )
        return Response(body, media_type=file.content_type, headers=common)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index(request: Request) -> Response:
        return answer(request, files.INDEX, INDEX_CACHE)

    @app.api_route("/assets/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def asset(request: Request, name: str) -> Response:
        return answer(request, f"assets/{name}", ASSET_CACHE)

    return app
