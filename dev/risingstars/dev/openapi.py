"""`make openapi`: the public API's one OpenAPI document, auth's and the videos API's merged, as
the ingress serves them under one host. Written into the upload service's package
(`risingstars/upload/openapi.json`), which serves it at /api/openapi.json with the docs page at
/api/docs; a test fails when the committed file differs from what the code declares."""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI

OUTPUT = Path(__file__).resolve().parents[3] / "services/upload/risingstars/upload/openapi.json"


def _unused(settings_class: type) -> Any:
    """Settings good enough to build an app (never started): every required field filled."""
    required = {
        f.name: "http://unused.invalid"
        for f in dataclasses.fields(settings_class)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return settings_class(**required)


def apps() -> list[FastAPI]:
    from risingstars.auth import keys
    from risingstars.auth.app import create_app as auth_app
    from risingstars.auth.settings import Settings as AuthSettings
    from risingstars.upload.app import create_app as upload_app
    from risingstars.upload.settings import Settings as UploadSettings

    with tempfile.TemporaryDirectory() as key_dir:
        keys.generate(Path(key_dir))  # auth refuses to start without a signing key
        auth = dataclasses.replace(_unused(AuthSettings), auth_signing_keys_dir=key_dir)
        return [auth_app(auth), upload_app(_unused(UploadSettings))]


def _validation_is_400(operation: dict[str, Any]) -> None:
    """FastAPI documents its validation errors as 422; the kit answers them 400 (the contract)."""
    if operation.get("responses", {}).pop("422", None) is not None:
        operation["responses"].setdefault(
            "400",
            {
                "description": "Invalid request",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            },
        )


def merged(services: list[FastAPI] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Rising Stars API",
            "version": "1.0.0",
            "description": (
                "Players sign up, upload skill videos (streamed, direct to storage, or resumable "
                "by tus 1.0), the public votes, and rankings are published per city. Errors are "
                '`{"detail": "<Spanish>"}`; validation errors are 400. Send '
                "`Authorization: Bearer <access_token>` where a lock is shown."
            ),
        },
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for app in services or apps():
        part = app.openapi()
        for path, operations in part.get("paths", {}).items():
            slot = document["paths"].setdefault(path, {})
            for method, operation in operations.items():
                if method in slot:
                    raise ValueError(f"{method.upper()} {path} is declared by two services")
                _validation_is_400(operation)
                slot[method] = operation
        for kind, named in part.get("components", {}).items():
            for name, value in named.items():
                if kind == "schemas" and name in {"HTTPValidationError", "ValidationError"}:
                    continue  # the 422 FastAPI would document; these services answer 400
                known = document["components"].setdefault(kind, {}).setdefault(name, value)
                if known != value:
                    raise ValueError(f"two services declare different {kind} named {name}")
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    OUTPUT.write_text(render(merged()))
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
