"""`make soak`: SOAK_MINUTES (default 30) of steady mixed load (uploads, votes, reads) on the
processes of `make run`, sampling every service every SOAK_INTERVAL seconds (10): resident
memory, open file descriptors, threads (from /proc), asyncio tasks (a sitecustomize hook on the
services' PYTHONPATH, soak only) and PostgreSQL connections (pg_stat_activity, per database).

Writes soak.csv, soak.png and soak.json to the directory given as the first argument, prints
the growth of each series after warm-up, and checks the fault suite's invariants at the end.
Exits non-zero when an invariant fails or a series keeps growing."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from faults.invariants import Outcome, check, query
from faults.load import Load
from faults.stack import Stack
from videos import make_clip

HOOK = Path(__file__).with_name("soakhook")
METRICS = ("rss_mb", "fds", "threads", "tasks", "db_connections")
# A series "keeps growing" when its last fifth is this much above the fifth after warm-up.
GROWTH_LIMIT = {"rss_mb": 1.15, "fds": 1.25, "threads": 1.25, "tasks": 1.5, "db_connections": 1.5}


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def sample(stack: Stack, tasks_dir: Path, connections: dict[str, int]) -> list[dict]:
    rows = []
    for name, service in stack.services.items():
        pid = service.proc.pid
        try:
            status = _status(pid)
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        tasks_file = tasks_dir / str(pid)
        rows.append(
            {
                "service": name,
                "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
                "fds": fds,
                "threads": int(status["Threads"]),
                "tasks": int(tasks_file.read_text()) if tasks_file.exists() else "",
                "db_connections": connections.get(
                    {"auth": "auth", "upload": "upload", "upload-worker": "upload"}.get(name, ""),
                    0,
                ),
            }
        )
    return rows


def db_connections(stack: Stack) -> dict[str, int]:
    rows = query(
        stack,
        "SELECT datname, count(*) AS n FROM pg_stat_activity"
        " WHERE datname IS NOT NULL AND pid <> pg_backend_pid() GROUP BY datname",
    )
    return {r["datname"]: r["n"] for r in rows}


def growth(samples: list[dict], warmup: float) -> dict[str, dict[str, float]]:
    """Per service and metric: mean of the last fifth ÷ mean of the first fifth after warm-up."""
    result: dict[str, dict[str, float]] = {}
    for service in sorted({s["service"] for s in samples}):
        series = [s for s in samples if s["service"] == service and s["t"] >= warmup]
        fifth = max(1, len(series) // 5)
        result[service] = {}
        for metric in METRICS:
            values = [s[metric] for s in series if s[metric] != ""]
            if len(values) < 2:
                continue
            head = sum(values[:fifth]) / fifth
            tail = sum(values[-fifth:]) / fifth
            result[service][metric] = round(tail / head, 3) if head else float(tail == 0)
    return result


def plot(samples: list[dict], warmup: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted({s["service"] for s in samples})
    fig, axes = plt.subplots(len(METRICS), 1, figsize=(10, 2.4 * len(METRICS)), sharex=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        for service in services:
            points = [
                (s["t"] / 60, s[metric])
                for s in samples
                if s["service"] == service and s[metric] != ""
            ]
            if points:
                ax.plot(*zip(*points, strict=True), label=service)
        ax.axvline(warmup / 60, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", ncol=len(services), fontsize="small")
    axes[-1].set_xlabel("minutes (dotted: end of warm-up)")
    fig.suptitle("Soak: every service under steady mixed load")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(out: Path) -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    interval = float(os.environ.get("SOAK_INTERVAL", "10"))
    # Below one processor's pace on a busy 2-core machine (about one video per 10 s).
    upload_every = float(os.environ.get("SOAK_UPLOAD_EVERY", "12"))
    seconds = minutes * 60
    warmup = min(120.0, seconds / 5)
    out.mkdir(parents=True, exist_ok=True)
    tasks_dir = Path(tempfile.mkdtemp(prefix="soak-tasks-"))
    extra = {
        "SOAK_TASKS_DIR": str(tasks_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])),
    }
    clips_dir = Path(tempfile.mkdtemp(prefix="soak-clips-"))
    clips = [
        make_clip(clips_dir / "a.mp4", seconds=21, size="320x240", fps=10, audio=False),
        make_clip(clips_dir / "b.mp4", seconds=22, size="426x240", fps=10),
    ]
    stack = Stack(extra_env=extra).start()
    samples: list[dict] = []
    try:
        load = Load(
            stack.url,
            [c.read_bytes() for c in clips],
            seed=int(os.environ.get("FAULTS_SEED", "1105")),
            upload_every=upload_every,
            max_uploads=int(seconds / upload_every) + 1,
            read_every=0.5,
            max_seconds=seconds + 60,
        ).start()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            for row in sample(stack, tasks_dir, db_connections(stack)):
                samples.append({"t": round(elapsed, 1), **row})
            print(f"soak {elapsed / 60:5.1f} min: {samples[-len(stack.services) :]}", flush=True)
            time.sleep(max(0.0, interval - (time.monotonic() - started - elapsed)))
        load.stop()
        # What the processor has not reached yet is a backlog, not a loss: give it time.
        backlog = query(stack, "SELECT count(*) AS n FROM videos WHERE status = 'uploaded'")[0]["n"]
        outcome = check(
            stack,
            load,
            [],
            Outcome(
                "soak",
                f"{minutes:g} min: 1 upload per {upload_every:g} s, reads and votes every 0.5 s",
                "none",
                command=f"make soak SOAK_MINUTES={minutes:g}",
            ),
            settle_seconds=min(1800.0, 180.0 + 20.0 * backlog),
        )
    finally:
        stack.stop()
    with open(out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["t", "service", *METRICS])
        writer.writeheader()
        writer.writerows(samples)
    plot(samples, warmup, out / "soak.png")
    grown = growth(samples, warmup)
    too_much = {
        f"{service}.{metric}": ratio
        for service, metrics in grown.items()
        for metric, ratio in metrics.items()
        if ratio > GROWTH_LIMIT[metric]
    }
    summary = {
        "minutes": minutes,
        "interval_s": interval,
        "warmup_s": warmup,
        "growth_last_fifth_over_first": grown,
        "peaks": {
            service: {
                m: max((s[m] for s in samples if s["service"] == service and s[m] != ""), default=0)
                for m in METRICS
            }
            for service in grown
        },
        "outcome": outcome.row(),
        "keeps_growing": too_much,
    }
    (out / "soak.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if outcome.problems or too_much else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reliability")))
