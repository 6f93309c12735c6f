"""The fault suite is opt-in: `make faults` selects it with `-m`; a plain run (make test) keeps
only the quick scenario (marker faults_quick)."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items) -> None:
    if "faults" in (config.getoption("markexpr") or ""):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("faults") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
