"""`python -m risingstars.processor [serve]`: the SQS worker with its health/metrics port."""

from __future__ import annotations

import sys

from risingstars.kit import logs
from risingstars.kit.serve import serve
from risingstars.kit.settings import SettingsError
from risingstars.processor.app import create_app
from risingstars.processor.settings import load


def main(argv: list[str]) -> int:
    if argv not in ([], ["serve"]):
        print("usage: python -m risingstars.processor [serve]", file=sys.stderr)
        return 2
    try:
        settings = load()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.setup("processor", settings.log_level)
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
