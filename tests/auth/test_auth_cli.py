"""`python -m risingstars.auth`: genkey, migrate, and the real server over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import jwt

from risingstars.auth import keys
from risingstars.dev import infra

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_"))}


def auth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "risingstars.auth", *args],
        env={**BASE_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_genkey_writes_a_key_once_with_if_empty(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = auth("genkey", str(directory), "--if-empty")
    assert first.returncode == 0, first.stderr
    again = auth("genkey", str(directory), "--if-empty")
    assert again.returncode == 0 and "already" in again.stderr
    assert len(keys.key_files(directory)) == 1
    assert auth("genkey", str(directory)).returncode == 0
    assert len(keys.load(directory).keys) == 2


async def test_migrate_needs_only_the_database_and_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        result = auth("migrate", env={"DATABASE_URL": database_url})
        assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'auth'"
        )
        applied = await conn.fetchval(
            "SELECT count(*) FROM schema_migrations WHERE service = 'auth'"
        )
    finally:
        await conn.close()
    assert {r["table_name"] for r in tables} == {
        "users", "refresh_tokens", "login_failures", "signup_attempts"
    }  # fmt: skip
    assert applied == len(list((Path(keys.__file__).parent / "migrations").glob("*.sql")))


def test_bad_configuration_fails_fast_naming_the_variables(tmp_path: Path) -> None:
    result = auth("serve")
    assert result.returncode == 2
    assert "DATABASE_URL is required" in result.stderr
    assert "AUTH_SIGNING_KEYS_DIR is required" in result.stderr
    result = auth(
        env={
            "DATABASE_URL": "postgresql://x/y",
            "AUTH_SIGNING_KEYS_DIR": str(tmp_path),
            "LOGIN_MAX_FAILURES": "cinco",
        }
    )
    assert result.returncode == 2 and "LOGIN_MAX_FAILURES" in result.stderr
    result = auth(env={"DATABASE_URL": "postgresql://x/y", "AUTH_SIGNING_KEYS_DIR": str(tmp_path)})
    assert result.returncode == 2 and "genkey" in result.stderr
    assert auth("migrate").returncode == 2


async def test_the_server_end_to_end_over_http(database_url: str, tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    assert auth("genkey", str(keys_dir)).returncode == 0
    assert auth("migrate", env={"DATABASE_URL": database_url}).returncode == 0
    port = infra.free_port()
    env = {
        **BASE_ENV,
        "DATABASE_URL": database_url,
        "AUTH_SIGNING_KEYS_DIR": str(keys_dir),
        "PORT": str(port),
        "DRAIN_SECONDS": "0",
    }
    log_path = tmp_path / "auth.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "risingstars.auth"], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "auth never became ready"
                await _pause()
            body = {
                "first_name": "Ana", "last_name": "Pérez", "email": "ana@example.com",
                "password1": "Vuelo-Alto-2024", "password2": "Vuelo-Alto-2024",
                "city": "Bogotá", "country": "Colombia",
            }  # fmt: skip
            created = await client.post("/api/auth/signup", json=body)
            assert created.status_code == 201, created.text
            tokens = await client.post(
                "/api/auth/login", json={"email": "ana@example.com", "password": "Vuelo-Alto-2024"}
            )
            assert tokens.status_code == 200
            access = tokens.json()["access_token"]
            me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {access}"})
            assert me.status_code == 200 and me.json()["email"] == "ana@example.com"
            # A generic JWT library verifies the token with the published JWKS.
            jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
            signing_key = jwks.get_signing_key_from_jwt(access)
            claims = jwt.decode(
                access, signing_key.key, algorithms=["EdDSA"], audience="rising-stars-api"
            )
            assert claims["sub"] == created.json()["id"]
        server.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        lines = log_path.read_text().splitlines()
        assert any('"message": "stopped"' in line for line in lines)
    finally:
        infra.stop(server)


async def _pause() -> None:
    await asyncio.sleep(0.1)  # polling interval while the server starts
