"""`make observe` (`make run OBSERVE=1`): Prometheus, from the distribution's package, scraping
every local service with the chart's PrometheusRule loaded as helm renders it, so the alerts
and the dashboard's queries meet the series the services really export.

Each target gets the labels a ServiceMonitor gives it in the cluster (namespace, service, pod),
so the chart's rules and dashboard run here unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from risingstars.dev import charttools

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "rising-stars"
# What `helm install rising-stars … -n rising-stars` names things: the labels the rules select on.
RELEASE = NAMESPACE = "rising-stars"


def rule_groups(values_files: tuple[Path, ...] = (), settings: dict | None = None) -> list[dict]:
    """spec.groups of the chart's PrometheusRule as rendered (settings: --set-json, typed)."""
    args = [str(charttools.helm()), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["--show-only", "templates/prometheusrule.yaml"]
    args += ["--set", "metrics.prometheusRule.enabled=true"]
    for path in values_files:
        args += ["-f", str(path)]
    for key, value in (settings or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{done.stderr}")
    return yaml.safe_load(done.stdout)["spec"]["groups"]


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).exists():
        raise RuntimeError("prometheus is not installed (bash .ci/install installs it)")
    return found


def prepare(
    state: Path,
    port: int,
    targets: dict[str, int],
    interval: str = "5s",
    values_files: tuple[Path, ...] = (),
) -> list[str]:
    """Writes the rules and the configuration under `state`; returns Prometheus's command line.
    targets: process name (auth, upload-worker…) -> its local port."""
    state.mkdir(parents=True, exist_ok=True)
    rules = state / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups(values_files)}, sort_keys=False))
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": f"{RELEASE}-{name}",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{target_port}"],
                        "labels": {
                            "namespace": NAMESPACE,
                            "service": f"{RELEASE}-{name}",
                            "pod": f"{RELEASE}-{name}-local",
                        },
                    }
                ],
            }
            for name, target_port in sorted(targets.items())
        ],
    }
    (state / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return [
        prometheus_binary(),
        f"--config.file={state / 'prometheus.yml'}",
        f"--storage.tsdb.path={state / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
