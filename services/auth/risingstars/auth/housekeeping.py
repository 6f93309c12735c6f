"""Periodic deletion of rows that can no longer matter. Every replica runs it; it is
idempotent, so concurrent sweeps only repeat each other's work."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from risingstars.auth import queries
from risingstars.auth.settings import Settings

log = logging.getLogger("risingstars.auth.housekeeping")

INTERVAL_SECONDS = 300


async def sweep(pool: asyncpg.Pool, settings: Settings) -> None:
    await pool.execute(queries.SWEEP_FAILURES, float(settings.login_window_seconds))
    await pool.execute(queries.SWEEP_SIGNUPS, float(settings.signup_window_seconds))
    await pool.execute(queries.SWEEP_SEALED_SUCCESSORS)
    await pool.execute(queries.SWEEP_REFRESH_TOKENS)


async def run_forever(pool: asyncpg.Pool, settings: Settings) -> None:
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        try:
            await sweep(pool, settings)
        except Exception as exc:  # a background loop: log, keep going, try again next time
            log.warning("housekeeping failed; retrying later", extra={"error": repr(exc)})
