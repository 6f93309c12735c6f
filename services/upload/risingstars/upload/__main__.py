"""`python -m risingstars.upload [serve|migrate]` (default: serve)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from risingstars.kit import db, logs
from risingstars.kit.serve import serve
from risingstars.upload.settings import load

MIGRATIONS = Path(__file__).parent / "migrations"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command not in {"serve", "migrate"}:
        print(f"usage: python -m risingstars.upload [serve|migrate] (not {command!r})")
        return 2
    settings = load()
    logs.setup("upload", settings.log_level)
    if command == "migrate":
        asyncio.run(db.migrate(settings.database_url, "upload", MIGRATIONS))
        return 0
    from risingstars.upload.app import create_app

    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
