"""Refresh-token rotation, reuse detection and logout."""

from __future__ import annotations

import asyncio
import hashlib

import jwt
import pytest
from prometheus_client import REGISTRY

BAD = {"detail": "Token de actualización inválido o expirado", "code": "unauthorized"}


def refreshes(outcome: str) -> float:
    return REGISTRY.get_sample_value("auth_token_refreshes_total", {"outcome": outcome}) or 0


def issued(grant: str) -> float:
    return REGISTRY.get_sample_value("auth_tokens_issued_total", {"grant": grant}) or 0


async def session(client, new_account, login) -> tuple[dict, dict]:
    account = await new_account(client)
    return account, (await login(client, account["email"])).json()


async def refresh(client, token: str):
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def logout(client, token: str):
    return await client.post("/api/auth/logout", json={"refresh_token": token})


async def me(client, access_token: str):
    return await client.get("/api/auth/me", headers={"Authorization": f"Bearer {access_token}"})


async def test_refresh_rotates_and_returns_the_login_shape(client, new_account, login) -> None:
    account, tokens = await session(client, new_account, login)
    before = (refreshes("rotated"), issued("refresh"))
    response = await refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert data["token_type"] == "Bearer" and data["expires_in"] == 3600
    assert data["refresh_token"] != tokens["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(data["access_token"], options={"verify_signature": False})
    assert claims["sub"] == account["id"] and claims["username"] == account["username"]
    assert (await me(client, data["access_token"])).status_code == 200
    assert (refreshes("rotated"), issued("refresh")) == (before[0] + 1, before[1] + 1)
    # ...and the new token can be rotated in turn.
    assert (await refresh(client, data["refresh_token"])).status_code == 200


async def test_refresh_tokens_are_stored_only_as_hashes(client, new_account, login) -> None:
    _, tokens = await session(client, new_account, login)
    stored = await client.app.state.pool.fetch("SELECT token_hash FROM auth.refresh_tokens")
    assert [r["token_hash"] for r in stored] == [
        hashlib.sha256(tokens["refresh_token"].encode()).digest()
    ]


async def test_reusing_a_spent_token_revokes_the_whole_family(client, new_account, login):
    _, tokens = await session(client, new_account, login)
    first = tokens["refresh_token"]
    second = (await refresh(client, first)).json()["refresh_token"]
    third = (await refresh(client, second)).json()["refresh_token"]
    before = refreshes("reused")
    # The first token shows up again: stolen, or replayed. Nobody in the family may continue.
    response = await refresh(client, first)
    assert response.status_code == 401 and response.json() == BAD
    assert refreshes("reused") == before + 1
    assert (await refresh(client, third)).status_code == 401
    assert (await refresh(client, second)).status_code == 401


async def age_spent_tokens(client, seconds: float = 60) -> None:
    """Move every spent token's use into the past, beyond the grace window."""
    await client.app.state.pool.execute(
        "UPDATE auth.refresh_tokens SET used_at = used_at - make_interval(secs => $1)"
        " WHERE used_at IS NOT NULL",
        float(seconds),
    )


async def test_reuse_revokes_only_that_family(client, new_account, login) -> None:
    account, tokens = await session(client, new_account, login)
    other = (await login(client, account["email"])).json()
    spent = tokens["refresh_token"]
    await refresh(client, spent)
    await age_spent_tokens(client)
    assert (await refresh(client, spent)).status_code == 401
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_finding_8_concurrent_refreshes_of_one_token_share_one_successor(
    client, new_account, login
) -> None:
    _, tokens = await session(client, new_account, login)
    before = refreshes("reused")
    responses = await asyncio.gather(*(refresh(client, tokens["refresh_token"]) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    assert refreshes("reused") == before
    for r in responses:  # each answer carries a valid access token of its own
        assert (await me(client, r.json()["access_token"])).status_code == 200
    # The shared successor carries the session on; only one row was added for it.
    assert (await refresh(client, successors.pop())).status_code == 200
    count = await client.app.state.pool.fetchval("SELECT count(*) FROM auth.refresh_tokens")
    assert count == 3


async def test_finding_8_reuse_after_the_grace_window_still_revokes_the_family(
    client, new_account, login
) -> None:
    _, tokens = await session(client, new_account, login)
    first = tokens["refresh_token"]
    second = (await refresh(client, first)).json()["refresh_token"]
    await age_spent_tokens(client, 6)  # the default window is 5 s
    before = refreshes("reused")
    assert (await refresh(client, first)).status_code == 401
    assert refreshes("reused") == before + 1
    assert (await refresh(client, second)).status_code == 401


async def test_finding_8_the_grace_window_is_configurable(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(refresh_token_grace_seconds=0)) as client:
        _, tokens = await session(client, new_account, login)
        first = tokens["refresh_token"]
        second = (await refresh(client, first)).json()["refresh_token"]
        assert (await refresh(client, first)).status_code == 401
        assert (await refresh(client, second)).status_code == 401


@pytest.mark.parametrize(
    "token", ["no-existe", "' OR '1'='1", "x" * 512, "ñandú🏀", "\\x00", "a%_"]
)
async def test_unknown_refresh_tokens_are_401(shared_client, token) -> None:
    assert (await refresh(shared_client, token)).status_code == 401
    assert (await logout(shared_client, token)).status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"refresh_token": None}, {"refresh_token": 12}, {"refresh_token": ""}]
)
async def test_missing_refresh_token_field_is_400(shared_client, body) -> None:
    for path in ("/api/auth/refresh", "/api/auth/logout"):
        response = await shared_client.post(path, json=body)
        assert response.status_code == 400
        assert "refresh_token" in response.json()["detail"]


