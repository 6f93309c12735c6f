"""`python -m risingstars.web [serve]`: the built web app (WEB_ROOT) on PORT."""

from __future__ import annotations

import argparse
import sys

from risingstars.kit import logs
from risingstars.kit.settings import SettingsError
from risingstars.web import files, settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risingstars.web")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    parser.parse_args(argv)
    try:
        from risingstars.kit.serve import serve
        from risingstars.web.app import SERVICE, create_app

        config = settings.load()
        logs.setup(SERVICE, config.log_level)
        serve(create_app(config), config)
    except (SettingsError, files.MissingBuild) as exc:
        print(f"web: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
