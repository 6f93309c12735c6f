"""asyncpg pool and a migration runner: ordered SQL files per service, applied once under an
advisory lock (so replicas starting together do not race), recorded in a table.

Every connection taken from the pool (`acquire`, and the pool's own `fetch`/`execute`...) waits
at most `acquire_timeout` seconds: a pool exhausted by slow requests answers 503 + Retry-After
(`errors.Unavailable`) instead of queueing every other request of the replica behind them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import sys
from pathlib import Path

import asyncpg
import asyncpg.pool

from risingstars.kit import errors, logs, settings

log = logging.getLogger("risingstars.db")

# Any fixed 64-bit number: every service takes the same lock, migrations are rare.
_MIGRATION_LOCK = 0x52_53_4D_49_47  # "RSMIG"


# The database is down, restarting, out of connections or unreachable: worth a retry (503).
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.InvalidCatalogNameError,
    # A connection cut in the middle of an operation (server restarted) can be handed out once
    # more in a broken protocol state before the pool drops it.
    asyncpg.InternalClientError,
)


DEFAULT_ACQUIRE_TIMEOUT = 5.0


class PoolTimeout(errors.Unavailable, TimeoutError):
    """No connection freed up in time: answered 503 + Retry-After; still a TimeoutError for
    loops that retry on their own schedule."""


class _Acquire:
    """asyncpg's acquire context, with a timeout that ends as `errors.Unavailable`."""

    def __init__(self, pool: Pool, timeout: float) -> None:
        self._context = asyncpg.pool.PoolAcquireContext(pool, timeout)

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self._context.__aenter__()
        except TimeoutError as exc:
            raise PoolTimeout(errors.DATABASE_DOWN, code="database_busy") from exc

    async def __aexit__(self, *exc_info: object) -> None:
        await self._context.__aexit__(*exc_info)

    def __await__(self):
        return self.__aenter__().__await__()


class Pool(asyncpg.Pool):
    acquire_timeout = DEFAULT_ACQUIRE_TIMEOUT

    def acquire(self, *, timeout: float | None = None) -> _Acquire:  # type: ignore[override]
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
) -> Pool:
    pool = Pool(
        dsn,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        init_size=None,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        loop=None,
        connect=None,
        setup=None,
        init=None,
        reset=None,
        # Statement cache off would cost latency; keep it, but drop idle connections so a
        # failed-over RDS endpoint is picked up.
        max_inactive_connection_lifetime=300,
        # Fail fast instead of holding a request while the database is away.
        timeout=5,
        command_timeout=30,
    )
    pool.acquire_timeout = acquire_timeout
    return await pool


def migration_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.sql"))
    names = [f.name for f in files]
    if len(set(n.split("_", 1)[0] for n in names)) != len(names):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return files


async def migrate(dsn: str, service: str, directory: Path) -> list[str]:
    """Apply the pending migrations of `service`; return the names applied."""
    conn = await asyncpg.connect(dsn, timeout=10)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       service text NOT NULL,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now(),
                       PRIMARY KEY (service, name))"""
            )
            done = {
                r["name"]: r["checksum"]
                for r in await conn.fetch(
                    "SELECT name, checksum FROM schema_migrations WHERE service = $1", service
                )
            }
            for path in migration_files(directory):
                sql = path.read_text()
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != checksum:
                        log.warning("applied migration changed since", extra={"file": path.name})
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (service, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        service,
                        path.name,
                        checksum,
                    )
                applied_now.append(path.name)
                log.info("migration applied", extra={"service": service, "file": path.name})
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    finally:
        await conn.close()
    return applied_now


@dataclasses.dataclass(frozen=True)
class MigrateSettings:
    """All a migration job reads: it carries no keys, storage or queue settings."""

    database_url: str
    log_level: str = "info"


def run_migrations(service: str, directory: Path) -> None:
    """`python -m risingstars.<service> migrate`; raises `SettingsError` on bad settings."""
    config = settings.load(MigrateSettings)
    logs.setup(service, config.log_level)
    applied = asyncio.run(migrate(config.database_url, service, directory))
    print(f"{service}: {len(applied)} migration(s) applied", file=sys.stderr)


async def ping(pool: asyncpg.Pool) -> None:
    async with pool.acquire(timeout=2) as conn:
        await conn.fetchval("SELECT 1")
