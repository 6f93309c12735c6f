"""Throwaway PostgreSQL and moto (S3 + SQS) servers, for `make run` and the test harness.

Every process started here is a direct child that dies with its parent (PR_SET_PDEATHSIG), so a
killed test run or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(pid: int, port: int) -> bool:
    """Whether process `pid` itself listens on `port`. Another process can take a port between
    free_port() and a server's bind, and would then answer in its place."""
    inodes = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):  # its network namespace
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return True
    return False


def _die_with_parent(user: pwd.struct_passwd | None = None):
    def preexec() -> None:
        os.setsid()
        if user is not None:
            os.setgid(user.pw_gid)
            os.setgroups([])
            os.setuid(user.pw_uid)
        # After setuid: changing credentials clears the parent-death signal.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def postgres_bindir() -> Path:
    explicit = os.environ.get("PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    try:
        import pgserver  # type: ignore[import-not-found]  # wheel with PostgreSQL inside

        return Path(pgserver.__file__).parent / "pginstall" / "bin"
    except ImportError:
        raise RuntimeError(
            "no PostgreSQL binaries found: install Debian's postgresql package "
            "(.ci/install does) or `pip install pgserver`, or set DATABASE_URL"
        ) from None


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


@dataclasses.dataclass
class Postgres:
    proc: subprocess.Popen
    port: int
    datadir: Path

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def start_postgres(
    datadir: Path, port: int | None = None, log_path: Path | None = None
) -> Postgres:
    """Start (initialising when new) a private PostgreSQL in `datadir`. As root the server runs
    as the `postgres` user (PostgreSQL refuses to run as root)."""
    bindir = postgres_bindir()
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    datadir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(datadir, user.pw_uid, user.pw_gid)
    port = port or free_port()
    if not (datadir / "PG_VERSION").exists():
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent(user),
        )
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(datadir),
            "-p",
            str(port),
            "-k",
            str(datadir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent(user),
    )

    def accepting() -> bool:
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
            check=False,
        )
        return ready.returncode == 0

    wait_until(lambda: listening(proc.pid, port) and accepting(), 30, "PostgreSQL", proc)
    return Postgres(proc, port, datadir)


def psql(pg: Postgres, sql: str, database: str = "postgres") -> None:
    """Run one SQL statement as the superuser."""
    subprocess.run(
        [
            str(postgres_bindir() / "psql"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(pg.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def create_database(pg: Postgres, name: str) -> str:
    psql(pg, f'CREATE DATABASE "{name}"')
    return pg.url(name)


@dataclasses.dataclass
class Moto:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_moto(
    port: int | None = None, log_path: Path | None = None, env: dict[str, str] | None = None
) -> Moto:
    """A moto server on `port`, or on a free port (another one if that was taken meanwhile),
    with `env` added to its environment (never to this process's: threads share that)."""
    if port:
        return _launch_moto(port, log_path, env or {})
    for _ in range(2):
        with contextlib.suppress(RuntimeError):  # it exited: the port was taken before it bound
            return _launch_moto(free_port(), log_path, env or {})
    return _launch_moto(free_port(), log_path, env or {})


def _launch_moto(port: int, log_path: Path | None, env: dict[str, str]) -> Moto:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent(),
    )

    def answering() -> bool:
        url = f"http://127.0.0.1:{port}/moto-api/"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return listening(proc.pid, port)
        return False

    wait_until(answering, 30, "moto server", proc)
    return Moto(proc, port)


AWS_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts anything
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclasses.dataclass(frozen=True)
class AWSResources:
    bucket: str
    jobs_queue_url: str
    dlq_url: str
    events_queue_url: str


def create_aws_resources(
    endpoint: str, prefix: str, *, max_receive_count: int = 3, visibility_timeout: int = 120
) -> AWSResources:
    """The bucket, the jobs queue with its dead-letter queue and redrive policy, and the events
    queue, as the chart's documentation asks an operator to create them on AWS."""
    import boto3  # dev-only dependency: synchronous setup code

    kw = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    s3 = boto3.client("s3", **kw)
    sqs = boto3.client("sqs", **kw)
    bucket = f"{prefix}-videos"
    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    jobs_url = sqs.create_queue(
        QueueName=f"{prefix}-jobs",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    events_url = sqs.create_queue(
        QueueName=f"{prefix}-events", Attributes={"VisibilityTimeout": "60"}
    )["QueueUrl"]
    return AWSResources(bucket, jobs_url, dlq_url, events_url)


@contextlib.contextmanager
def running(proc_factory, *args, **kwargs) -> Iterator:
    server = proc_factory(*args, **kwargs)
    try:
        yield server
    finally:
        stop(server.proc)
