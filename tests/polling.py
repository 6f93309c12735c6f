"""Waiting for something to become true in tests: poll with a deadline, never sleep blindly."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    check: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; return that value, or
    fail at the deadline naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
