"""The selector scanner the rule and panel checks rely on: if it missed a series, a misspelt
metric in a rule or panel would pass unseen."""

from __future__ import annotations

import json
from pathlib import Path

import promql

from risingstars.dev import observe

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/rising-stars/files/dashboard.json"


def test_selectors_name_metrics_and_their_matchers_not_functions_or_groupings() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket"
        '{namespace="ns", route!~"/a{b},c",}[5m]))) > 1 and on () up offset 5m'
        " or sum without (pod) (slo:x:ratio_rate1h) / count(processor_jobs_in_flight)"
    )
    found = [(s.metric, s.labels) for s in promql.selectors(expr)]
    assert found == [
        ("http_request_duration_seconds_bucket", ("namespace", "route")),
        ("up", ()),
        ("slo:x:ratio_rate1h", ()),
        ("processor_jobs_in_flight", ()),
    ]
    assert promql.grouping_labels(expr) == {"service", "le", "pod"}
    first = promql.selectors(expr)[0]
    assert expr[first.start : first.end] == first.metric


def test_every_panel_and_rule_selects_some_series() -> None:
    """Each query the checks read yields selectors (a query the scanner could not read would
    otherwise be checked for nothing)."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    exprs += [r["expr"] for g in observe.rule_groups() for r in g["rules"]]
    assert all(promql.selectors(e) for e in exprs)
