"""Once a second, while a phase runs: CPU (% of one core) and RSS of every component of the
local stack and of the load generator, and the depth of the queues; so the report can say which
part saturated first."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import psutil

from loadtest.stack import moto_client

INTERVAL = 1.0
MACHINE = "machine (all processes)"


class Sampler:
    def __init__(
        self,
        out: Path,
        processes: Callable[[], dict[int, str]],
        queues: dict[str, str],
    ) -> None:
        self.out = out
        self.processes = processes
        self.queues = queues
        self.extra: dict[int, str] = {}  # the load generator, once started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu: dict[int, float] = {}
        self._handles: dict[int, psutil.Process] = {}
        self._sqs = None
        self._machine: float | None = None
        if queues:
            endpoint = next(iter(queues.values())).rsplit("/", 2)[0]
            local = "127.0.0.1" in endpoint
            self._sqs = (
                moto_client("sqs", endpoint)
                if local
                else boto3.client("sqs", region_name=os.environ.get("AWS_REGION", "us-east-1"))
            )

    def __enter__(self) -> Sampler:
        self._loadavg = {"start": os.getloadavg()}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        # `uptime`'s figures, for the report: how much other work shared the machine.
        self._loadavg["end"] = os.getloadavg()
        (self.out / "loadavg.json").write_text(json.dumps(self._loadavg))

    def _cpu_seconds(self, pid: int) -> float | None:
        try:
            handle = self._handles.get(pid) or self._handles.setdefault(pid, psutil.Process(pid))
            t = handle.cpu_times()
            return t.user + t.system
        except psutil.Error:
            self._handles.pop(pid, None)
            return None

    def _sample_processes(self, writer, now: float, elapsed: float) -> None:
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        for pid, label in {**self.processes(), **self.extra}.items():
            total = self._cpu_seconds(pid)
            if total is None:
                continue
            with contextlib.suppress(psutil.Error):
                rss[label] = rss.get(label, 0) + self._handles[pid].memory_info().rss / 1e6
            before = self._cpu.get(pid)
            self._cpu[pid] = total
            if before is not None and elapsed > 0:
                cpu[label] = cpu.get(label, 0) + 100 * (total - before) / elapsed
            else:
                cpu.setdefault(label, 0.0)
        # The whole machine (every process, ours or not), in % of one core like the rest: on a
        # shared machine the system under test may get far less than the cores it sees.
        busy = psutil.cpu_times()
        busy_total = (
            busy.user
            + busy.system
            + busy.nice
            + getattr(busy, "irq", 0)
            + getattr(busy, "softirq", 0)
        )
        if self._machine is not None and elapsed > 0:
            cpu[MACHINE] = 100 * (busy_total - self._machine) / elapsed
            rss[MACHINE] = (psutil.virtual_memory().total - psutil.virtual_memory().available) / 1e6
        self._machine = busy_total
        for label in sorted(cpu):
            writer.writerow([f"{now:.3f}", label, f"{cpu[label]:.1f}", f"{rss.get(label, 0):.1f}"])

    def _sample_queues(self, writer, now: float) -> None:
        for name, url in self.queues.items():
            try:
                attrs = self._sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
            except Exception:  # noqa: S112 (a reset in progress: the next sample tells)
                continue
            writer.writerow(
                [
                    f"{now:.3f}",
                    name,
                    attrs.get("ApproximateNumberOfMessages", 0),
                    attrs.get("ApproximateNumberOfMessagesNotVisible", 0),
                ]
            )

    def _run(self) -> None:
        with (
            (self.out / "processes.csv").open("w", newline="") as pf,
            (self.out / "queues.csv").open("w", newline="") as qf,
        ):
            procs, queues = csv.writer(pf), csv.writer(qf)
            procs.writerow(["time", "component", "cpu_percent", "rss_mb"])
            queues.writerow(["time", "queue", "visible", "in_flight"])
            last = time.monotonic()
            while not self._stop.is_set():
                now, mono = time.time(), time.monotonic()
                self._sample_processes(procs, now, mono - last)
                last = mono
                if self._sqs is not None:
                    self._sample_queues(queues, now)
                pf.flush()
                qf.flush()
                self._stop.wait(INTERVAL)
