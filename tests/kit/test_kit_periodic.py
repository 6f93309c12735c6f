"""kit.periodic: the one helper every background loop runs on. A failing pass is logged and
counted and the loop goes on (waiting longer), a full batch runs again at once, stopping is
bounded even when a pass hangs."""

from __future__ import annotations

import asyncio
import time

from polling import eventually
from prometheus_client import REGISTRY

from risingstars.kit import periodic


def passes(task: str, result: str) -> float:
    return (
        REGISTRY.get_sample_value("background_task_passes_total", {"task": task, "result": result})
        or 0.0
    )


async def test_a_failing_pass_is_counted_and_the_loop_goes_on() -> None:
    calls = []

    async def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise RuntimeError("database away")

    task = periodic.Periodic("flaky", flaky, 0.01, max_backoff=0.05)
    errors, oks = passes("flaky", "error"), passes("flaky", "ok")
    async with periodic.running(task):
        await eventually(lambda: len(calls) >= 4, timeout=10, what="passes after the failures")
    assert passes("flaky", "error") - errors == 2
    assert passes("flaky", "ok") - oks >= 2
    assert task.failures == 0


def test_failures_back_off_up_to_the_cap_with_jitter() -> None:
    task = periodic.Periodic("backoff", lambda: asyncio.sleep(0), 1.0, jitter=0.1, max_backoff=8)
    assert 0.9 <= task.delay() <= 1.1
    task.failures = 2
    assert 3.6 <= task.delay() <= 4.4
    task.failures = 30
    assert 7.2 <= task.delay() <= 8.8


async def test_a_full_batch_runs_again_without_waiting_for_the_period() -> None:
    batches = [True, True, True, False]

    async def relay() -> bool:
        return batches.pop(0) if batches else False

    task = periodic.Periodic("relay", relay, 3600)
    async with periodic.running(task):
        await eventually(lambda: not batches, timeout=5, what="every batch sent")


async def test_stopping_cuts_a_hung_pass_short_after_the_grace() -> None:
    entered = asyncio.Event()
    cancelled = []

    async def hangs() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    task = periodic.Periodic("hangs", hangs, 1)
    task.start()
    await asyncio.wait_for(entered.wait(), 5)
    started = time.monotonic()
    await task.stop(grace=0.2)
    assert cancelled == [True]
    assert time.monotonic() - started < 5
