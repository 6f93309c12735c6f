"""Renders the Helm chart with the real helm binaries (installed on demand by charts/tools.sh,
the same script CI and charts/check.sh use), so these tests never skip for a missing tool."""
# Fixtures using this live in conftest.py.

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import yaml

from risingstars.dev import charttools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rising-stars"
NAMESPACE = "rising-stars"
RELEASE = "rising-stars"

# Every values file the chart is checked with: the three overlays and the ci/ variants.
VALUES_SETS: dict[str, tuple[Path, ...]] = {
    "base": (),
    "kind": (CHART / "values-kind.yaml",),
    "eks": (CHART / "values-eks.yaml",),
    **{
        f"ci-{p.name.removesuffix('-values.yaml')}": (p,)
        for p in sorted(CHART.glob("ci/*-values.yaml"))
    },
}


def helm_template(
    values_files: tuple[Path, ...] = (), settings: dict | None = None, helm: str = "helm3"
) -> subprocess.CompletedProcess:
    """`helm template` of the chart; settings are passed with --set-json (typed values)."""
    args = [
        str(charttools.bin_dir() / helm),
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
    ]
    args.append("--include-crds")
    for path in values_files:
        args += ["-f", str(path)]
    for key, value in (settings or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return subprocess.run(args, capture_output=True, text=True)


@functools.cache
def _render_cached(values_files: tuple[Path, ...], settings_json: str, helm: str) -> tuple:
    done = helm_template(values_files, json.loads(settings_json), helm)
    if done.returncode != 0:
        raise AssertionError(f"helm template failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(
    values_files: tuple[Path, ...] = (), settings: dict | None = None, helm: str = "helm3"
) -> list[dict]:
    """The rendered objects (cached per arguments: tests must not mutate them)."""
    return list(
        _render_cached(tuple(values_files), json.dumps(settings or {}, sort_keys=True), helm)
    )
