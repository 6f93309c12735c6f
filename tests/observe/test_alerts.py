"""The chart's PrometheusRule, as helm renders it, checked and unit-tested by promtool: every alert
fires on a synthetic series that breaks its SLO or threshold and stays quiet on a healthy one
(tests/observe/alerts_test.yaml), and a typo in any alert's expression turns those tests red.
Whether the series the rules name exist in what the services export: tests/observe."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path

import promql
import pytest
import yaml

from risingstars.dev import observe

CASES = Path(__file__).with_name("alerts_test.yaml")


def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(found).exists(), "promtool is missing: bash .ci/install installs prometheus"
    return found


@functools.cache
def _groups() -> tuple:
    return tuple(observe.rule_groups())


def rule_groups() -> list[dict]:
    return copy.deepcopy(list(_groups()))


def alerts(groups: list[dict]) -> list[dict]:
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def write_rules(path: Path, groups: list[dict], annotations: bool = True) -> Path:
    if not annotations:
        # promtool compares annotations too; the cases pin labels, the wording lives in the chart.
        for rule in alerts(groups):
            rule.pop("annotations", None)
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def run_cases(tmp: Path, groups: list[dict], cases: dict) -> subprocess.CompletedProcess:
    rules = write_rules(tmp / "rules.yaml", groups, annotations=False)
    test_file = tmp / "alerts_test.yaml"
    test_file.write_text(yaml.safe_dump({**cases, "rule_files": [str(rules)]}, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=300
    )


def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", rule_groups())
    done = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = yaml.safe_load(CASES.read_text())
    firing, quiet = set(), set()
    for group in cases["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts(rule_groups())}
    assert names - firing == set(), "alerts without a case where they fire"
    # A missing-series alert is quiet whenever the series is there, which the others' cases show.
    assert names - quiet - {"RisingStarsQueueSeriesMissing"} == set(), "alerts never seen quiet"
    assert firing | quiet <= names, "cases for alerts the chart no longer has"


def test_promtool_unit_tests_pass_on_the_rendered_rules(tmp_path: Path) -> None:
    done = run_cases(tmp_path, rule_groups(), yaml.safe_load(CASES.read_text()))
    assert done.returncode == 0, done.stdout + done.stderr


def misspelt(expr: str) -> str:
    """expr with every metric (or recorded series) it selects renamed to one nobody exports."""
    for selector in reversed(promql.selectors(expr)):
        expr = expr[: selector.end] + "_typo" + expr[selector.end :]
    return expr


@pytest.mark.parametrize("name", [rule["alert"] for rule in alerts(list(_groups()))])
def test_a_broken_alert_turns_its_cases_red(tmp_path: Path, name: str) -> None:
    """The cases can fail: with the series in its expression misspelt, promtool reports a case
    of the alert (one where it should have fired or, for the missing-series alert, one where it
    should have kept quiet)."""
    groups = rule_groups()
    rule = next(r for r in alerts(groups) if r["alert"] == name)
    rule["expr"] = misspelt(rule["expr"])
    # Only this alert's cases (the others would pass or fail for reasons of their own): those
    # where it fires, and for an absent() alert those where it must not.
    absent = rule["expr"].lstrip().startswith("absent(")
    cases = yaml.safe_load(CASES.read_text())
    tests = []
    for group in cases["tests"]:
        mine = [
            c
            for c in group["alert_rule_test"]
            if c["alertname"] == name and (absent or c["exp_alerts"])
        ]
        if mine:
            tests.append({**group, "alert_rule_test": mine})
    done = run_cases(tmp_path, groups, {**cases, "tests": tests})
    assert done.returncode != 0, f"{name} still passes with: {rule['expr']}"
    assert f"alertname: {name}" in done.stderr


@pytest.mark.parametrize("slo", ["upload_availability", "api_latency", "time_to_playable"])
def test_a_broken_recording_rule_turns_its_alert_cases_red(tmp_path: Path, slo: str) -> None:
    """The SLO alerts read the recorded error ratios: misspell the series those record and the
    SLO's fast-burn case fails."""
    groups = rule_groups()
    recorded = [
        r for g in groups for r in g["rules"] if r.get("record", "").startswith(f"slo:{slo}:")
    ]
    assert recorded
    for rule in recorded:
        rule["expr"] = misspelt(rule["expr"])
    name = next(r["alert"] for r in alerts(groups) if r["labels"].get("slo") == slo)
    cases = yaml.safe_load(CASES.read_text())
    tests = [
        {**group, "alert_rule_test": mine}
        for group in cases["tests"]
        if (
            mine := [
                c for c in group["alert_rule_test"] if c["alertname"] == name and c["exp_alerts"]
            ]
        )
    ]
    done = run_cases(tmp_path, groups, {**cases, "tests": tests})
    assert done.returncode != 0 and f"alertname: {name}" in done.stderr, done.stdout + done.stderr
