import json
import logging

import httpx
import pytest
from fastapi import HTTPException, Request, Response
from prometheus_client import REGISTRY
from pydantic import BaseModel

from risingstars.kit import logs
from risingstars.kit.app import create_app


class Item(BaseModel):
    name: str
    count: int


def build():
    app = create_app("example", max_body_bytes=1024)

    @app.get("/items/{item_id}")
    async def get_item(item_id: str) -> dict:
        if item_id == "missing":
            raise HTTPException(404, "No existe")
        return {"id": item_id}

    @app.post("/items")
    async def post_item(item: Item) -> dict:
        return item.model_dump()

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
async def client():
    app = build()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            c.app = app
            yield c


def sample(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_are_labelled_by_route_template(client) -> None:
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    before = sample("http_requests_total", labels)
    for i in range(3):
        assert (await client.get(f"/items/{i}")).status_code == 200
    assert sample("http_requests_total", labels) == before + 3
    text = (await client.get("/metrics")).text
    assert 'route="/items/{item_id}"' in text
    assert 'route="/items/1"' not in text
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    before = sample("http_requests_total", unmatched)
    await client.get("/nowhere/42")
    assert sample("http_requests_total", unmatched) == before + 1


async def test_request_id_is_echoed_or_generated(client) -> None:
    r = await client.get("/items/1", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/items/1", headers={"X-Request-ID": "bad id\nwith newline"})
    assert r.headers["x-request-id"] != "bad id\nwith newline"
    assert len(r.headers["x-request-id"]) == 32


async def test_validation_errors_are_400_with_a_reason(client) -> None:
    r = await client.post("/items", json={"name": "x"})
    assert r.status_code == 400
    assert "count" in r.json()["detail"]
    r = await client.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["detail"]


async def test_http_errors_keep_their_status_and_detail(client) -> None:
    r = await client.get("/items/missing")
    assert (r.status_code, r.json()) == (404, {"detail": "No existe", "code": "not_found"})


async def test_unexpected_errors_are_500_without_internals(client, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get("/boom")
    assert r.status_code == 500
    assert "secret" not in r.text
    assert r.json()["detail"]
    assert any("unhandled" in rec.getMessage() for rec in caplog.records)


async def test_oversized_bodies_are_413(client) -> None:
    big = {"name": "x" * 5000, "count": 1}
    r = await client.post("/items", json=big)
    assert r.status_code == 413
    assert "1024" in r.json()["detail"]

    async def chunks():  # no Content-Length: counted while reading
        for _ in range(10):
            yield b"x" * 500

    r = await client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_readiness_reflects_checks_and_draining(client) -> None:
    app = client.app
    assert (await client.get("/readyz")).status_code == 200
    state = {"ok": False}

    async def check() -> None:
        if not state["ok"]:
            raise ConnectionError("down")

    app.state.lifecycle.add_check("db", check)
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["db"].startswith("failing")
    state["ok"] = True
    assert (await client.get("/readyz")).status_code == 200
    app.state.lifecycle.draining = True
    assert (await client.get("/readyz")).status_code == 503
    assert (await client.get("/healthz")).status_code == 200


def test_json_logs_carry_request_id_and_extras() -> None:
    formatter = logs.JSONFormatter("example")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.route = "/a/{b}"
    token = logs.request_id.set("rid-1")
    try:
        entry = json.loads(formatter.format(record))
    finally:
        logs.request_id.reset(token)
    assert entry["message"] == "hello world"
    assert entry["request_id"] == "rid-1"
    assert entry["route"] == "/a/{b}"
    assert entry["service"] == "example"


def _two_routes_on_one_path():
    app = create_app("example", max_body_bytes=16, body_limit_routes=[("PUT", "/files/{name}")])

    @app.get("/files/{name}")
    async def read(name: str) -> dict:
        return {"name": name}

    @app.delete("/files/{name}")
    async def delete(name: str) -> dict:
        return {"deleted": name}

    @app.put("/files/{name}")
    async def write(name: str, request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.post("/files/{name}/copies")
    async def copy(name: str, request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.options("/own")
    async def own_options() -> Response:
        return Response(status_code=204, headers={"Allow": "GET, OPTIONS", "X-Own": "yes"})

    return app


async def test_options_and_405_list_every_method_of_the_path() -> None:
    transport = httpx.ASGITransport(app=_two_routes_on_one_path())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        options = await client.options("/files/a")
        wrong = await client.patch("/files/a")
        own = await client.options("/own")
        nowhere = await client.options("/nowhere")
    assert options.status_code == 204
    assert options.headers["Allow"] == "DELETE, GET, OPTIONS, PUT"
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "DELETE, GET, OPTIONS, PUT"
    assert wrong.json() == {
        "detail": "Método no permitido para este recurso",
        "code": "method_not_allowed",
    }
    assert own.headers["X-Own"] == "yes"  # a route's own OPTIONS answer is kept
    assert nowhere.status_code == 404


async def test_the_body_limit_exempts_exactly_the_routes_named() -> None:
    transport = httpx.ASGITransport(app=_two_routes_on_one_path())
    body = b"x" * 100
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        own = await client.put("/files/a", content=body)
        longer = await client.post("/files/a/copies", content=body)
        other_method = await client.delete("/files/a", headers={"content-length": "100"})
        deeper = await client.put("/files/a/b", content=body)
    assert own.status_code == 200 and own.json() == {"bytes": 100}
    # The same prefix, another method, or one segment more: the limit applies.
    assert longer.status_code == 413 and longer.json()["code"] == "too_large"
    assert other_method.status_code == 413
    assert deeper.status_code == 413
