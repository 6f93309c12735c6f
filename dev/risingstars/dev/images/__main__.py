"""make images: build every service image (or those named) on the local base, audit each, and
print the size table.

python -m risingstars.dev.images [auth] [upload] [processor] [operator] [web] [--base REF]

--base takes a public base pinned by digest (a real build); without it the local Debian base is
made once and reused.
"""

from __future__ import annotations

import argparse
import sys
import time

from risingstars.dev.images import SERVICES, ImageError, audit, base, build, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images", description=__doc__)
    parser.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default: all)")
    parser.add_argument("--base", help="the base image (default: the local Debian base)")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown services {sorted(unknown)}")
    start = time.monotonic()
    try:
        base_ref = args.base or base.ensure()
        refs = [build.build(s, base_ref) for s in args.services or SERVICES]
        problems = {ref: audit.audit(ref) for ref in refs}
        print(report.table(refs, base_ref))
    except ImageError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    print(f"images: {len(refs)} built in {time.monotonic() - start:.0f}s")
    bad = {ref: p for ref, p in problems.items() if p}
    for ref, p in bad.items():
        print(f"images: {ref}: " + "; ".join(p), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
