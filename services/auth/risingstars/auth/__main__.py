"""`python -m risingstars.auth [serve | migrate | genkey DIR [--if-empty]]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from risingstars.auth import keys, settings
from risingstars.kit import db, logs, tracing
from risingstars.kit.settings import SettingsError


def _serve() -> None:
    from risingstars.auth.app import SERVICE, create_app
    from risingstars.kit.serve import serve

    config = settings.load()
    logs.setup(SERVICE, config.log_level)
    tracing.setup(SERVICE)
    serve(create_app(config), config)


def _genkey(directory: Path, if_empty: bool) -> None:
    if if_empty and directory.is_dir() and keys.key_files(directory):
        print(f"auth: {directory} already holds a signing key", file=sys.stderr)
        return
    key = keys.generate(directory)
    print(f"auth: wrote {directory / key.name} (kid {key.kid})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risingstars.auth")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    commands.add_parser("migrate", help="apply the database migrations (needs DATABASE_URL)")
    genkey = commands.add_parser("genkey", help="write a new Ed25519 signing key into DIR")
    genkey.add_argument("directory", type=Path, metavar="DIR")
    genkey.add_argument(
        "--if-empty", action="store_true", help="do nothing when DIR already holds a key"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "genkey":
            _genkey(args.directory, args.if_empty)
        elif args.command == "migrate":
            from risingstars.auth.app import MIGRATIONS, SERVICE

            db.run_migrations(SERVICE, MIGRATIONS)
        else:
            _serve()
    except (SettingsError, keys.SigningKeyError) as exc:
        print(f"auth: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
