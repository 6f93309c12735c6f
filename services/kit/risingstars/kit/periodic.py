"""Background work that repeats: one helper for every loop a service runs beside its requests
(the outbox relay, the events poll, sweeps, snapshot refreshes).

A pass that raises is logged and counted, then the next one waits longer (doubling up to
`max_backoff`), so a dependency that is down is not hammered; the task itself never dies. Replicas
started together drift apart through the jitter. `stop` lets a running pass finish for at most
`grace` seconds, then cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import Counter

log = logging.getLogger("risingstars.kit.periodic")

PASSES = Counter(
    "background_task_passes_total", "Passes of a periodic background task, by result",
    ["task", "result"],
)  # fmt: skip


class Periodic:
    """Run `work()` every `seconds` (± `jitter` of it) until stopped. When `work` returns True
    there is more to do at once (a full batch) and the next pass starts without waiting."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[Any]],
        seconds: float,
        *,
        jitter: float = 0.1,
        first_delay: float = 0.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.name = name
        self.work = work
        self.seconds = seconds
        self.jitter = jitter
        self.first_delay = first_delay
        self.max_backoff = max(max_backoff, seconds)
        self.failures = 0  # consecutive
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        for result in ("ok", "error"):
            PASSES.labels(name, result)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"periodic-{self.name}")

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the loop to end after its current pass; cancel that pass after `grace` seconds."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            log.warning("background task cut short", extra={"task": self.name})
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def delay(self) -> float:
        """The wait before the next pass: the period, or the backoff after failures."""
        base = self.seconds
        if self.failures:
            base = min(self.max_backoff, max(self.seconds, 0.5) * 2 ** min(self.failures, 16))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    async def run_once(self) -> Any:
        """One pass; never raises (an error is logged, counted and returned as None)."""
        try:
            more = await self.work()
        except Exception as exc:
            self.failures += 1
            PASSES.labels(self.name, "error").inc()
            log.warning(
                "background task pass failed",
                extra={"task": self.name, "error": repr(exc), "failures": self.failures},
            )
            return None
        self.failures = 0
        PASSES.labels(self.name, "ok").inc()
        return more

    async def _loop(self) -> None:
        if await self._wait(self.first_delay * random.uniform(0.1, 1.0)):
            return
        while not self._stopping.is_set():
            more = await self.run_once()
            if more is True and not self.failures:
                await asyncio.sleep(0)  # let the rest of the process run between batches
                continue
            if await self._wait(self.delay()):
                return

    async def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when asked to stop meanwhile."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


@contextlib.asynccontextmanager
async def running(*tasks: Periodic, grace: float = 5.0) -> AsyncIterator[tuple[Periodic, ...]]:
    """Start the tasks for the length of the block, stop them all (in parallel) on the way out."""
    for task in tasks:
        task.start()
    try:
        yield tasks
    finally:
        await asyncio.gather(*(task.stop(grace) for task in tasks))
