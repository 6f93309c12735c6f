"""`python -m loadtest run`: prepare (stack, clips, accounts), then run the plan's phases, each
as a headless Locust process with the phase's shape, sampling the stack meanwhile."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from loadtest import accounts, analysis, media, plan, report, worker
from loadtest import stack as stacks
from loadtest.sampler import Sampler
from loadtest.stack import ROOT, Janitor, Stack

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RUNS = ROOT / ".dev" / "loadtest" / "runs"


@dataclasses.dataclass
class Context:
    stack: Stack
    out: Path
    accounts: Path
    files: list[Path]
    settings: dict[str, Any]
    pause_processor: bool
    log: Any = print
    reuse: Path | None = None  # an earlier run's accounts


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "HEAD")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--", "services") else ""
    return f"{head} on {branch}{dirty}"


def run_web(
    ctx: Context, phase: plan.WebPhase, path: str, extra: dict[str, Any] | None = None
) -> analysis.Phase:
    out = ctx.out / phase.name
    out.mkdir(parents=True, exist_ok=True)
    if ctx.stack.local:
        ctx.stack.reset_storage()
        if ctx.pause_processor:
            ctx.stack.pause_processor()
    spec = phase.spec(
        out=str(out),
        files=[str(f) for f in ctx.files],
        accounts=str(ctx.accounts),
        path=path,
        **ctx.settings,
        **(extra or {}),
    )
    (out / "phase.json").write_text(json.dumps(spec, indent=1))
    ctx.log(f"phase {phase.name}: {phase.users} users, {phase.seconds:.0f} s, {path} path")
    env = dict(os.environ, LOADTEST_PHASE=str(out / "phase.json"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", ctx.stack.host, "--csv", str(out / "locust"), "--only-summary",
        "--stop-timeout", str(int(ctx.settings["stop_timeout"])), "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    moto = ctx.stack.moto_url() if ctx.pause_processor else None
    with (
        Janitor(moto) if moto else contextlib.nullcontext(),
        Sampler(out, ctx.stack.processes, ctx.stack.queues()) as sampler,
        (out / "locust.log").open("wb") as log,
    ):
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        sampler.extra[proc.pid] = "load generator"
        try:
            code = proc.wait(phase.seconds + ctx.settings.get("timeout", 900) + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
    if code != 0:
        tail = (out / "locust.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"locust exited with {code} in phase {phase.name}:\n{tail}")
    result = analysis.load(out)
    s = analysis.summary(result)
    ctx.log(
        f"  {s['requests']} uploads, {s['success_pct']:.1f} % ok, errors {s['errors']}, "
        f"mean {s['mean_s']:.2f} s, p95 {s['p95_s']:.2f} s, {s['req_s']:.2f} req/s, "
        f"{s['mb_s']:.1f} MB/s"
    )
    return result


def capacity_search(ctx: Context, args, path: str) -> dict[str, Any]:
    """Ramp and hold X users for X = start, start+step, … until the hold's p95 or error rate
    breaks the SLO; if the very first X breaks it, halve X (down to 1) to find one that holds.
    Then hold 80 % of the largest X that held."""
    tag = "" if path == "stream" else f"-{path}"
    slo = {"slo": {"p95_s": args.slo_p95, "errors_pct": args.slo_errors}}
    run_web(ctx, plan.capacity_smoke(args.scale, tag), path)
    steps = []

    def step(users: int) -> bool:
        needed = math.ceil(users / args.users_per_account)
        accounts.prepare(ctx.stack.host, needed, ctx.accounts, ctx.reuse)
        phase = run_web(ctx, plan.capacity_step(users, args.scale, tag), path, slo)
        result = analysis.capacity_step(phase)
        steps.append(result)
        ctx.log(f"  capacity step {users}: {'holds' if result['held'] else 'breaks'} the SLO")
        return result["held"]

    users = args.start_users
    while users <= args.max_users and step(users):
        users += args.step_users
    if not any(s["held"] for s in steps):
        users = args.start_users // 2
        while users >= 1 and not step(users):
            users //= 2
    held = [s["users"] for s in steps if s["held"]]
    found = max(held) if held else None
    if found:
        run_web(ctx, plan.capacity_step(max(1, int(found * 0.8)), args.scale, tag, True), path)
    return {"path": path, "steps": steps, "capacity_users": found}


def main(args) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or RUNS / stamp)
    out.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        print(text, flush=True)
        with (out / "run.log").open("a") as f:
            f.write(f"{datetime.datetime.now():%H:%M:%S} {text}\n")

    plans = args.plan.split(",")
    # Before the stack starts: ffmpeg must not compete with it (cached after the first run).
    files = media.upload_clips(args.sizes, args.picture, cache=Path(args.cache))
    if "worker" in plans:
        for mb in args.worker_sizes:
            media.worker_input(mb, Path(args.cache))
    with contextlib.ExitStack() as cleanup:
        if args.host:
            sut = stacks.attach(args.host)
        else:
            log("starting make run (own ports and state directory)")
            sut = cleanup.enter_context(stacks.started(dict(e.split("=", 1) for e in args.env)))
        log(f"system under test: {sut.host} ({'local' if sut.local else 'remote'})")
        if sut.local and args.pause_processor:
            cleanup.callback(sut.resume_processor)
        meta = describe(args, sut, files)
        (out / "meta.json").write_text(json.dumps(meta, indent=1))
        reuse = Path(args.accounts) if args.accounts else None
        settings = phase_settings(args)
        ctx = Context(
            sut, out, out / "accounts.json", files, settings, args.pause_processor, log, reuse
        )
        execute(ctx, args, plans)
        meta["machine"]["load_average_at_end"] = os.getloadavg()
        (out / "meta.json").write_text(json.dumps(meta, indent=1))
    log(f"run written to {out}")
    if not args.no_report:
        target = report.write(out, out / "report")
        log(f"report: {target}")
    return out


def describe(args, sut: Stack, files: list[Path]) -> dict[str, Any]:
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": sut.host,
        "local": sut.local,
        "commit": commit(),
        "plan": args.plan.split(","),
        "scale": args.scale,
        "paths": args.paths,
        "profiles": args.profiles,
        "files_mb": [round(f.stat().st_size / 1e6, 2) for f in files],
        "picture": args.picture,
        "processor": "paused during web phases" if args.pause_processor else "running",
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "stack_env": args.env,
        "note": args.note,
    }


def phase_settings(args) -> dict[str, Any]:
    return {
        "profiles": profiles(args.profiles),
        "rate": args.rate,
        "head": args.stall_head,
        "pause": args.stall_seconds,
        "think": args.think,
        "timeout": args.timeout,
        "refresh_margin": args.refresh_margin,
        "users_per_account": args.users_per_account,
        "stop_timeout": args.stop_timeout or args.timeout,
    }


def execute(ctx: Context, args, plans: list[str]) -> None:
    seeded = [int(u) for p in plans if p.startswith("seed:") for u in p[5:].split("/") if u]
    web = [p for p in plans if p != "worker"]
    if web:
        users = max(
            args.start_users if "capacity" in web else 0,
            300 if "seed" in web else max(seeded, default=0),
            args.smoke_users,
        )
        users = math.ceil(users / args.users_per_account)
        ctx.log(f"accounts: {users} (signed up once for the run)")
        accounts.prepare(ctx.stack.host, users, ctx.accounts, ctx.reuse)
    for name in plans:
        for path in args.paths.split(",") if name != "worker" else []:
            tag = "" if path == "stream" else f"-{path}"
            if name.startswith("seed"):
                # seed, or seed:300 / seed:100/200 for some of its scaling phases only
                only = [int(u) for u in name.partition(":")[2].split("/") if u]
                for phase in plan.seed(args.scale, tag, only):
                    run_web(ctx, phase, path)
            elif name == "capacity":
                capacity_search(ctx, args, path)
            elif name == "smoke":
                for phase in plan.smoke(args.smoke_seconds, args.smoke_users):
                    run_web(ctx, dataclasses.replace(phase, name=f"smoke{tag}"), path)
            else:
                raise SystemExit(f"unknown plan {name!r}")
        if name == "worker":
            worker.run(ctx, args)


def profiles(text: str) -> dict[str, float]:
    """`full`, or weights like `full:0.6,link:0.3,stall:0.1`."""
    weights = {}
    for item in text.split(","):
        name, _, weight = item.partition(":")
        if name not in {"full", "link", "stall"}:
            raise SystemExit(f"unknown client profile {name!r} (full, link, stall)")
        weights[name] = float(weight or 1)
    return weights
