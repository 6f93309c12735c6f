"""POST /api/auth/login and the access token it returns."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from prometheus_client import REGISTRY

from risingstars.auth import passwords

BAD = {"detail": "Email o contraseña incorrectos", "code": "unauthorized"}


def logins(outcome: str) -> float:
    return REGISTRY.get_sample_value("auth_logins_total", {"outcome": outcome}) or 0


async def test_login_returns_the_contract_body(shared_client, new_account, login) -> None:
    account = await new_account(shared_client)
    before = logins("success")
    response = await login(shared_client, account["email"])
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600
    assert isinstance(data["refresh_token"], str) and len(data["refresh_token"]) >= 40
    assert response.headers["cache-control"] == "no-store"
    assert logins("success") == before + 1


async def test_access_token_carries_the_claims_and_verifies_with_plain_pyjwt(
    shared_client, new_account, login
) -> None:
    account = await new_account(shared_client, city="Medellín")
    token = (await login(shared_client, account["email"])).json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    jwks = (await shared_client.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(
        token, key.key, algorithms=["EdDSA"], audience="rising-stars-api",
        issuer="rising-stars-auth",
    )  # fmt: skip
    assert claims["sub"] == account["id"]
    assert claims["username"] == account["username"]
    assert claims["city"] == "Medellín"
    now = time.time()
    assert claims["iat"] == claims["nbf"] and abs(claims["iat"] - now) < 60
    assert claims["exp"] - claims["iat"] == 3600
    assert uuid.UUID(hex=claims["jti"])
    assert "password" not in str(claims) and "email" not in claims


async def test_each_token_has_its_own_jti(shared_client, new_account, login) -> None:
    account = await new_account(shared_client)
    tokens = [(await login(shared_client, account["email"])).json() for _ in range(2)]
    jtis = {
        jwt.decode(t["access_token"], options={"verify_signature": False})["jti"] for t in tokens
    }
    assert len(jtis) == 2
    assert tokens[0]["refresh_token"] != tokens[1]["refresh_token"]


async def test_access_token_ttl_is_configurable(make_settings, run_app, new_account, login):
    async with run_app(make_settings(access_token_ttl_seconds=120)) as client:
        account = await new_account(client)
        data = (await login(client, account["email"])).json()
        claims = jwt.decode(data["access_token"], options={"verify_signature": False})
        assert data["expires_in"] == 120 == claims["exp"] - claims["iat"]


async def test_wrong_password_and_unknown_email_get_the_same_401(
    shared_client, new_account, login
) -> None:
    account = await new_account(shared_client)
    before = logins("invalid_credentials")
    wrong = await login(shared_client, account["email"], "Otra-Clave-Distinta")
    unknown = await login(shared_client, f"nadie.{uuid.uuid4().hex[:6]}@example.com")
    malformed = await login(shared_client, "no es un email")
    for response in (wrong, unknown, malformed):
        assert response.status_code == 401
        assert response.json() == BAD
    assert wrong.headers.keys() == unknown.headers.keys()
    assert logins("invalid_credentials") == before + 3


async def test_unknown_email_still_runs_the_password_hash(shared_client, login, monkeypatch):
    checked = []
    original = passwords.verify_password

    def spy(password: str, stored: str) -> bool:
        checked.append(stored)
        return original(password, stored)

    monkeypatch.setattr(passwords, "verify_password", spy)
    response = await login(shared_client, f"nadie.{uuid.uuid4().hex[:6]}@example.com")
    assert response.status_code == 401
    assert len(checked) == 1 and checked[0].startswith("$argon2id$")  # the dummy hash


async def test_email_is_matched_case_insensitively_and_stripped(
    shared_client, new_account, login
) -> None:
    account = await new_account(shared_client, email=f"Mixta.{uuid.uuid4().hex[:6]}@Example.COM")
    response = await login(shared_client, f"  {account['email'].swapcase()} ")
    assert response.status_code == 200


async def test_password_is_not_stripped(shared_client, new_account, login) -> None:
    account = await new_account(shared_client)
    assert (await login(shared_client, account["email"], " Vuelo-Alto-2024 ")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "x"}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": 5, "password": "x"}, "email"),
        ({"email": "a@example.com", "password": ["x"]}, "password"),
        ({"email": "a@example.com", "password": ""}, "password"),
        ({"email": "", "password": "x"}, "email"),
        ({"email": "a" * 300 + "@example.com", "password": "x"}, "email"),
        ({"email": "a@example.com", "password": "x" * 257}, "password"),
    ],
)
async def test_missing_or_invalid_fields_are_400(shared_client, body, field) -> None:
    response = await shared_client.post("/api/auth/login", json=body)
    assert response.status_code == 400
    assert field in response.json()["detail"]


@pytest.mark.parametrize(
    "email",
    [
        "' OR '1'='1' --",
        "admin'--@example.com",
        "%@example.com",
        "_@%",
        "\\",
        "josé@例子.广告",
        "🏀@example.com",
    ],
)
async def test_sql_meta_characters_and_unicode_in_login_fields(
    shared_client, new_account, login, email
) -> None:
    await new_account(shared_client)  # there is an account a wildcard could match
    response = await login(shared_client, email, "' OR '1'='1")
    assert response.status_code == 401
    assert response.json() == BAD


async def test_finding_15_login_upgrades_an_old_scrypt_hash_to_argon2id(
    shared_client, new_account, login, scrypt_hash
) -> None:
    account = await new_account(shared_client)
    pool = shared_client.app.state.pool
    user_id = uuid.UUID(account["id"])
    old = scrypt_hash(account["password1"], log2_n=15)
    set_hash = "UPDATE auth.users SET password_hash = $2 WHERE id = $1"
    get_hash = "SELECT password_hash FROM auth.users WHERE id = $1"
    await pool.execute(set_hash, user_id, old)
    assert (await login(shared_client, account["email"])).status_code == 200
    stored = await pool.fetchval(get_hash, user_id)
    assert stored.startswith("$argon2id$") and not passwords.needs_rehash(stored)
    assert (await login(shared_client, account["email"])).status_code == 200
    # A wrong password upgrades nothing.
    await pool.execute(set_hash, user_id, old)
    assert (await login(shared_client, account["email"], "Otra-Clave-2024")).status_code == 401
    assert await pool.fetchval(get_hash, user_id) == old
