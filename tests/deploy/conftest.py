from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from chart.rendering import ROOT
from chart.rendering import tool_bin as _tool_bin


@pytest.fixture(scope="session")
def tool_bin() -> Path:
    """helm and kubectl (charts/tools.sh)."""
    return _tool_bin()


@pytest.fixture(scope="session")
def tool_bin_with_checkov() -> Path:
    """charts/tools.sh with checkov (its own virtualenv), as make chart-check installs it."""
    done = subprocess.run(
        ["bash", str(ROOT / "charts" / "tools.sh")], check=True, capture_output=True, text=True
    )
    return Path(done.stdout.strip().splitlines()[-1])
