"""make chart-boot: boot the rendered chart for each overlay (default: all) and drive the flow.

python -m risingstars.dev.chartboot [boot|kind|eks ...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys

from risingstars.dev.chartboot import netns
from risingstars.dev.chartboot.clip import clip_bytes
from risingstars.dev.chartboot.cluster import BootFailure, booted
from risingstars.dev.chartboot.manifests import WiringError
from risingstars.dev.chartboot.overlays import ALL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chart-boot", description=__doc__)
    parser.add_argument("overlays", nargs="*", default=list(ALL))
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    reason = netns.available()
    if reason:
        print(f"chart-boot: cannot run: {reason}", file=sys.stderr)
        return 2
    clip = clip_bytes()
    failed = []
    for name in args.overlays or list(ALL):
        try:
            with booted(ALL[name](), keep=args.keep) as cluster:
                report = cluster.boot(clip)
            print(f"chart-boot [{name}] PASS " + json.dumps(report.get("flow", {})), flush=True)
        except (BootFailure, WiringError) as exc:
            print(f"chart-boot [{name}] FAIL {exc}", flush=True)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
