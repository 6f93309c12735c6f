"""`make bench ENTRY=web`: Lighthouse (mobile profile: a mid-range phone on a throttled 4G link,
simulated) on the showcase and a video's page of a seeded `make run` system, and the bytes a
first visit of the showcase moves before any video byte.

Lighthouse's scores are already relative (each metric against its reference distribution);
the first-visit bytes are printed raw beside their ratio to the issue's budget (150 KB)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from risingstars.dev import stack, webseed
from risingstars.dev.browser import CHROMIUM

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE = ROOT / "bench" / "lighthouse" / "node_modules" / "lighthouse" / "cli" / "index.js"
CATEGORIES = ("performance", "accessibility", "best-practices")
BUDGET_BYTES = 150 * 1024


def lighthouse(url: str, out: Path) -> dict:
    subprocess.run(
        [
            "node",
            str(LIGHTHOUSE),
            url,
            "--quiet",
            "--output=json",
            f"--output-path={out}",
            f"--only-categories={','.join(CATEGORIES)}",
            "--chrome-flags=--headless=new --no-sandbox",
        ],
        check=True,
        env=dict(os.environ, CHROME_PATH=CHROMIUM),
        timeout=300,
    )
    return json.loads(out.read_text())


def bytes_by_kind(report: dict) -> dict[str, int]:
    """Transferred bytes per resource type (Document, Script, Stylesheet, Image, Media...)."""
    totals: dict[str, int] = {}
    for item in report["audits"]["network-requests"]["details"]["items"]:
        kind = item.get("resourceType") or "Other"
        totals[kind] = totals.get(kind, 0) + int(item.get("transferSize") or 0)
    return totals


def emit(metric: str, value: float, unit: str = "") -> None:
    print(f"BENCH web.{metric} {value:g}{' ' + unit if unit else ''}", flush=True)


def run() -> None:
    with (
        tempfile.TemporaryDirectory() as work,
        stack.running(env={"RANKINGS_CACHE_SECONDS": "1"}) as system,
    ):
        _, ids = webseed.showcase(system.url, Path(work))
        pages = {"": f"{system.url}/", "video_": f"{system.url}/#/v/{ids[0]}"}
        for prefix, url in pages.items():
            report = lighthouse(url, Path(work) / f"{prefix or 'showcase_'}report.json")
            for category in CATEGORIES:
                score = report["categories"][category]["score"]
                emit(f"{prefix}lighthouse_{category.replace('-', '_')}", round(score * 100))
            kinds = bytes_by_kind(report)
            if not prefix:
                before_video = sum(v for k, v in kinds.items() if k != "Media")
                app = sum(kinds.get(k, 0) for k in ("Document", "Script", "Stylesheet", "Other"))
                emit("first_visit_bytes", before_video, "B")
                emit("first_visit_app_bytes", app, "B")
                emit("first_visit_image_bytes", kinds.get("Image", 0), "B")
                emit("first_visit_vs_budget", round(before_video / BUDGET_BYTES, 3), "x")
            lcp = report["audits"]["largest-contentful-paint"]["numericValue"]
            emit(f"{prefix}largest_contentful_paint_ms", round(lcp), "ms")
