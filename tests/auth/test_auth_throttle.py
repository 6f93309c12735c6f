"""Login throttling: per email and per address, shared by every replica through PostgreSQL,
429 with Retry-After, and recovery once the window has passed."""

from __future__ import annotations

import asyncio
import time
import uuid

from prometheus_client import REGISTRY

WRONG = "Contraseña-Equivocada"


def throttled_count() -> float:
    return REGISTRY.get_sample_value("auth_logins_total", {"outcome": "throttled"}) or 0


async def fail(client, login, email: str, times: int) -> None:
    for _ in range(times):
        response = await login(client, email, WRONG)
        assert response.status_code == 401, response.text


async def test_too_many_failures_for_an_email_give_429_with_retry_after(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(login_max_failures=3, login_window_seconds=600)) as client:
        account = await new_account(client)
        await fail(client, login, account["email"], 3)
        before = throttled_count()
        response = await login(client, account["email"])  # even the right password
        assert response.status_code == 429
        assert "Demasiados intentos" in response.json()["detail"]
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= 600
        assert str(retry_after) in response.json()["detail"]
        assert throttled_count() == before + 1
        # The limit is per email: another account from the same address is unaffected.
        other = await new_account(client)
        assert (await login(client, other["email"])).status_code == 200


async def test_throttled_attempts_do_not_extend_the_lockout(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(login_max_failures=2)) as client:
        account = await new_account(client)
        await fail(client, login, account["email"], 2)
        for _ in range(3):
            assert (await login(client, account["email"], WRONG)).status_code == 429
        pool = client.app.state.pool
        assert await pool.fetchval("SELECT count(*) FROM auth.login_failures") == 2


async def test_unknown_emails_are_throttled_too(make_settings, run_app, login) -> None:
    async with run_app(make_settings(login_max_failures=2)) as client:
        email = f"nadie.{uuid.uuid4().hex[:6]}@example.com"
        await fail(client, login, email, 2)
        assert (await login(client, email.upper(), WRONG)).status_code == 429


async def test_too_many_failures_from_an_address_give_429(
    make_settings, run_app, new_account, login
) -> None:
    settings = make_settings(login_max_failures=100, login_max_failures_per_ip=3)
    async with (
        run_app(settings, ip="203.0.113.7") as attacker,
        run_app(settings, ip="198.51.100.20") as neighbour,
    ):
        victim = await new_account(neighbour)
        for n in range(3):
            await fail(attacker, login, f"spray{n}.{uuid.uuid4().hex[:6]}@example.com", 1)
        response = await login(attacker, victim["email"])
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert (await login(neighbour, victim["email"])).status_code == 200


async def test_the_limit_holds_across_replicas(make_settings, run_app, new_account, login):
    settings = make_settings(login_max_failures=3)
    async with run_app(settings) as one, run_app(settings) as two, run_app(settings) as three:
        account = await new_account(one)
        await fail(one, login, account["email"], 1)
        await fail(two, login, account["email"], 1)
        await fail(three, login, account["email"], 1)
        for replica in (one, two, three):
            assert (await login(replica, account["email"])).status_code == 429


async def test_retry_after_counts_down_to_when_the_window_frees(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(login_max_failures=3, login_window_seconds=900)) as client:
        account = await new_account(client)
        key = account["email"].lower()
        # Four failures in the window; the count drops below three when the one 800 s old
        # (the third most recent) leaves it, 100 s from now.
        await client.app.state.pool.executemany(
            "INSERT INTO auth.login_failures (email_key, ip, at)"
            " VALUES ($1, '127.0.0.1', now() - make_interval(secs => $2))",
            [(key, 850.0), (key, 800.0), (key, 10.0), (key, 5.0), (key, 2000.0)],
        )
        response = await login(client, account["email"])
        assert response.status_code == 429
        assert 95 <= int(response.headers["retry-after"]) <= 101


async def test_login_works_again_once_the_failures_leave_the_window(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(login_max_failures=3, login_window_seconds=900)) as client:
        account = await new_account(client)
        await fail(client, login, account["email"], 3)
        assert (await login(client, account["email"])).status_code == 429
        # Move the failures 901 s into the past, as if the window had gone by.
        await client.app.state.pool.execute(
            "UPDATE auth.login_failures SET at = at - interval '901 seconds'"
        )
        assert (await login(client, account["email"])).status_code == 200


async def test_recovery_after_a_short_real_window(make_settings, run_app, new_account, login):
    async with run_app(make_settings(login_max_failures=1, login_window_seconds=1)) as client:
        account = await new_account(client)
        await fail(client, login, account["email"], 1)
        response = await login(client, account["email"])
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        deadline = time.monotonic() + 15
        while response.status_code == 429 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # polling interval, not synchronization
            response = await login(client, account["email"])
        assert response.status_code == 200


async def test_a_successful_login_clears_the_email_count(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(login_max_failures=3)) as client:
        account = await new_account(client)
        await fail(client, login, account["email"], 2)
        assert (await login(client, account["email"])).status_code == 200
        await fail(client, login, account["email"], 2)
        assert (await login(client, account["email"])).status_code == 200


async def test_housekeeping_drops_failures_outside_the_window(
    make_settings, run_app, new_account, login
) -> None:
    from risingstars.auth import housekeeping

    settings = make_settings(login_window_seconds=900)
    async with run_app(settings) as client:
        account = await new_account(client)
        await fail(client, login, account["email"], 2)
        pool = client.app.state.pool
        await pool.execute(
            "UPDATE auth.login_failures SET at = at - interval '1000 seconds'"
            " WHERE id = (SELECT min(id) FROM auth.login_failures)"
        )
        await housekeeping.sweep(pool, settings)
        assert await pool.fetchval("SELECT count(*) FROM auth.login_failures") == 1


async def test_parallel_wrong_passwords_are_judged_at_most_the_limit(
    make_settings, run_app, new_account, login
) -> None:
    async with run_app(make_settings(login_max_failures=5)) as client:
        account = await new_account(client)
        responses = await asyncio.gather(
            *(login(client, account["email"], WRONG) for _ in range(20))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [401] * 5 + [429] * 15, codes
        pool = client.app.state.pool
        assert await pool.fetchval("SELECT count(*) FROM auth.login_failures") == 5


async def test_an_attacker_cannot_lock_the_owner_out_from_another_address(
    make_settings, run_app, new_account, login
) -> None:
    settings = make_settings(login_max_failures=3, login_max_failures_per_ip=100)
    async with (
        run_app(settings, ip="203.0.113.66") as attacker,
        run_app(settings, ip="198.51.100.8") as owner,
    ):
        victim = await new_account(owner)
        await fail(attacker, login, victim["email"], 3)
        assert (await login(attacker, victim["email"], WRONG)).status_code == 429
        # The owner's right password, from the owner's address, still works...
        assert (await login(owner, victim["email"])).status_code == 200
        # ...and does not lift the attacker's throttle.
        response = await login(attacker, victim["email"])
        assert response.status_code == 429
        assert "Demasiados intentos" in response.json()["detail"]
        assert response.json()["code"] == "logins_throttled"
