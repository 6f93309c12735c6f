"""`python -m bench [entry ...]`: run the named benchmark entries, or all of them."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def entries() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = [a for a in argv if a] or entries()
    unknown = [n for n in names if n not in entries()]
    if unknown:
        print(f"unknown bench entries: {', '.join(unknown)}; known: {', '.join(entries())}")
        return 2
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        runner = getattr(module, "run", None) or module.main
        start = time.monotonic()
        print(f"# bench {name}", flush=True)
        try:
            runner()
        except Exception as exc:  # one broken entry must not hide the others' figures
            failed.append(name)
            print(f"# bench {name} FAILED: {exc!r}", flush=True)
        print(f"# bench {name} took {time.monotonic() - start:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
