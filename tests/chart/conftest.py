from __future__ import annotations

import pytest
from chart.rendering import VALUES_SETS, render


@pytest.fixture(scope="session")
def renders() -> dict[str, list[dict]]:
    """Every values set the chart is checked with, rendered once per session."""
    return {name: render(files) for name, files in VALUES_SETS.items()}