async def test_overlong_refresh_token_is_400(shared_client) -> None:
    assert (await refresh(shared_client, "x" * 513)).status_code == 400


async def test_expired_refresh_token_is_401(client, new_account, login) -> None:
    _, tokens = await session(client, new_account, login)
    await client.app.state.pool.execute(
        "UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 second'"
    )
    before = refreshes("expired")
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert refreshes("expired") == before + 1


async def test_refresh_token_lifetime_is_configurable(make_settings, run_app, new_account, login):
    async with run_app(make_settings(refresh_token_ttl_seconds=60)) as client:
        _, _tokens = await session(client, new_account, login)
        lifetime = await client.app.state.pool.fetchval(
            "SELECT extract(epoch FROM expires_at - created_at) FROM auth.refresh_tokens"
        )
        assert 59 <= float(lifetime) <= 61


async def test_logout_revokes_the_family(client, new_account, login) -> None:
    account, tokens = await session(client, new_account, login)
    other = (await login(client, account["email"])).json()
    current = (await refresh(client, tokens["refresh_token"])).json()["refresh_token"]
    response = await logout(client, current)
    assert response.status_code == 204 and response.content == b""
    assert (await refresh(client, current)).status_code == 401
    # Logging out twice is harmless; the other session (another device) is unaffected.
    assert (await logout(client, current)).status_code == 204
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_with_a_spent_token_still_ends_the_session(client, new_account, login):
    _, tokens = await session(client, new_account, login)
    current = (await refresh(client, tokens["refresh_token"])).json()["refresh_token"]
    assert (await logout(client, tokens["refresh_token"])).status_code == 204
    assert (await refresh(client, current)).status_code == 401


async def test_deleting_the_account_ends_its_sessions(client, new_account, login) -> None:
    _account, tokens = await session(client, new_account, login)
    await client.app.state.pool.execute("DELETE FROM auth.users")
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await me(client, tokens["access_token"])).status_code == 401


async def test_housekeeping_keeps_families_until_all_their_tokens_expired(
    make_settings, run_app, new_account, login
) -> None:
    from risingstars.auth import housekeeping

    settings = make_settings()
    async with run_app(settings) as client:
        _, old = await session(client, new_account, login)
        spent = old["refresh_token"]
        live = (await refresh(client, spent)).json()["refresh_token"]
        pool = client.app.state.pool
        spent_hash = hashlib.sha256(spent.encode()).digest()
        await pool.execute(
            "UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 day'"
            " WHERE token_hash = $1",
            spent_hash,
        )
        await housekeeping.sweep(pool, settings)
        assert await pool.fetchval("SELECT count(*) FROM auth.refresh_tokens") == 2
        # Reuse of the spent token is still recognized and still revokes the family.
        assert (await refresh(client, spent)).status_code == 401
        assert (await refresh(client, live)).status_code == 401
        await pool.execute("UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 s'")
        await housekeeping.sweep(pool, settings)
        assert await pool.fetchval("SELECT count(*) FROM auth.refresh_tokens") == 0


async def test_housekeeping_drops_sealed_successors_after_the_grace_window(
    client, new_account, login
) -> None:
    from risingstars.auth import housekeeping

    _, tokens = await session(client, new_account, login)
    await refresh(client, tokens["refresh_token"])
    pool, settings = client.app.state.pool, client.app.state.settings
    sealed = "SELECT count(successor_sealed) FROM auth.refresh_tokens"
    await housekeeping.sweep(pool, settings)
    assert await pool.fetchval(sealed) == 1  # still within the window
    await age_spent_tokens(client, 61)
    await housekeeping.sweep(pool, settings)
    assert await pool.fetchval(sealed) == 0
