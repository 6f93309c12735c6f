"""The processes of `make run`, started one by one so each can be killed and restarted on its
own: PostgreSQL and moto from risingstars.dev.infra (moto behind a FaultProxy), the services as
`python -m risingstars.<name>` with the environment `make run` gives them, and the same gateway.

Settings are `make run`'s except a few knobs that make a fault run fit in minutes (shorter
visibility timeouts and retry backoffs, small clips accepted, the fastest x264 preset):
the scenarios are about delivery and bookkeeping, not picture quality. All are listed in
TUNING and in docs/reliability.md."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from faults.proxy import FaultProxy

from risingstars.dev import infra

GATEWAY = Path(__file__).with_name("gateway_main.py")
PREFIX = "rising-stars"
MAX_RECEIVE_COUNT = 5  # as make run creates the jobs queue
VISIBILITY_SECONDS = 8

TUNING = {
    "MIN_SHORT_SIDE_PX": "240",
    "FFMPEG_PRESET": "ultrafast",
    "VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS),
    "HEARTBEAT_SECONDS": "2",
    "RETRY_BASE_SECONDS": "1",
    "RETRY_MAX_SECONDS": "4",
    "RECEIVE_WAIT_SECONDS": "2",
    "EVENTS_WAIT_SECONDS": "2",
    "OUTBOX_POLL_SECONDS": "0.5",
    "OUTBOX_MAX_BACKOFF_SECONDS": "4",
    "OUTBOX_GRACE_SECONDS": "3",
    "SHUTDOWN_TIMEOUT_SECONDS": "15",
    "DRAIN_SECONDS": "0",
    "LOG_LEVEL": "info",
    "PYTHONUNBUFFERED": "1",
}


def _has_upload_worker() -> bool:
    """The upload API and its background loops run as two processes once `upload worker`
    exists (docs/conventions.md); before that, `serve` runs both."""
    spec = importlib.util.find_spec("risingstars.upload.__main__")
    return spec is not None and '"worker"' in Path(spec.origin).read_text()


@dataclasses.dataclass
class Service:
    name: str
    module: str
    args: list[str]
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    starts: int = 0


class Stack:
    def __init__(self, *, work_dir: Path | None = None, extra_env: dict[str, str] | None = None):
        self.state = Path(tempfile.mkdtemp(prefix="risingstars-faults-"))
        self.state.chmod(0o755)  # PostgreSQL runs as `postgres` when tests run as root
        self.work_dir = work_dir or self.state / "scratch"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.extra_env = extra_env or {}
        self.services: dict[str, Service] = {}
        self.pg: infra.Postgres | None = None
        self.moto: infra.Moto | None = None
        self.proxy: FaultProxy | None = None
        self.gateway: subprocess.Popen | None = None
        self.gateway_port = infra.free_port()

    # -- the whole system ------------------------------------------------------------------

    def start(self) -> Stack:
        self.pg = infra.start_postgres(
            self.state / "pg", infra.free_port(), log_path=self.state / "postgres.log"
        )
        for name in ("auth", "upload"):
            infra.create_database(self.pg, name)
        self.moto = infra.start_moto(log_path=self.state / "moto.log")
        self.proxy = FaultProxy(self.moto.port, infra.free_port())
        # Queue URLs name the proxy: every client goes through it.
        self.aws = infra.create_aws_resources(
            self.proxy.url,
            PREFIX,
            max_receive_count=MAX_RECEIVE_COUNT,
            visibility_timeout=VISIBILITY_SECONDS,
        )
        keys = self.state / "keys"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in {"DATABASE_URL", "S3_BUCKET", "PORT"}
        }
        base.update(infra.AWS_DUMMY_ENV)
        base.update(TUNING)
        base.update(
            AWS_ENDPOINT_URL=self.proxy.url,
            S3_BUCKET=self.aws.bucket,
            JOBS_QUEUE_URL=self.aws.jobs_queue_url,
            EVENTS_QUEUE_URL=self.aws.events_queue_url,
            AUTH_SIGNING_KEYS_DIR=str(keys),
            WORK_DIR=str(self.work_dir),
        )
        base.update(self.extra_env)
        ports = {name: infra.free_port() for name in ("auth", "upload", "processor", "worker")}
        base["JWKS_URL"] = f"http://127.0.0.1:{ports['auth']}/.well-known/jwks.json"

        def env(name: str, db: str | None) -> dict[str, str]:
            own = dict(base, PORT=str(ports[name]))
            if db:
                own["DATABASE_URL"] = self.pg.url(db)
            return own

        self.services["auth"] = Service("auth", "auth", [], ports["auth"], env("auth", "auth"))
        self.services["upload"] = Service(
            "upload", "upload", [], ports["upload"], env("upload", "upload")
        )
        if _has_upload_worker():
            self.services["upload-worker"] = Service(
                "upload-worker", "upload", ["worker"], ports["worker"], env("worker", "upload")
            )
        self.services["processor"] = Service(
            "processor", "processor", [], ports["processor"], env("processor", None)
        )
        self._once("auth", ["genkey", str(keys)])
        self._once("auth", ["migrate"])
        self._once("upload", ["migrate"])
        for name in self.services:
            self.launch(name)
        for name in self.services:
            self.wait_ready(name)
        self.gateway = subprocess.Popen(
            [
                sys.executable,
                str(GATEWAY),
                str(self.gateway_port),
                f"http://127.0.0.1:{ports['auth']}",
                f"http://127.0.0.1:{ports['upload']}",
            ],
            stdout=open(self.state / "gateway.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            preexec_fn=infra._die_with_parent(),
        )
        infra.wait_until(self._gateway_up, 30, "gateway", self.gateway)
        return self

    def stop(self) -> None:
        for service in self.services.values():
            if service.proc is not None:
                infra.stop(service.proc, 20)
        for proc in (self.gateway, self.moto and self.moto.proc, self.pg and self.pg.proc):
            if proc is not None:
                infra.stop(proc)
        if self.proxy is not None:
            self.proxy.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def _gateway_up(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + "/api/public/rankings", timeout=2).status_code == 200
        return False

    # -- one process -----------------------------------------------------------------------

    def _once(self, name: str, args: list[str]) -> None:
        service = self.services[name]
        with open(self.state / f"{name}.log", "ab") as log:
            subprocess.run(
                [sys.executable, "-m", f"risingstars.{service.module}", *args],
                env=service.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )

    def launch(self, name: str) -> None:
        service = self.services[name]
        service.proc = subprocess.Popen(
            [sys.executable, "-m", f"risingstars.{service.module}", *service.args],
            env=service.env,
            stdout=open(self.state / f"{name}.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            preexec_fn=infra._die_with_parent(),
        )
        service.starts += 1

    def ready(self, name: str) -> bool:
        port = self.services[name].port
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        return False

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        service = self.services[name]
        try:
            infra.wait_until(lambda: self.ready(name), timeout, name, service.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}; log:\n{self.log_tail(name)}") from None

    def send(self, name: str, sig: int, timeout: float = 60) -> int:
        """Send `sig` to a service and wait for it to exit; return its exit code."""
        proc = self.services[name].proc
        assert proc is not None
        proc.send_signal(sig)
        return proc.wait(timeout)

    def restart(self, name: str, sig: int = signal.SIGTERM) -> None:
        self.send(name, sig)
        self.launch(name)
        self.wait_ready(name)

    def pid(self, name: str) -> int:
        proc = self.services[name].proc
        assert proc is not None
        return proc.pid

    def children(self, name: str, command: str) -> list[int]:
        """Child processes of a service whose command line contains `command` (e.g. ffmpeg)."""
        found = []
        parent = str(self.pid(name))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = stat.rsplit(")", 1)[1].split()[1]
                if ppid == parent and command in (entry / "cmdline").read_bytes().decode(
                    errors="replace"
                ):
                    found.append(int(entry.name))
        return found

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.state / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # -- infrastructure faults -------------------------------------------------------------

    def stop_postgres(self) -> None:
        assert self.pg is not None
        self.pg.proc.send_signal(signal.SIGINT)  # fast shutdown: sessions are cut
        self.pg.proc.wait(60)

    def start_postgres(self) -> None:
        assert self.pg is not None
        self.pg = infra.start_postgres(
            self.pg.datadir, self.pg.port, log_path=self.state / "postgres.log"
        )

    def wait_all_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for name in self.services:
            self.wait_ready(name, max(1.0, deadline - time.monotonic()))
