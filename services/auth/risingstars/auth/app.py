"""The auth service's FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from risingstars.auth import housekeeping, keys
from risingstars.auth.passwords import Hasher
from risingstars.auth.routes import accounts, jwks, sessions
from risingstars.auth.sessions import Issuer
from risingstars.auth.settings import Settings
from risingstars.kit import app as kit_app
from risingstars.kit import db, errors
from risingstars.kit.tokens import TokenVerifier

SERVICE = "auth"
MIGRATIONS = Path(__file__).parent / "migrations"
# The largest valid request (a signup with every field at its limit) is under 2 KiB.
MAX_BODY_BYTES = 16 * 1024

log = logging.getLogger("risingstars.auth")

UNAVAILABLE = "Servicio temporalmente no disponible. Intente de nuevo más tarde."


def create_app(settings: Settings) -> FastAPI:
    keyring = keys.load(Path(settings.auth_signing_keys_dir))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hasher = Hasher()
        pool = await db.create_pool(settings.database_url, max_size=settings.db_pool_size)
        sweeper = None
        try:
            await hasher.start()
            app.state.pool = pool
            app.state.hasher = hasher
            app.state.lifecycle.add_check("database", lambda: db.ping(pool))
            sweeper = asyncio.create_task(housekeeping.run_forever(pool, settings))
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await pool.close()
            hasher.close()

    app = kit_app.create_app(SERVICE, lifespan=lifespan, max_body_bytes=MAX_BODY_BYTES)
    app.state.settings = settings
    app.state.keyring = keyring
    app.state.issuer = Issuer(keyring, settings)
    # /me verifies tokens exactly as the other services do, from our own JWKS (no HTTP).
    app.state.verifier = TokenVerifier(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=keyring.jwks()
    )
    for module in (accounts, sessions, jwks):
        app.include_router(module.router)
    for exc_class in db.UNAVAILABLE:
        app.add_exception_handler(exc_class, errors.unavailable(UNAVAILABLE))
    return app
