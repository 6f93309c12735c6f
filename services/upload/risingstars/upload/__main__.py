"""`python -m risingstars.upload [serve | worker | migrate]` (default: serve)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from risingstars.kit import db, logs, tracing
from risingstars.kit.settings import SettingsError
from risingstars.upload import settings

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = "upload"


def _serve() -> None:
    from risingstars.kit.serve import serve
    from risingstars.upload.app import create_app

    config = settings.load()
    logs.setup(SERVICE, config.log_level)
    tracing.setup(SERVICE)
    serve(create_app(config), config)


def _worker() -> None:
    from risingstars.kit.serve import serve
    from risingstars.upload.worker import SERVICE as WORKER
    from risingstars.upload.worker import create_worker

    config = settings.load()
    logs.setup(WORKER, config.log_level)
    tracing.setup(WORKER)
    serve(create_worker(config), config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risingstars.upload")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the API (the default)")
    commands.add_parser(
        "worker", help="run the outbox relay, the events consumer and the upload cleanup"
    )
    commands.add_parser("migrate", help="apply the database migrations (needs DATABASE_URL)")
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            db.run_migrations(SERVICE, MIGRATIONS)
        elif args.command == "worker":
            _worker()
        else:
            _serve()
    except SettingsError as exc:
        print(f"upload: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
