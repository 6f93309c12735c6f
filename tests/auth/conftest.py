"""Fixtures for the auth service: a migrated database, a signing key, and the app running
in-process behind an httpx client."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from risingstars.auth import keys
from risingstars.auth.app import MIGRATIONS, SERVICE, create_app
from risingstars.auth.settings import Settings
from risingstars.dev import infra
from risingstars.kit import db
from risingstars.kit.settings import load

PASSWORD = "Vuelo-Alto-2024"


def _environment(database_url: str, keys_dir: Path) -> dict[str, str]:
    # Every test client signs up from one address: only the signup-throttle tests set a limit.
    return {
        "DATABASE_URL": database_url,
        "AUTH_SIGNING_KEYS_DIR": str(keys_dir),
        "SIGNUP_MAX_PER_IP": "1000000",
    }


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    keys.generate(directory)
    return directory


@pytest.fixture
async def auth_db(database_url: str) -> str:
    await db.migrate(database_url, SERVICE, MIGRATIONS)
    return database_url


@pytest.fixture
def make_settings(auth_db: str, keys_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base = load(Settings, _environment(auth_db, keys_dir))
        return dataclasses.replace(base, **overrides)

    return make


@contextlib.asynccontextmanager
async def _running(settings: Settings, ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]  # tests reach the pool through it
            yield client


@pytest.fixture
def run_app() -> Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """`async with run_app(settings, ip=...) as client`: an app instance (a "replica")."""
    return _running


@pytest.fixture(scope="module")
async def shared_client(pg, tmp_path_factory) -> AsyncIterator[httpx.AsyncClient]:
    """One app and database for a whole module: for tests whose requests leave no state that
    another test could trip over (validation failures, accounts with unique emails)."""
    url = infra.create_database(pg, f"t_{uuid.uuid4().hex[:12]}")
    await db.migrate(url, SERVICE, MIGRATIONS)
    directory = tmp_path_factory.mktemp("keys")
    keys.generate(directory)
    settings = load(Settings, _environment(url, directory))
    async with _running(settings) as c:
        yield c


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with _running(make_settings()) as c:
        yield c


def _signup_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "first_name": "Ana",
        "last_name": "Pérez",
        "email": f"ana.{uuid.uuid4().hex[:8]}@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "city": "Bogotá",
        "country": "Colombia",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
def signup_body() -> Callable[..., dict[str, Any]]:
    """`signup_body(**fields)`: a valid signup body with a unique email; a field set to `...`
    is left out."""
    return _signup_body


@pytest.fixture
def new_account() -> Callable[..., Any]:
    """`await new_account(client, **fields)` -> the signup body sent (account created)."""

    async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
        body = _signup_body(**overrides)
        response = await client.post("/api/auth/signup", json=body)
        assert response.status_code == 201, response.text
        return {**body, "id": response.json()["id"], "username": response.json()["username"]}

    return create


@pytest.fixture
def login() -> Callable[..., Any]:
    async def post(client: httpx.AsyncClient, email: str, password: str = PASSWORD):
        return await client.post("/api/auth/login", json={"email": email, "password": password})

    return post


@pytest.fixture
def scrypt_hash() -> Callable[..., str]:
    """`scrypt_hash(password, log2_n=15)`: a hash in the format the service wrote before
    argon2id."""

    def make(password: str, *, log2_n: int = 15) -> str:
        salt = b"0123456789abcdef"
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=2**log2_n, r=8, p=1, dklen=32, maxmem=64 * 2**20
        )
        enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
        return f"scrypt${log2_n}$8$1${enc(salt)}${enc(digest)}"

    return make
