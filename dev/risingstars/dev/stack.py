"""The `make run` system started for a test or a tool: free ports, its own state directory, its
output in a log, stopped (with everything it started) however the caller ends."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from risingstars.dev.infra import stop, wait_until

# make run's gateway takes BASE_PORT and its services the ports after it.
PORTS_NEEDED = 10


@dataclasses.dataclass(frozen=True)
class System:
    url: str
    state: Path
    proc: subprocess.Popen

    def log_tail(self, size: int = 4000) -> str:
        return (self.state / "run.log").read_text(errors="replace")[-size:]


def free_port_range(count: int) -> int:
    for _ in range(100):
        base = random.randint(20000, 60000)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


def system_ready(state: Path):
    return lambda: b"ready: http://" in (state / "run.log").read_bytes()


@contextlib.contextmanager
def running(env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[System]:
    base = free_port_range(PORTS_NEEDED)
    # Not under pytest's 0700 tmp dirs: PostgreSQL runs as `postgres` when tests run as root.
    state = Path(tempfile.mkdtemp(prefix="risingstars-system-"))
    state.chmod(0o755)
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in {"DATABASE_URL", "S3_BUCKET"}
    }
    environ.update(env or {})
    environ.update(BASE_PORT=str(base), DEV_STATE_DIR=str(state), PYTHONUNBUFFERED="1")
    log = open(state / "run.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "risingstars.dev.run"],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    system = System(f"http://127.0.0.1:{base}", state, proc)
    try:
        try:
            wait_until(system_ready(state), timeout, "make run", proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; its log ends with:\n{system.log_tail()}") from None
        yield system
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                stop(proc)
        log.close()
        shutil.rmtree(state, ignore_errors=True)
