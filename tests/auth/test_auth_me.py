"""GET /api/auth/me: the account behind a valid token; 401 for every kind of bad token."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from risingstars.auth import keys
from risingstars.dev.tokens import TokenFactory

INVALID = {"detail": "Token inválido o expirado", "code": "unauthorized"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def account_and_token(client, new_account, login) -> tuple[dict, str]:
    account = await new_account(client)
    return account, (await login(client, account["email"])).json()["access_token"]


def forge(client, sub: str, /, **overrides) -> str:
    """A token signed with the service's own current key, with chosen claims."""
    keyring = client.app.state.keyring
    now = int(time.time())
    claims = {
        "sub": sub, "username": "x", "city": "y", "iss": "rising-stars-auth",
        "aud": "rising-stars-api", "iat": now, "nbf": now, "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }  # fmt: skip
    claims.update(overrides)
    return keyring.sign({k: v for k, v in claims.items() if v is not None})


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_me_returns_the_public_fields(shared_client, new_account, login) -> None:
    account, token = await account_and_token(shared_client, new_account, login)
    response = await shared_client.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {
        "id", "email", "username", "first_name", "last_name", "city", "country", "created_at",
    }  # fmt: skip
    for field in ("id", "email", "username", "first_name", "last_name", "city", "country"):
        assert data[field] == account[field]
    assert data["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer not.a.jwt"],
)
async def test_missing_or_malformed_authorization_is_401(shared_client, header) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await shared_client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "detail" in response.json()


async def test_expired_token_is_401(shared_client, new_account, login) -> None:
    account, _ = await account_and_token(shared_client, new_account, login)
    past = int(time.time()) - 7200
    token = forge(shared_client, account["id"], iat=past, nbf=past, exp=past + 3600)
    response = await shared_client.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 401 and response.json() == INVALID


async def test_token_not_yet_valid_is_401(shared_client, new_account, login) -> None:
    account, _ = await account_and_token(shared_client, new_account, login)
    later = int(time.time()) + 3600
    token = forge(shared_client, account["id"], nbf=later)
    assert (await shared_client.get("/api/auth/me", headers=bearer(token))).status_code == 401
    token = forge(shared_client, account["id"], iat=later, nbf=None)
    assert (await shared_client.get("/api/auth/me", headers=bearer(token))).status_code == 401


async def test_token_from_an_unknown_key_is_401(shared_client, new_account, login) -> None:
    account, _ = await account_and_token(shared_client, new_account, login)
    stranger = TokenFactory()
    token = stranger.token(account["id"])
    assert (await shared_client.get("/api/auth/me", headers=bearer(token))).status_code == 401
    # Same, but claiming our kid: the signature does not match our key.
    our_kid = shared_client.app.state.keyring.current.kid
    impostor = TokenFactory(kid=our_kid).token(account["id"])
    assert (await shared_client.get("/api/auth/me", headers=bearer(impostor))).status_code == 401


async def test_alg_none_is_401(shared_client, new_account, login) -> None:
    account, token = await account_and_token(shared_client, new_account, login)
    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64(claims)}."
        response = await shared_client.get("/api/auth/me", headers=bearer(unsigned))
        assert response.status_code == 401, alg
    assert account["id"] == claims["sub"]


async def test_hmac_with_the_public_key_as_secret_is_401(shared_client, new_account, login):
    account, token = await account_and_token(shared_client, new_account, login)
    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    public = (
        shared_client.app.state.keyring.current.private.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )  # fmt: skip
    forged = jwt.encode(claims, public, algorithm="HS256", headers={"kid": kid})
    assert (await shared_client.get("/api/auth/me", headers=bearer(forged))).status_code == 401
    assert account["id"] == claims["sub"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-api"},
        {"aud": None},
        {"iss": "someone-else"},
        {"iss": None},
        {"exp": None},
        {"sub": None},
    ],
    ids=["wrong-aud", "no-aud", "wrong-iss", "no-iss", "no-exp", "no-sub"],
)
async def test_wrong_audience_issuer_or_missing_claims_are_401(
    shared_client, new_account, login, overrides
) -> None:
    account, _ = await account_and_token(shared_client, new_account, login)
    token = forge(shared_client, account["id"], **overrides)
    response = await shared_client.get("/api/auth/me", headers=bearer(token))
    assert response.status_code == 401 and response.json() == INVALID


async def test_tampered_token_is_401(shared_client, new_account, login) -> None:
    account, token = await account_and_token(shared_client, new_account, login)
    other, _ = await account_and_token(shared_client, new_account, login)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = other["id"]
    tampered = f"{header}.{b64(claims)}.{signature}"
    assert (await shared_client.get("/api/auth/me", headers=bearer(tampered))).status_code == 401
    assert account["id"] != other["id"]


async def test_valid_signature_for_an_id_that_is_no_account_is_401(shared_client) -> None:
    for sub in (str(uuid.uuid4()), "not-a-uuid", "' OR 1=1 --"):
        token = forge(shared_client, sub)
        response = await shared_client.get("/api/auth/me", headers=bearer(token))
        assert response.status_code == 401, sub


async def test_tokens_of_every_published_key_verify_and_the_newest_signs(
    make_settings, run_app, keys_dir, new_account, login
) -> None:
    async with run_app(make_settings()) as before_rotation:
        account, old_token = await account_and_token(before_rotation, new_account, login)
        old_kid = before_rotation.app.state.keyring.current.kid
    new_key = keys.generate(keys_dir)
    async with run_app(make_settings()) as after_rotation:
        jwks = (await after_rotation.get("/.well-known/jwks.json")).json()
        assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_key.kid}
        fresh = (await login(after_rotation, account["email"])).json()["access_token"]
        assert jwt.get_unverified_header(fresh)["kid"] == new_key.kid
        for token in (old_token, fresh):
            response = await after_rotation.get("/api/auth/me", headers=bearer(token))
            assert response.status_code == 200
