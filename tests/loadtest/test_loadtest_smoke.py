"""`make loadtest` in small: the suite starts its own make run stack, signs its users up, and runs
a few seconds of headless Locust on both upload paths with every client profile, access tokens
living 4 s (so they are refreshed during the run); then the report is generated from the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the loadtest package lives at the root, beside bench/

from loadtest import analysis  # noqa: E402


def test_a_short_run_uploads_on_both_paths_refreshes_tokens_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "loadtest", "run", "--plan", "smoke", "--paths", "stream,direct",
        "--smoke-users", "3", "--smoke-seconds", "6", "--sizes", "0",
        "--profiles", "full:1,link:1,stall:1", "--rate", "2000000", "--stall-seconds", "1",
        "--env", "ACCESS_TOKEN_TTL_SECONDS=4", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    for name in ("smoke", "smoke-direct"):
        phase = analysis.load(out / name)
        s = analysis.summary(phase)
        assert s["requests"] >= 3, (name, s)
        assert s["success_pct"] == 100.0, (name, s["errors"])
        assert s["unauthorized"] == 0
        assert s["refreshes"] >= 1, "a 4 s token was never refreshed"
        assert {r["profile"] for r in phase.uploads()} == {"full", "link", "stall"}
        assert (out / name / "processes.csv").read_text().count("upload") > 0

        # `uptime` at both ends of every phase: how much other work shared the machine.
        loadavg = json.loads((out / name / "loadavg.json").read_text())
        assert len(loadavg["start"]) == len(loadavg["end"]) == 3

    report = (out / "report" / "README.md").read_text()
    assert "| **ours: smoke-direct** [ACCESS_TOKEN_TTL_SECONDS=4] | 3 |" in report  # its --env
    assert (out / "report" / "smoke.png").stat().st_size > 10_000
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert [p["phase"] for p in summary["web"]] == ["smoke", "smoke-direct"]
    assert all(" → " in p["load_average"] for p in summary["web"])
    assert "at the end)" in report  # the run's load average at its end, beside the start's

    # A later report beside this one: the same phases, before / now.
    again = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", str(out), "--out", str(tmp_path / "again"),
         "--before", str(out / "report" / "summary.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    compared = (tmp_path / "again" / "README.md").read_text()
    assert "## Before and after" in compared
    requests = {p["phase"]: p["requests"] for p in summary["web"]}
    assert f"| smoke-direct | {requests['smoke-direct']} / {requests['smoke-direct']} |" in compared
