"""`python -m loadtest run [options]` (make loadtest) and `python -m loadtest report RUN`
(make loadtest-report)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from loadtest import media


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a plan against HOST (default: a make run it starts)")
    r.add_argument("--host", help="base URL (e.g. https://ingress); default: start make run")
    r.add_argument(
        "--plan",
        default="seed,worker",
        help="comma-separated: seed (or seed:300, seed:100/200: those phases only), capacity, "
        "worker, smoke (default seed,worker)",
    )
    r.add_argument(
        "--scale", type=float, default=0.2, help="multiplies every duration (1 = as written)"
    )
    r.add_argument("--paths", default="stream", help="stream, direct or stream,direct")
    r.add_argument(
        "--profiles", default="full", help="client profiles and weights: full | link | stall, "
        "e.g. full:0.8,link:0.15,stall:0.05",
    )  # fmt: skip
    r.add_argument("--rate", type=float, default=130_000, help="link profile: bytes/s per user")
    r.add_argument("--stall-head", type=int, default=64 * 1024, help="stall profile: bytes first")
    r.add_argument("--stall-seconds", type=float, default=10, help="stall profile: pause")
    r.add_argument("--think", type=float, default=0, help="seconds between a user's uploads")
    r.add_argument("--timeout", type=float, default=900, help="one request's socket timeout")
    r.add_argument(
        "--stop-timeout",
        type=float,
        help="at a phase's end, wait this long for uploads in flight (default --timeout); "
        "those still running then are cut off and not counted",
    )
    r.add_argument("--refresh-margin", type=float, default=60, help="refresh tokens this early")
    r.add_argument("--sizes", type=_floats, default=[10, 12.5, 15], help="upload sizes, MB")
    r.add_argument("--picture", default="2560x1440", help="upload clips' picture size")
    r.add_argument("--cache", default=str(media.CACHE), help="where generated media are kept")
    r.add_argument("--accounts", help="an earlier run's accounts.json to reuse (no signups)")
    r.add_argument(
        "--users-per-account",
        type=int,
        default=1,
        help="users sharing one account (fewer signups; keep ≤ UPLOAD_MAX_PER_USER)",
    )
    r.add_argument("--start-users", type=int, default=100, help="capacity: first X")
    r.add_argument("--step-users", type=int, default=100, help="capacity: X step")
    r.add_argument("--max-users", type=int, default=600, help="capacity: last X tried")
    r.add_argument("--slo-p95", type=float, default=1.0, help="capacity SLO: p95 seconds")
    r.add_argument("--slo-errors", type=float, default=5.0, help="capacity SLO: errors %%")
    r.add_argument("--smoke-users", type=int, default=3)
    r.add_argument("--smoke-seconds", type=float, default=20)
    r.add_argument("--worker-sizes", type=_ints, default=[50, 100], help="worker inputs, MB")
    r.add_argument("--worker-concurrency", type=_ints, default=[1, 2, 4])
    r.add_argument("--worker-jobs", type=int, default=1, help="jobs per unit of concurrency")
    r.add_argument("--worker-timeout", type=float, default=600)
    r.add_argument(
        "--processor",
        dest="pause_processor",
        choices=["pause", "run"],
        default="pause",
        help="locally, pause make run's processor during web phases (default) or let it run",
    )
    r.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the make run it starts"
    )
    r.add_argument("--out", help="run directory (default .dev/loadtest/runs/<time>)")
    r.add_argument("--note", default="", help="a line for the report (why this run)")
    r.add_argument("--no-report", action="store_true")
    g = sub.add_parser("report", help="turn a run directory into a report")
    g.add_argument("run", type=Path, nargs="+", help="one or more run directories")
    g.add_argument("--out", type=Path, help="default docs/capacity/<run name>")
    g.add_argument("--note", default="", help="a paragraph at the top of the report")
    g.add_argument("--before", type=Path, help="an earlier report's summary.json, to compare")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the make run stack started for the run is stopped with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "run":
        from loadtest import run

        args.pause_processor = args.pause_processor == "pause"
        run.main(args)
    else:
        from loadtest import report

        target = args.out or report.DOCS / args.run[0].resolve().name
        print(report.write(args.run, target, args.note, args.before))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
