"""charts/rising-stars/README.md's values table is what charts/chart_docs.py makes of
values.yaml and values.schema.json (make chart-docs)."""

from __future__ import annotations

import subprocess
import sys

from chart.rendering import CHART, ROOT


def test_the_readme_values_table_is_current():
    done = subprocess.run(
        [sys.executable, str(ROOT / "charts" / "chart_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_every_value_has_a_row():
    import yaml

    readme = (CHART / "README.md").read_text()
    sys.path.insert(0, str(ROOT / "charts"))
    try:
        import chart_docs
    finally:
        sys.path.pop(0)
    for path, _ in chart_docs.leaves(yaml.safe_load((CHART / "values.yaml").read_text())):
        assert f"| `{path}` |" in readme, path
