"""The HTTP edges of the auth service: bodies that are not JSON, too large, or odd; the JWKS
document; health, readiness and metrics."""

from __future__ import annotations

import base64

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client.parser import text_string_to_metric_families

from risingstars.auth import keys

POST_PATHS = ["/api/auth/signup", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize(
    "raw", [b"{", b'{"email": }', b"not json", b"\xff\xfe{}", b"", b"[" * 5000 + b"]" * 5000]
)
async def test_malformed_json_is_400(shared_client, path, raw) -> None:
    response = await shared_client.post(
        path, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON inválido en el cuerpo de la petición"


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("raw", [b"[]", b'"texto"', b"42", b"null", b"true"])
async def test_json_that_is_not_an_object_is_400(shared_client, path, raw) -> None:
    response = await shared_client.post(
        path, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "El cuerpo debe ser un objeto JSON"


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_wrong_content_type_is_400(shared_client, path, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await shared_client.post(
        path, content=b'{"email": "a@example.com", "password": "x"}', headers=headers
    )
    assert response.status_code == 400
    assert "application/json" in response.json()["detail"]


async def test_json_with_charset_or_a_json_suffix_is_accepted(shared_client) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = await shared_client.post(
            "/api/auth/login",
            content=b'{"email": "nadie@example.com", "password": "x"}',
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 401, content_type


@pytest.mark.parametrize("path", POST_PATHS)
async def test_oversized_bodies_are_413(shared_client, path) -> None:
    big = b'{"email": "' + b"a" * 20_000 + b'"}'
    response = await shared_client.post(
        path, content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "detail" in response.json()

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(20):
            yield b" " * 1024

    response = await shared_client.post(
        path, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_jwks_publishes_public_keys_with_thumbprint_kids(shared_client) -> None:
    response = await shared_client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    document = response.json()
    assert len(document["keys"]) == 1
    jwk = document["keys"][0]
    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}  # nothing private ("d")
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")
    assert jwk["kid"] == keys.thumbprint(jwk)
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    Ed25519PublicKey.from_public_bytes(raw)
    assert isinstance(jwt.PyJWKSet.from_dict(document)[jwk["kid"]], jwt.PyJWK)


async def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample the service's /metrics endpoint exposes, by name and labels."""
    text = (await client.get("/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_health_readiness_and_metrics(shared_client, new_account, login) -> None:
    healthz = ("http_requests_total", frozenset(
        {"method": "GET", "route": "/healthz", "status": "200"}.items()
    ))  # fmt: skip
    signups = ("auth_signups_total", frozenset())
    failed = ("auth_logins_total", frozenset({"outcome": "invalid_credentials"}.items()))
    before = await scrape(shared_client)
    assert (await shared_client.get("/healthz")).json() == {"status": "ok"}
    ready = await shared_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    account = await new_account(shared_client)
    assert (await login(shared_client, account["email"], "Otra-Clave-2024")).status_code == 401
    after = await scrape(shared_client)
    for series in (healthz, signups, failed):
        assert after[series] == before.get(series, 0) + 1, series


async def test_readiness_fails_when_the_database_is_gone(client, auth_db, pg_dsn) -> None:
    assert (await client.get("/readyz")).status_code == 200
    name = auth_db.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("failing")
    # Requests needing the database fail cleanly, as retryable, without internals.
    response = await client.post(
        "/api/auth/login", json={"email": "a@example.com", "password": "x"}
    )
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert int(response.headers["retry-after"]) > 0


async def test_unknown_paths_and_methods_answer_in_json(shared_client) -> None:
    assert (await shared_client.get("/api/auth/nada")).status_code == 404
    response = await shared_client.get("/api/auth/login")
    assert response.status_code == 405 and "detail" in response.json()


async def test_request_id_is_echoed(shared_client) -> None:
    response = await shared_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_openapi_lists_every_request_and_response_body(shared_client) -> None:
    document = (await shared_client.get("/openapi.json")).json()
    paths = document["paths"]
    schemas = document["components"]["schemas"]
    for path, model in (
        ("/api/auth/signup", "SignupForm"),
        ("/api/auth/login", "Credentials"),
        ("/api/auth/refresh", "RefreshRequest"),
        ("/api/auth/logout", "RefreshRequest"),
    ):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}, path
    assert set(schemas["SignupForm"]["required"]) == {
        "first_name", "last_name", "email", "password1", "password2", "city", "country"
    }  # fmt: skip
    for path, method, status, model in (
        ("/api/auth/signup", "post", "201", "Created"),
        ("/api/auth/login", "post", "200", "Tokens"),
        ("/api/auth/refresh", "post", "200", "Tokens"),
        ("/api/auth/me", "get", "200", "AccountWithDate"),
        ("/.well-known/jwks.json", "get", "200", "JWKSet"),
    ):
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
    assert "content" not in paths["/api/auth/logout"]["post"]["responses"]["204"]
    # Refusals are documented with the one error shape every service uses.
    login_400 = paths["/api/auth/login"]["post"]["responses"]["400"]
    assert login_400["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
