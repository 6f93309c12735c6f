"""A run directory -> a Markdown report with PNG plots: the seed's columns for every web phase,
the seed's rows beside ours, which component saturated first, the capacity search, the worker
scenario, and a sizing sketch for 10× and 100× the seed's load from the per-pod figures measured."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from loadtest import analysis, seed
from loadtest.sampler import MACHINE
from loadtest.stack import ROOT

DOCS = ROOT / "docs" / "capacity"
CAPACITY_STEP = re.compile(r"capacity-(\d+)(?:-(direct))?")
SATURATED = 90.0  # % of one core, over 10 s: a single-threaded process can give no more


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "–"


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def row(label: str, s: dict[str, Any], seed_row: bool = False) -> str:
    dash = "–"
    median = dash if seed_row else f"{s['median_s']:.2f}"
    p95 = dash if seed_row else f"{s['p95_s']:.2f}"
    mb = f"≈{s['mb_s']:.1f}" if seed_row else f"{s['mb_s']:.1f}"
    return (
        f"| {label} | {s['users']} | {_mmss(s['duration_s'])} | {s['requests']} | "
        f"{s['success_pct']:.2f} | {_errors(s['errors'])} | {s['mean_s']:.2f} | {median} | "
        f"{p95} | {s['max_s']:.2f} | {s['req_s']:.2f} | {mb} |"
    )


HEADER = (
    "| phase | users | duration | requests | success % | errors by status | mean s | "
    "median s | p95 s | max s | req/s | MB/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def saturation(phase: analysis.Phase) -> tuple[str, float] | None:
    """The first component whose CPU stayed ≥ SATURATED % of a core over 10 s, and when."""
    first = None
    for label, samples in analysis.processes(phase).items():
        if label in ("load generator", MACHINE):
            continue
        cpu = np.array([c for _, c, _ in samples])
        times = [t for t, _, _ in samples]
        if len(cpu) < 10:
            continue
        rolling = np.convolve(cpu, np.ones(10) / 10, mode="valid")
        hits = np.nonzero(rolling >= SATURATED)[0]
        if hits.size and (first is None or times[hits[0] + 9] < first[1]):
            first = (label, times[hits[0] + 9])
    return first


def _rolling(rows, started: float):
    if not rows:
        return [], [], [], []
    ends = np.array([r["end"] - started for r in rows])
    width = float(np.clip(ends.max() / 6, 5, 20))
    lat = np.array([r["ms"] / 1000 for r in rows])
    grid = np.arange(width, ends.max() + 1, width / 4)
    p50, p95, rate = [], [], []
    for t in grid:
        mask = (ends > t - width) & (ends <= t)
        p50.append(np.median(lat[mask]) if mask.any() else np.nan)
        p95.append(np.percentile(lat[mask], 95) if mask.any() else np.nan)
        rate.append(mask.sum() / width)
    return grid, p50, p95, rate


def plot_phase(phase: analysis.Phase, target: Path) -> str:
    rows = sorted(phase.uploads(), key=lambda r: r["end"])
    fig, axes = plt.subplots(5, 1, figsize=(10, 15), sharex=True)
    users_t = [t - phase.started for t, _ in phase.users]
    users_n = [u for _, u in phase.users]
    grid, p50, p95, rate = _rolling(rows, phase.started)

    def with_users(ax):
        twin = ax.twinx()
        twin.plot(users_t, users_n, color="grey", lw=1, ls="--", label="users")
        twin.set_ylabel("users")
        return twin

    ax = axes[0]
    ax.scatter(
        [r["end"] - phase.started for r in rows],
        [r["ms"] / 1000 for r in rows],
        s=4,
        c=["tab:blue" if analysis.ok(r) else "tab:red" for r in rows],
        alpha=0.4,
        label="upload (red: failed)",
    )
    ax.plot(grid, p50, color="tab:green", label="median (sliding)")
    ax.plot(grid, p95, color="tab:orange", label="p95 (sliding)")
    ax.set_ylabel("latency s")
    ax.legend(loc="upper left", fontsize=8)
    with_users(ax)
    ax.set_title(f"{phase.name}: latency, throughput, resources")

    ax = axes[1]
    ax.plot(grid, rate, color="tab:blue", label="uploads/s (sliding)")
    ax.set_ylabel("uploads/s")
    ax.legend(loc="upper left", fontsize=8)
    with_users(ax)

    procs = analysis.processes(phase)
    ax = axes[2]
    for label, samples in sorted(procs.items()):
        style = {"color": "black", "ls": "--"} if label == MACHINE else {}
        ax.plot([t for t, _, _ in samples], [c for _, c, _ in samples], lw=1, label=label, **style)
    ax.axhline(100, color="black", lw=0.5, ls=":")
    ax.set_ylabel("CPU % of a core")
    ax.legend(loc="upper left", fontsize=7, ncol=3)

    ax = axes[3]
    for label in ("upload", "upload-worker", "gateway", "moto"):
        if label in procs:
            ax.plot([t for t, _, _ in procs[label]], [m for _, _, m in procs[label]], label=label)
    ax.set_ylabel("RSS MB")
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[4]
    for name, samples in analysis.queues(phase).items():
        ax.plot([t for t, _, _ in samples], [v for _, v, _ in samples], label=f"{name} visible")
        ax.plot(
            [t for t, _, _ in samples],
            [f for _, _, f in samples],
            ls=":",
            label=f"{name} in flight",
        )
    ax.set_ylabel("queue depth")
    ax.set_xlabel("seconds since the phase started")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    name = f"{phase.name}.png"
    fig.savefig(target / name, dpi=80)
    plt.close(fig)
    return name


def plot_worker(results: list[dict[str, Any]], phases: list, target: Path) -> str:
    by_name = {p.name: p for p in phases}
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in results:
        phase = by_name[r["name"]]
        jobs = analysis.queues(phase).get("jobs", [])
        ax.plot([t for t, _, _ in jobs], [v + f for _, v, f in jobs], label=r["name"])
    ax.set_xlabel("seconds since the jobs were sent")
    ax.set_ylabel("jobs queued or in flight")
    ax.legend(fontsize=8)
    ax.set_title("worker scenario: backlog")
    fig.tight_layout()
    fig.savefig(target / "worker-backlog.png", dpi=80)
    plt.close(fig)
    return "worker-backlog.png"


def loadavg(phase: analysis.Phase) -> str:
    """The machine's 1-minute load average (`uptime`) at the phase's start and end."""
    path = phase.path / "loadavg.json"
    if not path.exists():
        return "–"
    la = json.loads(path.read_text())
    return f"{la['start'][0]:.1f} → {la['end'][0]:.1f}"


def peak_rss(phase: analysis.Phase, component: str = "upload") -> float:
    return max((m for _, _, m in analysis.processes(phase).get(component, [])), default=0.0)


def cpu_seconds(phase: analysis.Phase, component: str) -> float:
    """CPU time a component used during the phase, from the 1-s samples."""
    samples = analysis.processes(phase).get(component, [])
    return sum(c / 100 * (t1 - t0) for (t0, _, _), (t1, c, _) in itertools.pairwise(samples))


def _backlog_slope(phase: analysis.Phase) -> float:
    """Jobs per minute the backlog changed by, over the run (negative: draining)."""
    jobs = analysis.queues(phase).get("jobs", [])
    if len(jobs) < 3:
        return 0.0
    t = np.array([s[0] for s in jobs])
    depth = np.array([s[1] + s[2] for s in jobs])
    return float(np.polyfit(t, depth, 1)[0] * 60)


def sizing(web: list[tuple[analysis.Phase, dict]], workers: list[dict]) -> list[str]:
    """Pods and instance sizes for 10× and 100× the seed's 300-user load, from per-pod figures:
    upload throughput per core of the upload service, its memory, and videos/min per processor."""
    # Bytes taken per CPU-second of the upload process, over every complete phase: the cost of
    # an upload follows its bytes, and CPU time does not depend on the machine's other load.
    streamed = [(p, s) for p, s in web if p.complete and not p.name.endswith("-direct")]
    mb = sum(r["bytes"] for p, _ in streamed for r in p.uploads() if analysis.ok(r)) / 1e6
    cpu = sum(cpu_seconds(p, "upload") for p, _ in streamed)
    if not cpu:
        return ["No web phase with upload CPU samples: no sizing sketch."]
    per_core = mb / cpu
    rss = max(
        (m for p, _ in streamed for _, _, m in analysis.processes(p).get("upload", [])), default=0
    )
    seed_rate = seed.BY_USERS[300]["req_s"]
    lines = [
        f"Measured: the upload service took {mb:,.0f} MB through `POST /api/videos/upload` "
        f"with {cpu:,.0f} CPU-seconds over the streamed phases, i.e. **{per_core:.0f} MB/s per "
        f"core** (the cost of an upload follows its bytes); its peak RSS was {rss:.0f} MB.",
    ]
    direct = [(p, s) for p, s in web if p.complete and p.name.endswith("-direct")]
    direct_uploads = sum(1 for p, _ in direct for r in p.uploads() if analysis.ok(r))
    if direct_uploads:
        direct_cpu = sum(cpu_seconds(p, "upload") for p, _ in direct)
        lines.append(
            f"Presigned path: {direct_uploads:,} uploads with {direct_cpu:,.0f} CPU-seconds of "
            f"the upload service, i.e. **{1000 * direct_cpu / direct_uploads:.0f} CPU-ms per "
            "upload** (create, sign the parts, complete with the MP4 check); S3 takes the bytes."
        )
    proc = [w for w in workers if w["processed"] and w.get("cpu_s_per_video")]
    if proc:
        w = min(proc, key=lambda w: (w["mb"], w["cpu_s_per_video"]))
        # CPU time per video does not depend on how much of the machine the processor got.
        per_pod_min = 2 * 0.9 * 60 / w["cpu_s_per_video"]
        lines.append(
            f"Processor: **{w['cpu_s_per_video']:.0f} CPU-seconds per video** for {w['mb']} MB "
            f"2560×1440 inputs (phase `{w['name']}`), so a 2-vCPU pod kept 90 % busy does "
            f"{per_pod_min:.1f} videos/min; the seed's 10–15 MB files cost less, so this errs "
            "on the safe side ("
            + ", ".join(
                f"{mb} MB: {np.mean([x['cpu_s_per_video'] for x in proc if x['mb'] == mb]):.0f}"
                for mb in sorted({x["mb"] for x in proc})
            )
            + " CPU-s per video over every CONCURRENCY)."
        )
    lines += [
        "",
        "| load | uploads/s | MB/s in | upload pods (1 vCPU, 70 % busy) | processor pods "
        "(2 vCPU) to keep the backlog flat | suggested AWS |",
        "|---|---|---|---|---|---|",
    ]
    for factor in (1, 10, 100):
        rate = seed_rate * factor
        pods = max(2, math.ceil(rate * seed.FILE_MB / (per_core * 0.7)))
        if proc:
            per_min = rate * 60
            procs = math.ceil(per_min / per_pod_min)
            proc_text = f"{procs} ({per_min:.0f} videos/min)"
        else:
            procs, proc_text = 0, "not measured"
        vcpu = pods + 2 * procs
        nodes = math.ceil(vcpu / 8 * 1.25)
        lines.append(
            f"| {factor}× seed ({300 * factor} users) | {rate:.1f} | "
            f"{rate * seed.FILE_MB:.0f} | {pods} | {proc_text} | "
            f"~{vcpu} vCPU: {nodes} × c6i.2xlarge (8 vCPU, 16 GiB), processor nodes as Spot |"
        )
    lines += [
        "",
        "CPU is not what sizes the upload pods: uploads in flight are. Closed-loop users keep "
        "one upload each in flight, 3,000 at 10× and 30,000 at 100×; every one holds a "
        "connection and, in the streamed path, a part being filled: a few 5 MiB buffers in "
        f"memory (peak RSS above: {rss:.0f} MB), the rest in the pod's scratch `emptyDir`, one "
        "whole part reserved per part waiting, so the chart's 1 GiB (`upload.spillBytes`) "
        "holds about 200 uploads in flight per pod when S3 takes parts as fast as they fill, "
        "and about 70 when every 15 MB upload's 3 parts wait; past that, new uploads wait for "
        "room with their body unread (each still holds its connection and request state, "
        "about 50 KB: `make bench ENTRY=waiting`) and are refused only after "
        "`UPLOAD_ADMISSION_WAIT_SECONDS`. Give each 1-vCPU pod at most ~200 streamed uploads "
        "in flight with 1 GiB of scratch (5 GiB for the worst case), i.e. about 15 pods at 10× "
        "and 150 at 100×, or move the bulk to the presigned path, where S3 takes the bytes and "
        "the pods only sign URLs.",
        "",
        "The upload API is not where the money goes: at every scale the processor (ffmpeg) needs "
        "tens of times the CPU of the upload path; scale it on the backlog (the operator), and "
        "let uploads go straight to S3 (the presigned path) when the API pods' network becomes "
        "the limit. S3 and SQS absorb these rates (S3 takes 3,500 PUT/s per prefix; 100× is about "
        f"{seed_rate * 100 * 3:.0f} part PUTs/s). PostgreSQL does one insert and one outbox row "
        "per upload: a db.t4g.medium handles 1×–10×, a db.m6g.large with a connection pooler 100×.",
    ]
    return lines


def _uptime(la: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in la) + " (1 / 5 / 15 min)"


def describe(meta: dict[str, Any], names: list[str]) -> list[str]:
    """What one run measured, and how."""
    m = meta["machine"]
    lines = [
        f"Run of {meta['started'].replace('T', ' ')}: phases {', '.join(names)}.",
        "",
        f"- System under test: `{meta['host']}` ({'this machine' if meta['local'] else 'remote'}),"
        f" code at commit `{meta['commit']}`.",
        f"- Machine: {m['cpus']} cores, {m['memory_gb']} GB, shared by the load generator and "
        f"every component (and other work: load average {_uptime(m['load_average_at_start'])} "
        "at the start"
        + (
            f", {_uptime(m['load_average_at_end'])} at the end)."
            if m.get("load_average_at_end")
            else ")."
        ),
    ]
    if any(p != "worker" for p in meta["plan"]):
        lines += [
            f"- Files: {', '.join(f'{x:g}' for x in meta['files_mb'])} MB MP4s, "
            f"{meta['picture']}; paths: {meta['paths']}; client profiles: {meta['profiles']}; "
            "closed loop, no think time.",
            "- Durations: "
            + (
                f"**scaled by {meta['scale']:g}** (every ramp and hold is {meta['scale']:g}× the "
                "plan's) to fit the time this machine had."
                if meta["scale"] != 1
                else "as the plans have them."
            ),
        ]
    if meta["local"]:
        lines += [
            f"- Processor: {meta['processor']} (locally its ffmpeg would compete with the upload "
            "path for the same 2 cores; in a cluster it runs on its own nodes).",
            "- Storage and queues emptied between phases, and uploaded originals deleted 3 min "
            "after they land while the processor is paused: moto keeps every object and slows as "
            "they accumulate (a 300-user phase uploads tens of GB).",
        ]
    if meta.get("note"):
        lines.append(f"- Note: {meta['note']}")
    return [*lines, ""]


def profiles_table(web: list[tuple[analysis.Phase, dict]]) -> list[str]:
    """Per client profile, for phases that mixed them."""
    lines = []
    for phase, _ in web:
        uploads = phase.uploads()
        names = sorted({r["profile"] for r in uploads})
        if len(names) < 2:
            continue
        if not lines:
            lines = [
                "## Client profiles",
                "",
                "| phase | profile | uploads | success % | median s | p95 s |",
                "|---|---|---|---|---|---|",
            ]
        for name in names:
            rows = [r for r in uploads if r["profile"] == name]
            lat = [r["ms"] / 1000 for r in rows]
            good = 100 * sum(1 for r in rows if analysis.ok(r)) / len(rows)
            lines.append(
                f"| {phase.name} | {name} | {len(rows)} | {good:.1f} | {np.median(lat):.2f} | "
                f"{np.percentile(lat, 95):.2f} |"
            )
    return [*lines, ""] if lines else []


SEED_PHASE = re.compile(r"seed-(\d+)(?:-(direct))?")


def findings(web: list[tuple[analysis.Phase, dict]], cores: int) -> list[str]:
    """The headline: our seed phases against the seed's, errors, and what limited the run."""
    lines = []
    for phase, s in web:
        found = SEED_PHASE.fullmatch(phase.name)
        if not found or int(found[1]) not in seed.BY_USERS or not phase.complete:
            continue
        theirs = seed.BY_USERS[int(found[1])]
        errors = sum(s["errors"].values())
        lines.append(
            f"- **{found[1]} users, {found[2] or 'streamed'} path**{s['env']}: "
            f"{s['req_s']:.2f} uploads/s "
            f"({s['req_s'] / theirs['req_s']:.1f}× the seed's {theirs['req_s']}), mean latency "
            f"{s['mean_s']:.0f} s (seed {theirs['mean_s']:.0f} s), p95 {s['p95_s']:.0f} s, "
            f"{errors} errors in {s['requests']} uploads, {s['unauthorized']} × 401."
        )
    if not lines:
        return []
    machine = [dict(analysis.busiest(p)).get(MACHINE) for p, _ in web]
    busy = [m for m in machine if m is not None]
    ours = [
        sum(v for c, v in analysis.busiest(p) if c not in (MACHINE, "load generator"))
        for p, _ in web
        if p.complete
    ]
    saturated = [saturation(p) for p, _ in web]
    firsts = sorted({x[0] for x in saturated if x})
    lines.append(
        "- First component to saturate: "
        + (", ".join(f"**{f}**" for f in firsts) if firsts else "none of ours")
        + (
            f"; the whole machine was {min(busy):.0f}–{max(busy):.0f} % busy (of "
            f"{100 * cores} %) during the holds, other work included."
            if busy
            else "."
        )
    )
    if busy and ours:
        lines.append(
            f"- Our whole stack (gateway, auth, upload, PostgreSQL, moto) used "
            f"{min(ours):.0f}–{max(ours):.0f} % of one core during the holds, of the "
            f"{100 * cores} % the machine has: the rest went to other work, so where it is low "
            "these figures are what the system did with its share, not its limit; the sizing "
            "sketch gives the cost per core."
        )
    return ["## Findings", "", *lines, ""]


