"""A phase's figures, from the files the run left: requests.csv (one row per request), users.csv,
processes.csv, queues.csv and phase.json. The seed's columns: users, duration, requests,
success %, errors by status, mean / median / p95 / max latency, req/s, MB/s."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

UPLOAD = "upload"


@dataclasses.dataclass
class Phase:
    path: Path
    spec: dict[str, Any]
    started: float
    requests: list[dict[str, Any]]
    users: list[tuple[float, int]]

    @property
    def name(self) -> str:
        return self.spec["name"]

    def uploads(self, window: tuple[float, float] | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self.requests if r["kind"] == UPLOAD]
        if window is not None:
            lo, hi = (self.started + w for w in window)
            rows = [r for r in rows if lo <= r["end"] <= hi]
        return rows

    @property
    def complete(self) -> bool:
        """False when the run was stopped before the phase's shape ended."""
        planned = self.spec.get("points", [[0, 0]])[-1][0]
        return bool(self.users) and self.users[-1][0] - self.started >= planned - 2

    def window(self, name: str) -> tuple[float, float] | None:
        w = self.spec.get("windows", {}).get(name)
        return tuple(w) if w else None


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def load(path: Path) -> Phase:
    spec = json.loads((path / "phase.json").read_text())
    started_file = path / "started"
    requests = [
        {
            **r,
            "start": float(r["start"]),
            "end": float(r["end"]),
            "status": int(r["status"] or 0),
            "ms": float(r["ms"]),
            "bytes": int(r["bytes"] or 0),
        }
        for r in _rows(path / "requests.csv")
    ]
    users = [(float(r["time"]), int(r["users"])) for r in _rows(path / "users.csv")]
    if started_file.exists():
        started = float(started_file.read_text())
    else:
        started = users[0][0] if users else 0.0
    return Phase(path, spec, started, requests, users)


def ok(row: dict[str, Any]) -> bool:
    return row["status"] == 201 and not row["error"]


def summary(phase: Phase, window: tuple[float, float] | None = None) -> dict[str, Any]:
    rows = phase.uploads(window)
    latencies = np.array([r["ms"] / 1000 for r in rows]) if rows else np.array([0.0])
    good = [r for r in rows if ok(r)]
    errors = Counter(str(r["status"] or "no response") for r in rows if not ok(r))
    if window is not None:
        span = window[1] - window[0]  # a rate over the window itself
    else:
        span = max(r["end"] for r in rows) - min(r["start"] for r in rows) if rows else 0.0
    span = max(span, 1e-9)
    users = max((u for _, u in phase.users), default=0)
    duration = (phase.users[-1][0] - phase.started) if phase.users else span
    return {
        "phase": phase.name if phase.complete else f"{phase.name} (interrupted)",
        "users": users,
        "duration_s": duration,
        "requests": len(rows),
        "success_pct": 100 * len(good) / len(rows) if rows else 0.0,
        "errors": dict(errors),
        "mean_s": float(latencies.mean()),
        "median_s": float(np.median(latencies)),
        "p95_s": float(np.percentile(latencies, 95)),
        "max_s": float(latencies.max()),
        "req_s": len(rows) / span if rows else 0.0,
        "mb_s": sum(r["bytes"] for r in good) / 1e6 / span if rows else 0.0,
        "unauthorized": sum(1 for r in phase.requests if r["status"] == 401),
        "refreshes": sum(1 for r in phase.requests if r["name"] == "POST /api/auth/refresh"),
        # A direct upload's completion answered 503 + Retry-After (the client tries again).
        "complete_503": sum(
            1 for r in phase.requests if r["name"].endswith("/complete") and r["status"] == 503
        ),
        "logins": sum(1 for r in phase.requests if r["name"] == "POST /api/auth/login"),
    }


def processes(phase: Phase) -> dict[str, list[tuple[float, float, float]]]:
    """component -> [(seconds since start, cpu %, rss MB)]"""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for r in _rows(phase.path / "processes.csv"):
        out.setdefault(r["component"], []).append(
            (float(r["time"]) - phase.started, float(r["cpu_percent"]), float(r["rss_mb"]))
        )
    return out


def queues(phase: Phase) -> dict[str, list[tuple[float, int, int]]]:
    out: dict[str, list[tuple[float, int, int]]] = {}
    for r in _rows(phase.path / "queues.csv"):
        out.setdefault(r["queue"], []).append(
            (float(r["time"]) - phase.started, int(r["visible"]), int(r["in_flight"]))
        )
    return out


def busiest(phase: Phase, window: tuple[float, float] | None = None) -> list[tuple[str, float]]:
    """Components by mean CPU (% of one core) over the window (the hold by default), highest
    first; the load generator included, so a reader sees when it, not the system, was the limit."""
    window = window or phase.window("hold") or (0, float("inf"))
    means = []
    for label, samples in processes(phase).items():
        cpu = [c for t, c, _ in samples if window[0] <= t <= window[1]]
        if cpu:
            means.append((label, float(np.mean(cpu))))
    return sorted(means, key=lambda m: m[1], reverse=True)


def first_breach(
    phase: Phase, p95_s: float, error_pct: float, width: float = 30.0
) -> dict[str, float | None]:
    """When (seconds since the phase started) each KPI first broke its bound, over a sliding
    window of `width` s of finished uploads: p95 latency, error rate, and throughput (req/s
    falling below 80 % of its best so far while users are still added or held)."""
    rows = sorted(phase.uploads(), key=lambda r: r["end"])
    found: dict[str, float | None] = {"p95": None, "errors": None, "throughput": None}
    best = 0.0
    if not rows:
        return found
    width = min(width, max(5.0, (rows[-1]["end"] - phase.started) / 4))
    t = phase.started + width
    end = rows[-1]["end"]
    stop = phase.started + (phase.window("hold") or (0, end - phase.started))[1]
    while t <= min(end, stop):
        recent = [r for r in rows if t - width < r["end"] <= t]
        if recent:
            lat = np.percentile([r["ms"] / 1000 for r in recent], 95)
            bad = 100 * sum(1 for r in recent if not ok(r)) / len(recent)
            rate = len(recent) / width
            since = t - phase.started
            if found["p95"] is None and lat > p95_s:
                found["p95"] = since
            if found["errors"] is None and bad > error_pct:
                found["errors"] = since
            if found["throughput"] is None and best > 0 and rate < 0.8 * best:
                found["throughput"] = since
            best = max(best, rate)
        t += width / 6
    return found


SLO = {"p95_s": 1.0, "errors_pct": 5.0}  # the contract's capacity SLO


def capacity_step(phase: Phase) -> dict[str, Any]:
    """One step of the capacity search: does its hold keep the SLO, and which KPI broke first."""
    slo = phase.spec.get("slo", SLO)
    hold = summary(phase, phase.window("hold"))
    errors = 100 - hold["success_pct"] if hold["requests"] else 100.0
    held = hold["p95_s"] <= slo["p95_s"] and errors <= slo["errors_pct"]
    breach = first_breach(phase, slo["p95_s"], slo["errors_pct"])
    return {"users": hold["users"], "held": held, "hold": hold, "first_breach": breach, "slo": slo}
