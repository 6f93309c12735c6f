"""make chart-boot: boot the rendered chart for each overlay (default: all) and drive the flow.

python -m risingstars.dev.chartboot [boot] [kind] [eks] [--keep] [--images]

--images: every pod runs from its built image (make images) instead of this checkout.
"""

from __future__ import annotations

import argparse
import signal
import sys

from risingstars.dev.chartboot import cluster, netns
from risingstars.dev.chartboot.clip import clip_bytes
from risingstars.dev.chartboot.overlays import ALL, ON_REQUEST
from risingstars.dev.images import SERVICES, ImageError, reference, runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chart-boot", description=__doc__)
    parser.add_argument("overlays", nargs="*", help=f"any of {', '.join(ALL)} (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories (logs)")
    parser.add_argument(
        "--images", action="store_true", help="run each pod from its image (make images first)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.overlays) - set(ALL) - set(ON_REQUEST)
    if unknown:
        parser.error(f"unknown overlays {sorted(unknown)}")
    # SIGTERM (a CI timeout) ends like Ctrl-C: through the atexit teardown.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = netns.available()
    if reason:
        print(f"chart-boot: cannot run: {reason}", file=sys.stderr)
        return 2
    names = args.overlays or list(ALL)
    built = None
    if args.images:
        try:
            one = {s: runtime.load(reference(s)) for s in SERVICES}
        except ImageError as exc:
            print(f"chart-boot: {exc}", file=sys.stderr)
            return 2
        built = {n: one for n in names}
    choices = {**ALL, **ON_REQUEST}
    results = cluster.run([choices[n]() for n in names], clip_bytes(), keep=args.keep, images=built)
    for name, result in results.items():
        print(f"chart-boot [{name}] {'PASS' if result.passed else 'FAIL ' + result.error}")
    return 0 if all(r.passed for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
