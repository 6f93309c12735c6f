"""Player rankings from one aggregate query at most once per `ttl` seconds, served from memory;
while the database is away the last snapshot is served, however old (finding 10.13)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time

import asyncpg

from risingstars.kit import db
from risingstars.upload import queries
from risingstars.upload.text import city_key

_MAX_PAGES = 2048
RETRY_SECONDS = 2.0

log = logging.getLogger("risingstars.upload.rankings")


@dataclasses.dataclass(frozen=True)
class Player:
    username: str
    city: str
    votes: int


@dataclasses.dataclass
class Snapshot:
    players: list[Player]
    by_city: dict[str, list[Player]]
    taken_at: float
    pages: dict[tuple[str | None, int, int], bytes] = dataclasses.field(default_factory=dict)


class Rankings:
    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float) -> None:
        self.pool = pool
        self.ttl = ttl_seconds
        self._snapshot: Snapshot | None = None
        self._refreshing: asyncio.Task[Snapshot] | None = None
        self._retry_at = 0.0

    async def _load(self) -> Snapshot:
        rows = await self.pool.fetch(queries.RANKINGS)
        players = sorted(
            rows,
            # Deterministic ties: votes, then name, then the stable user id.
            key=lambda r: (-r["votes"], r["username"], r["user_id"]),
        )
        ranked = [Player(r["username"], r["city"], int(r["votes"])) for r in players]
        by_city: dict[str, list[Player]] = {}
        for player in ranked:
            by_city.setdefault(city_key(player.city), []).append(player)
        return Snapshot(ranked, by_city, time.monotonic())

    async def _refresh(self) -> Snapshot:
        try:
            self._snapshot = await self._load()
            return self._snapshot
        finally:
            self._refreshing = None

    async def snapshot(self) -> Snapshot:
        current = self._snapshot
        now = time.monotonic()
        if current is not None and (now - current.taken_at < self.ttl or now < self._retry_at):
            return current
        # Single flight, finishing even if the request that started it goes away.
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
        try:
            return await asyncio.shield(self._refreshing)
        except db.UNAVAILABLE as exc:
            if current is None:
                raise
            self._retry_at = time.monotonic() + RETRY_SECONDS
            log.warning("rankings refresh failed, serving the last one", extra={"error": repr(exc)})
            return current

    async def page(self, city: str | None, limit: int, offset: int) -> bytes:
        snap = await self.snapshot()
        key = city_key(city) if city is not None else None
        cached = snap.pages.get((key, limit, offset))
        if cached is not None:
            return cached
        players = snap.players if key is None else snap.by_city.get(key, [])
        rows = [
            {"position": offset + i + 1, "username": p.username, "city": p.city, "votes": p.votes}
            for i, p in enumerate(players[offset : offset + limit])
        ]
        body = json.dumps(rows, ensure_ascii=False).encode()
        if len(snap.pages) < _MAX_PAGES:
            snap.pages[(key, limit, offset)] = body
        return body
