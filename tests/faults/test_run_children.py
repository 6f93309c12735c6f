"""`make run` killed with SIGKILL (no chance to stop anything itself) leaves no process behind:
its children get SIGTERM from the kernel (PR_SET_PDEATHSIG) and stop. The mechanism in make
test (a parent spawning through `run.spawn`, killed), the whole `make run` in make faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from risingstars.dev import stack
from risingstars.dev.infra import wait_until

PARENT = """
import asyncio, sys
from risingstars.dev import run

async def main():
    child = await run.spawn(["-c", "import time; time.sleep(300)"], {})
    print(child.pid, flush=True)
    await child.wait()

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_child_of_the_runner_dies_when_the_runner_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        child = int(parent.stdout.readline())
        assert child in _children(parent.pid) and _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not _alive(child), 10, "the child to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.faults
def test_make_run_killed_leaves_nothing_running() -> None:
    with stack.running() as system:
        services = _children(system.proc.pid)
        commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in services]
        assert sum(b"risingstars." in c for c in commands) >= 4, commands  # services, worker
        system.proc.send_signal(signal.SIGKILL)
        system.proc.wait(10)
        wait_until(lambda: not any(_alive(p) for p in services), 60, "make run's children to stop")
