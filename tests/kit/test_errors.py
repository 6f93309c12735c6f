"""The kit's error mapping: domain errors by their status in one place, framework errors in
Spanish, and a pool that answers 503 instead of queueing forever."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from risingstars.kit import bodylimit, db, errors
from risingstars.kit.app import create_app


def _app() -> FastAPI:
    app = create_app("test")

    @app.get("/items/{name}")
    async def item(name: str) -> dict:
        raising = {
            "missing": errors.NotFound("No existe"),
            "theirs": errors.Forbidden("No es tuyo"),
            "bad": errors.Invalid("Mal", code="bad_thing"),
            "busy": errors.TooMany("Espera", retry_after_seconds=30),
            "down": errors.Unavailable("Caído"),
            "anonymous": errors.Unauthorized("¿Quién eres?"),
            "expired": errors.Gone("Ya no está"),
            "huge": errors.TooLarge("Demasiado"),
            "in_use": errors.Locked("Ocupado"),
            "slow": errors.TimedOut("Muy lento"),
        }
        raise raising[name]

    return app


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    ("name", "status", "body", "retry_after"),
    [
        ("missing", 404, {"detail": "No existe", "code": "not_found"}, None),
        ("theirs", 403, {"detail": "No es tuyo", "code": "forbidden"}, None),
        ("bad", 400, {"detail": "Mal", "code": "bad_thing"}, None),
        ("busy", 429, {"detail": "Espera", "code": "too_many"}, "30"),
        ("down", 503, {"detail": "Caído", "code": "unavailable"}, "5"),
        ("expired", 410, {"detail": "Ya no está", "code": "gone"}, None),
        ("huge", 413, {"detail": "Demasiado", "code": "too_large"}, None),
        ("in_use", 423, {"detail": "Ocupado", "code": "locked"}, None),
        ("slow", 408, {"detail": "Muy lento", "code": "timeout"}, None),
    ],
)
async def test_domain_errors_map_to_their_status(name, status, body, retry_after) -> None:
    async with await _client(_app()) as client:
        response = await client.get(f"/items/{name}")
    assert response.status_code == status
    assert response.json() == body
    assert response.headers.get("Retry-After") == retry_after


async def test_unauthorized_carries_the_bearer_challenge() -> None:
    async with await _client(_app()) as client:
        response = await client.get("/items/anonymous")
    assert response.status_code == 401
    assert response.json() == {"detail": "¿Quién eres?", "code": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_http_exception_raised_anywhere_still_answers_with_a_code() -> None:
    app = create_app("test")

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, "Soy una tetera")

    @app.get("/denied")
    async def denied() -> None:
        raise HTTPException(401, "Token inválido", headers={"WWW-Authenticate": "Bearer"})

    async with await _client(app) as client:
        teapot_answer = await client.get("/teapot")
        denied_answer = await client.get("/denied")
    assert teapot_answer.json() == {"detail": "Soy una tetera", "code": "im_a_teapot"}
    assert denied_answer.json() == {"detail": "Token inválido", "code": "unauthorized"}
    assert denied_answer.headers["WWW-Authenticate"] == "Bearer"


async def test_the_body_limit_refusal_carries_a_code() -> None:
    app = create_app("test")

    @app.post("/echo")
    async def echo(payload: dict) -> dict:
        return payload

    limited = bodylimit.BodyLimitMiddleware(app, limit=8)
    async with await _client(limited) as client:
        response = await client.post("/echo", content=b'{"a": "0123456789"}')
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


async def test_framework_errors_are_spanish() -> None:
    async with await _client(_app()) as client:
        missing = await client.get("/nowhere")
        wrong = await client.post("/healthz")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Recurso no encontrado", "code": "not_found"}
    assert wrong.status_code == 405
    assert wrong.json()["detail"] == "Método no permitido para este recurso"
    assert wrong.headers["Allow"] == "GET, OPTIONS"


async def test_an_exhausted_pool_raises_unavailable_after_the_acquire_timeout(pg_dsn) -> None:
    pool = await db.create_pool(pg_dsn, min_size=1, max_size=1, acquire_timeout=0.1)
    try:
        async with pool.acquire():
            with pytest.raises(db.PoolTimeout) as caught:
                await pool.fetchval("SELECT 1")
        assert isinstance(caught.value, errors.Unavailable)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.detail == errors.DATABASE_DOWN
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