def before_after(before: Path, web: list[tuple[analysis.Phase, dict]]) -> list[str]:
    """Our phases beside the same phases of an earlier report (its summary.json)."""
    earlier = {s["phase"]: s for s in json.loads(before.read_text())["web"]}
    lines = []
    for phase, now in web:
        then = earlier.get(phase.name)
        if then is None or not phase.complete:
            continue
        rss = f"{then['upload_rss_mb']:.0f}" if "upload_rss_mb" in then else "–"
        lines.append(
            f"| {phase.name} | {then['requests']} / {now['requests']} | "
            f"{_errors(then['errors'])} / {_errors(now['errors'])} | "
            f"{then['req_s']:.2f} / {now['req_s']:.2f} | "
            f"{then['mean_s']:.0f} / {now['mean_s']:.0f} | "
            f"{then['p95_s']:.0f} / {now['p95_s']:.0f} | {rss} / {now['upload_rss_mb']:.0f} |"
        )
    if not lines:
        return []
    return [
        "## Before and after",
        "",
        f"The same phases in the earlier report ([{before.parent.name}](../{before.parent.name}/"
        "README.md)), before / now:",
        "",
        "| phase | uploads | errors | req/s | mean s | p95 s | peak RSS upload MB |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]


def write(
    runs: Path | list[Path], target: Path, note: str = "", before: Path | None = None
) -> Path:
    runs = [Path(r) for r in (runs if isinstance(runs, list) else [runs])]
    target.mkdir(parents=True, exist_ok=True)
    metas = [json.loads((run / "meta.json").read_text()) for run in runs]
    per_run = [
        sorted((analysis.load(p.parent) for p in run.glob("*/phase.json")), key=lambda p: p.started)
        for run in runs
    ]
    phases = [p for group in per_run for p in group]
    # A run with settings of its own (`--env`) says so beside each of its phases.
    env = {
        p.path: f" [{', '.join(meta['stack_env'])}]" if meta.get("stack_env") else ""
        for meta, group in zip(metas, per_run, strict=True)
        for p in group
    }
    web = [
        (
            p,
            {
                **analysis.summary(p),
                "upload_rss_mb": peak_rss(p),
                "load_average": loadavg(p),
                "env": env[p.path],
            },
        )
        for p in phases
        if p.spec.get("kind", "web") == "web"
    ]
    workers = [json.loads((p.path / "worker.json").read_text()) for p in phases
               if (p.path / "worker.json").exists()]  # fmt: skip
    out = [f"# Load test: {metas[0]['started'][:10]}", ""]
    if note:
        out += [note, ""]
    for meta, group in zip(metas, per_run, strict=True):
        out += describe(meta, [p.name for p in group])
    out += findings(web, max(m["machine"]["cpus"] for m in metas))
    out += ["## The seed's phases beside ours", "", HEADER]
    for s in seed.PHASES:
        out.append(row(f"seed: {s['phase']}", s, seed_row=True))
    for _, s in web:
        out.append(row(f"**ours: {s['phase']}**{s['env']}", s))
    out += [
        "",
        "Seed figures: the client's JMeter run on AWS (docs/capacity/seed.md); its MB/s is "
        f"estimated as req/s × {seed.FILE_MB} MB, its median and p95 were not reported. "
        "Latency is the whole upload, first byte sent to response.",
        "",
        "Tokens: " + ", ".join(
            f"{s['phase']} {s['unauthorized']} × 401, {s['refreshes']} refreshes"
            + (f", {s['complete_503']} completions answered 503 + Retry-After"
               if s.get("complete_503") else "")
            for _, s in web
        ) + ".",
        "",
        *(before_after(before, web) if before else []),
        *profiles_table(web),
        "## Where the time went",
        "",
        "| phase | hold: mean CPU % of a core, busiest first | first to saturate (≥ 90 % of a "
        "core over 10 s) | whole machine busy, % of one core | load average start → end | "
        "peak RSS upload MB |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    cores = max(m["machine"]["cpus"] for m in metas)
    for phase, _ in web:
        ranked = analysis.busiest(phase)
        machine = dict(ranked).get(MACHINE)
        busy = ", ".join(f"{c} {v:.0f}" for c, v in ranked if c != MACHINE)
        sat = saturation(phase)
        sat_text = f"**{sat[0]}** at {sat[1]:.0f} s" if sat else "none"
        machine_text = f"{machine:.0f} of {cores * 100}" if machine is not None else "–"
        out.append(
            f"| {phase.name} | {busy} | {sat_text} | {machine_text} | {loadavg(phase)} | "
            f"{peak_rss(phase):.0f} |"
        )
    out += [
        "",
        "A component at 100 % of one core is saturated when it is a single Python process "
        "(moto, the gateway, one upload replica); PostgreSQL and ffmpeg can use more. Locally "
        "moto stands in for S3 and SQS: when it saturates first, the figures say how fast the "
        "emulator is, not how fast our code is. When the whole machine is busy (other work "
        "included) while no component of ours is, the machine was the limit: every process got "
        "a share of the cores, and the figures are lower bounds.",
    ]
    searches: dict[str, list[dict[str, Any]]] = {}
    for phase, _ in web:
        found = CAPACITY_STEP.fullmatch(phase.name)
        if found and phase.complete:
            searches.setdefault(found[2] or "stream", []).append(analysis.capacity_step(phase))
    for path, steps in searches.items():
        slo = steps[0]["slo"]
        held = [st["users"] for st in steps if st["held"]]
        found_text = (
            f"{max(held)} users" if held else f"below {min(st['users'] for st in steps)} users"
        )
        out += [
            "",
            f"## Capacity search ({path} path)",
            "",
            f"SLO: p95 ≤ {slo['p95_s']:g} s and errors ≤ {slo['errors_pct']:g} % over the hold. "
            f"Capacity found: **{found_text}** (steps in the order run).",
            "",
            "| X users | hold p95 s | hold errors % | hold req/s | hold MB/s | holds? | "
            "first KPI to degrade |",
            "|---|---|---|---|---|---|---|",
        ]
        for st in steps:
            h = st["hold"]
            breaches = {k: v for k, v in st["first_breach"].items() if v is not None}
            first = min(breaches, key=breaches.get) if breaches else None
            first_text = f"{first} (at {breaches[first]:.0f} s)" if first else "none"
            out.append(
                f"| {st['users']} | {h['p95_s']:.2f} | {100 - h['success_pct']:.2f} | "
                f"{h['req_s']:.2f} | {h['mb_s']:.1f} | {'yes' if st['held'] else 'no'} | "
                f"{first_text} |"
            )
        best = max(steps, key=lambda st: st["hold"]["req_s"])["hold"]["req_s"]
        out += [
            "",
            "In a closed loop without think time every user always has an upload in flight, so "
            "latency is users ÷ throughput (Little's law): a p95 of 1 s holds only while the "
            "users are fewer than the uploads/s the system completes, and a 12.5 MB upload is "
            "not a 1-second request. By the contract's SLO taken literally (p95 ≤ 1 s), the "
            f"capacity is therefore about {best:.1f} closed-loop users (the best hold "
            "throughput above × 1 s). For uploads the capacity that matters is the throughput "
            "column (where it stops growing with users) and the error rate.",
        ]
    if workers:
        out += [
            "",
            "## Worker scenario",
            "",
            "Jobs sent straight to a jobs queue in the `risingstars.jobs` format, all at once, to "
            "one processor process.",
            "",
            "| input | CONCURRENCY | jobs | processed | videos/min | mean service s | "
            "CPU s per video | machine busy % of one core | load average start → end | "
            "backlog trend (jobs/min) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for w in workers:
            phase = next(p for p in phases if p.name == w["name"])
            slope = _backlog_slope(phase)
            cpu = cpu_seconds(phase, "processor")
            w["cpu_s_per_video"] = cpu / w["processed"] if w["processed"] else None
            machine = dict(analysis.busiest(phase, (0, float("inf")))).get(MACHINE)
            out.append(
                f"| {w['mb']} MB | {w['concurrency']} | {w['jobs']} | {w['processed']} | "
                f"{w['videos_per_min']:.1f} | {w['mean_service_s'] or 0:.1f} | "
                f"{w['cpu_s_per_video'] or 0:.0f} | "
                f"{'–' if machine is None else f'{machine:.0f}'} | {loadavg(phase)} | "
                f"{slope:+.1f} |"
            )
        out += ["", f"![worker backlog]({plot_worker(workers, phases, target)})"]
    out += ["", "## Sizing sketch (on paper)", "", *sizing(web, workers), "", "## Plots", ""]
    for phase, _ in web:
        out.append(f"### {phase.name}\n\n![{phase.name}]({plot_phase(phase, target)})\n")
    summary = {
        "runs": metas,
        "web": [s for _, s in web],
        "worker": [{k: v for k, v in w.items() if k != "events"} for w in workers],
    }
    (target / "summary.json").write_text(json.dumps(summary, indent=1))
    (target / "README.md").write_text("\n".join(out) + "\n")
    return target / "README.md"
