"""One error shape: every non-2xx answer of the auth service is `{"detail", "code"}` (two
strings), on every operation its OpenAPI document lists and on the ways a request can fail
(body missing, not JSON, not an object, too large, invalid fields, wrong method, no or bad
token, bad credentials, throttled, email taken, unknown path), and every error response the
document declares names that shape."""

from __future__ import annotations

import httpx
import pytest

from risingstars.dev.tokens import TokenFactory

BAD_BODIES = [
    {},  # no body at all
    {"content": b"{", "headers": {"content-type": "application/json"}},
    {"content": b"[]", "headers": {"content-type": "application/json"}},
    {"content": b"a=b", "headers": {"content-type": "application/x-www-form-urlencoded"}},
    {"json": {"x" * 10: "y" * 20_000}},  # past the body limit
    {"json": {"email": "\u0000", "password": "", "refresh_token": 7, "first_name": ["x"]}},
]


def _assert_shape(response: httpx.Response, where: str) -> None:
    assert response.status_code >= 400, f"{where}: {response.status_code}"
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], f"{where}: {body}"
    assert isinstance(body.get("code"), str) and body["code"], f"{where}: {body}"


def _operations(app) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


async def test_every_operation_answers_errors_in_one_shape(shared_client) -> None:
    operations = _operations(shared_client.app)
    assert len(operations) >= 6
    for method, path in operations:
        for options in BAD_BODIES if method != "GET" else [{}]:
            response = await shared_client.request(method, path, **options)
            if response.status_code < 400:
                continue  # e.g. the JWKS: nothing in a request can make it fail
            _assert_shape(response, f"{method} {path} {list(options)}")
        wrong = await shared_client.request("PUT", path)
        _assert_shape(wrong, f"PUT {path}")
        assert "Allow" in wrong.headers


async def test_the_failures_of_each_rule_share_the_shape(shared_client, new_account) -> None:
    account = await new_account(shared_client)
    forged = TokenFactory().token("someone")
    answers = {
        "unknown path": await shared_client.get("/api/auth/nada"),
        "no token": await shared_client.get("/api/auth/me"),
        "bad token": await shared_client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {forged}"}
        ),
        "bad credentials": await shared_client.post(
            "/api/auth/login", json={"email": account["email"], "password": "no-es-esta"}
        ),
        "bad refresh token": await shared_client.post(
            "/api/auth/refresh", json={"refresh_token": "no-existe"}
        ),
        "logout unknown": await shared_client.post(
            "/api/auth/logout", json={"refresh_token": "no-existe"}
        ),
        "email taken": await shared_client.post("/api/auth/signup", json=account),
    }
    for where, response in answers.items():
        _assert_shape(response, where)
    assert answers["email taken"].json()["code"] == "email_taken"
    assert answers["bad credentials"].headers["WWW-Authenticate"] == "Bearer"


async def test_throttled_answers_share_the_shape(make_settings, run_app, new_account, login):
    async with run_app(make_settings(login_max_failures=1)) as client:
        account = await new_account(client)
        await login(client, account["email"], "no-es-esta")
        response = await login(client, account["email"], "no-es-esta")
    assert response.status_code == 429
    _assert_shape(response, "throttled login")


@pytest.mark.parametrize("status", ["400", "401", "429"])
def test_the_document_declares_the_error_shape(shared_client, status) -> None:
    document = shared_client.app.openapi()
    declared = [
        (path, method, operation["responses"][status])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if status in operation.get("responses", {})
    ]
    assert declared
    for path, method, response in declared:
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, schema)
    assert {"detail", "code"} <= set(document["components"]["schemas"]["ErrorBody"]["properties"])
