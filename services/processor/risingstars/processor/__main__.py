"""`python -m risingstars.processor [serve]`: the SQS worker with its health/metrics port."""

from __future__ import annotations

import argparse
import sys

from risingstars.kit.settings import SettingsError

SERVICE = "processor"


def _serve() -> None:
    from risingstars.kit import logs, tracing
    from risingstars.kit.serve import serve
    from risingstars.processor.app import create_app
    from risingstars.processor.settings import load

    config = load()
    logs.setup(SERVICE, config.log_level)
    tracing.setup(SERVICE)
    serve(create_app(config), config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risingstars.processor")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the worker and its health/metrics port (the default)")
    parser.parse_args(argv)
    try:
        _serve()
    except SettingsError as exc:
        print(f"{SERVICE}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
