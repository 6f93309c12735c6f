"""The public API's document (/api/openapi.json, auth and videos merged by `make openapi`) and
Swagger UI (/api/docs), its assets served from here: an air-gapped cluster reaches no CDN."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCUMENT = Path(__file__).with_name("openapi.json")
DOCS = "/api/docs"
ASSETS = f"{DOCS}/assets"

router = APIRouter(include_in_schema=False)

PAGE = f"""<!doctype html>
<html lang="es">
<head>
<meta charset="utf-8">
<title>Rising Stars API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{DOCS}/init.js"></script>
</body>
</html>
"""
INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
});
"""
# Only our own scripts and styles (Swagger UI sets inline styles).
POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"


@functools.cache
def _document() -> bytes:
    return DOCUMENT.read_bytes()


@router.get("/api/openapi.json")
async def openapi_document() -> Response:
    return Response(_document(), media_type="application/json")


@router.get(DOCS)
async def docs_page() -> Response:
    return Response(PAGE, media_type="text/html", headers={"Content-Security-Policy": POLICY})


@router.get(f"{DOCS}/init.js")
async def docs_init() -> Response:
    return Response(INIT, media_type="text/javascript")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
