"""`python -m risingstars.operator [serve | dry-run --queue-url URL ...]`: `serve` (the default)
runs the operator; `dry-run` prints what it would decide for a queue right now, without a
cluster."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence

from risingstars.kit.settings import SettingsError
from risingstars.operator import settings as operator_settings
from risingstars.operator.settings import Settings


def _serve(settings: Settings) -> None:
    from prometheus_client import start_http_server

    from risingstars.operator import app

    app.setup_logging(settings.log_level)
    start_http_server(settings.metrics_port)
    # kopf stops on SIGTERM/SIGINT (it handles the signals in the main thread).
    asyncio.run(app.operator(settings, health_port=settings.health_port))


def _dry_run(settings: Settings, args: argparse.Namespace) -> int:
    from risingstars.operator import spec
    from risingstars.operator.decision import decide
    from risingstars.operator.queue import QueueError, QueueReader

    raw = {
        "scaleTargetRef": {"name": "dry-run"},
        "queue": {
            "url": args.queue_url,
            "name": args.queue_name,
            "region": args.region,
            "endpointUrl": args.endpoint_url,
        },
        "targetBacklogPerReplica": args.target,
        "minReplicas": args.min,
        "maxReplicas": args.max,
        "activationBacklog": args.activation,
        "scaleDownStabilizationSeconds": args.window,
        "cooldownSeconds": args.cooldown,
        "countInFlight": not args.no_count_in_flight,
        "countDelayed": args.count_delayed,
    }
    try:
        scaler = spec.parse(raw)
    except spec.SpecError as exc:
        print(f"invalid options: {exc}", file=sys.stderr)
        return 2

    async def read() -> object:
        reader = QueueReader(
            default_region=settings.aws_region, default_endpoint_url=settings.aws_endpoint_url
        )
        try:
            return await reader.backlog(scaler.queue)
        finally:
            await reader.close()

    try:
        backlog = asyncio.run(read())
    except QueueError as exc:
        print(f"cannot read the queue ({exc.reason}): {exc}", file=sys.stderr)
        return 1
    total = backlog.total(
        count_in_flight=scaler.count_in_flight, count_delayed=scaler.count_delayed
    )
    policy = scaler.policy
    # A fresh operator: the window holds the current size, the cooldown starts now.
    decision = decide(policy, total, args.current, time.monotonic())
    if args.json:
        print(
            json.dumps(
                {
                    "queue": scaler.queue.describe(),
                    "backlog": {
                        "visible": backlog.visible,
                        "inFlight": backlog.in_flight,
                        "delayed": backlog.delayed,
                        "counted": total,
                    },
                    "currentReplicas": args.current,
                    "desiredReplicas": decision.desired,
                    "recommendation": decision.recommendation,
                    "reason": decision.reason,
                    "message": decision.message,
                }
            )
        )
        return 0
    print(f"queue           {scaler.queue.describe()}")
    print(
        f"backlog         visible {backlog.visible}, in flight {backlog.in_flight}, "
        f"delayed {backlog.delayed} -> counted {total}"
    )
    print(
        f"policy          target {policy.target_per_replica} per replica, replicas "
        f"{policy.min_replicas}..{policy.max_replicas}, activation "
        f"{policy.activation_backlog}, window {policy.stabilization_seconds:g} s, "
        f"cooldown {policy.cooldown_seconds:g} s"
    )
    print(f"current         {args.current} replicas")
    print(f"would scale to  {decision.desired} ({decision.reason}: {decision.message})")
    if decision.recommendation != decision.desired:
        settled = min(max(decision.recommendation, policy.min_replicas), policy.max_replicas)
        print(f"settles at      {settled} once the window and cooldown have passed at this backlog")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m risingstars.operator")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the operator (the default)")
    dry = sub.add_parser(
        "dry-run",
        help="print the scaling decision for a queue's current backlog",
        description="Reads the queue's attributes once (AWS_ENDPOINT_URL and AWS_REGION "
        "apply, as for the operator) and prints what the operator would do.",
    )
    where = dry.add_mutually_exclusive_group(required=True)
    where.add_argument("--queue-url")
    where.add_argument("--queue-name")
    dry.add_argument("--region")
    dry.add_argument("--endpoint-url")
    dry.add_argument("--target", type=int, default=5, help="backlog per replica (5)")
    dry.add_argument("--current", type=int, default=1, help="replicas now (1)")
    dry.add_argument("--min", type=int, default=0, help="minimum replicas (0)")
    dry.add_argument("--max", type=int, default=10, help="maximum replicas (10)")
    dry.add_argument("--activation", type=int, default=0, help="activation backlog (0)")
    dry.add_argument("--window", type=int, default=300, help="scale-down window, s (300)")
    dry.add_argument("--cooldown", type=int, default=300, help="cooldown before 0, s (300)")
    dry.add_argument("--count-delayed", action="store_true")
    dry.add_argument("--no-count-in-flight", action="store_true")
    dry.add_argument("--json", action="store_true", help="one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dry-run" and args.current < 0:
        print("--current cannot be negative", file=sys.stderr)
        return 2
    try:
        settings = operator_settings.load()
    except SettingsError as exc:
        print(f"operator: {exc}", file=sys.stderr)
        return 2
    if args.command == "dry-run":
        return _dry_run(settings, args)
    _serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
