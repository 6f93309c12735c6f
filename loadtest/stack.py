"""The system under test, seen from the load test: a `make run` stack it starts itself (free
ports, its own state directory) or one already running; the processes of each component, for
the sampler; and, locally, resetting storage and queues between phases and pausing the
processor so its ffmpeg does not compete for the machine with the upload path being measured."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from risingstars.dev import infra
from risingstars.dev.stack import running

ROOT = Path(__file__).resolve().parents[1]
# Same queue attributes as `make run` creates (risingstars.dev.run).
AWS_PREFIX, MAX_RECEIVE, VISIBILITY = "rising-stars", 5, 120


def component(proc: psutil.Process) -> str | None:
    """Which part of the system a process is, from its command line."""
    try:
        cmd = " ".join(proc.cmdline())
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "risingstars.dev.run" in cmd:
        return "gateway"  # make run's own process serves the gateway
    for service in ("auth", "processor", "operator"):
        if f"risingstars.{service}" in cmd:
            return service
    if "risingstars.upload" in cmd:
        return "upload-worker" if cmd.rstrip().endswith(" worker") else "upload"
    if "moto" in cmd:
        return "moto"
    if name.startswith("postgres") or cmd.startswith("postgres"):
        return "postgres"
    if "ffmpeg" in name:
        return "processor"  # the processor's encoder
    return None


class Stack:
    def __init__(self, host: str, root_pid: int | None) -> None:
        self.host = host
        self.root_pid = root_pid

    @property
    def local(self) -> bool:
        return self.root_pid is not None

    def processes(self) -> dict[int, str]:
        """pid -> component, for the whole local stack (empty for a remote host)."""
        if self.root_pid is None:
            return {}
        try:
            root = psutil.Process(self.root_pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        found = {}
        for p in tree:
            label = component(p)
            if label:
                found[p.pid] = label
        return found

    def moto_url(self) -> str | None:
        for pid, label in self.processes().items():
            if label != "moto":
                continue
            with contextlib.suppress(psutil.Error, ValueError, IndexError):
                args = psutil.Process(pid).cmdline()
                return f"http://127.0.0.1:{args[args.index('-p') + 1]}"
        return None

    def queues(self) -> dict[str, str]:
        moto = self.moto_url()
        if moto is None:
            return {n: os.environ[v] for n, v in QUEUE_ENV.items() if os.environ.get(v)}
        return {n: f"{moto}/123456789012/{AWS_PREFIX}-{n}" for n in QUEUE_ENV}

    def reset_storage(self) -> None:
        """Empty the emulated S3 and SQS (moto slows as objects and messages pile up), then
        create the bucket and queues again under the same names, as make run did."""
        moto = self.moto_url()
        if moto is None:
            return
        request = urllib.request.Request(f"{moto}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass
        infra.create_aws_resources(
            moto, AWS_PREFIX, max_receive_count=MAX_RECEIVE, visibility_timeout=VISIBILITY
        )

    def signal_processor(self, sig: int) -> None:
        for pid, label in self.processes().items():
            if label == "processor":
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).send_signal(sig)

    def pause_processor(self) -> None:
        self.signal_processor(signal.SIGSTOP)

    def resume_processor(self) -> None:
        self.signal_processor(signal.SIGCONT)


def moto_client(service: str, endpoint: str):
    """A boto3 client for the emulated S3 or SQS (moto takes any credentials)."""
    import boto3  # dev-only dependency

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


QUEUE_ENV = {"jobs": "JOBS_QUEUE_URL", "events": "EVENTS_QUEUE_URL"}


class Janitor:
    """While a phase runs with the processor paused, deletes uploaded originals a few seconds
    after they land: moto keeps every object (in memory, or in temporary files past 5 MB), and
    a 300-user phase uploads tens of GB. Nothing reads them while the processor is paused."""

    # Old enough that a presigned upload whose completion answered 503 (the service's deadline
    # on a slow moto) and is retried finds its object still there, not a 404.
    def __init__(self, moto_url: str, bucket: str = f"{AWS_PREFIX}-videos", age: float = 180):
        self.s3 = moto_client("s3", moto_url)
        self.bucket = bucket
        self.age = age
        self.deleted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Janitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def sweep(self) -> None:
        cutoff = time.time() - self.age
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        for page in pages:
            old = [
                {"Key": o["Key"]}
                for o in page.get("Contents", [])
                if o["LastModified"].timestamp() < cutoff
            ]
            for i in range(0, len(old), 1000):
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": old[i : i + 1000]})
                self.deleted += len(old[i : i + 1000])

    def _run(self) -> None:
        while not self._stop.wait(min(self.age, 10)):
            with contextlib.suppress(Exception):  # a reset in progress: try again next time
                self.sweep()


@contextlib.contextmanager
def started(env: dict[str, str] | None = None) -> Iterator[Stack]:
    """`make run` on free ports with a state directory of its own (risingstars.dev.stack)."""
    with running(env, timeout=180) as sut:
        stack = Stack(sut.url, sut.proc.pid)
        try:
            yield stack
        finally:
            stack.resume_processor()  # a stopped process would not see the SIGINT


def attach(host: str) -> Stack:
    """A stack already running: local when something on this machine listens on its port
    (then its processes are sampled and its storage reset), remote otherwise."""
    parsed = urllib.parse.urlsplit(host)
    if parsed.hostname in {"127.0.0.1", "localhost", "::1"}:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        with contextlib.suppress(psutil.Error):
            for conn in psutil.net_connections("tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                    return Stack(host, conn.pid)
    return Stack(host, None)
