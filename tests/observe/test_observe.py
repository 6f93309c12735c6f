"""`make observe` for real: the `make run` system with Prometheus scraping every service every
second and the chart's rules loaded as helm renders them. After a short load through the one
local URL, every dashboard panel's query and every recording rule returns data without error,
every series and label the rules and panels name is one the services export; then, with the
processor stopped, jobs pile up and the queue alerts fire (no CloudWatch exporter involved)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import promql
import pytest
from prometheus_client.parser import text_string_to_metric_families
from videos import make_clip

from risingstars.dev import observe, stack
from risingstars.dev.infra import AWS_DUMMY_ENV, wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "rising-stars" / "files" / "dashboard.json"
VALUES = Path(__file__).with_name("values.yaml")


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)

    def api(self, path: str, **params) -> dict | list:
        answer = self.client.get(f"/api/v1/{path}", params=params).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> dict:
        """Prometheus's answer to an instant query (status, data or error), never raising."""
        return self.client.get("/api/v1/query", params={"query": expr}).json()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("observe") / "clip.mp4", seconds=21, size="1920x1080")


@pytest.fixture(scope="module")
def observed() -> Iterator[tuple[stack.System, Prometheus]]:
    env = {
        "OBSERVE": "1",
        "OBSERVE_INTERVAL": "1s",
        "OBSERVE_VALUES": str(VALUES),
        "QUEUE_REFRESH_SECONDS": "1",
    }
    with stack.running(env) as system:
        port = urlsplit(system.url).port
        prometheus = Prometheus(f"http://127.0.0.1:{port + 7}")
        services = {
            "rising-stars-auth",
            "rising-stars-upload",
            "rising-stars-upload-worker",
            "rising-stars-processor",
            "rising-stars-web",
        }

        def scraped() -> set[str]:
            targets = prometheus.api("targets")["activeTargets"]
            return {t["labels"]["service"] for t in targets if t["health"] == "up"}

        # A slow start on a busy machine is no failure; a service missing for good is.
        wait_until(lambda: scraped() == services, 120, "every service scraped")
        yield system, prometheus


def _account(c: httpx.Client, name: str) -> dict[str, str]:
    email = f"{name.lower()}.{uuid.uuid4().hex[:8]}@example.com"
    password = "a-long-passphrase"
    r = c.post(
        "/api/auth/signup",
        json={
            "first_name": name,
            "last_name": "Observer",
            "email": email,
            "password1": password,
            "password2": password,
            "city": "Bogotá",
            "country": "Colombia",
        },
    )
    assert r.status_code == 201, r.text
    r = c.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _upload(c: httpx.Client, auth: dict[str, str], clip: Path, title: str) -> str:
    with clip.open("rb") as f:
        r = c.post(
            "/api/videos/upload",
            headers=auth,
            data={"title": title},
            files={"video_file": ("clip.mp4", f, "video/mp4")},
        )
    assert r.status_code == 201, r.text
    return r.json()["video_id"]


def short_load(url: str, clip: Path) -> None:
    """Sign-ups, logins, a streamed upload processed to the end, a rejected one, reads, votes."""
    with httpx.Client(base_url=url, timeout=60) as c:
        player, voter = _account(c, "Ana"), _account(c, "Beto")
        video_id = _upload(c, player, clip, "Crossover")
        r = c.post(
            "/api/videos/upload",
            headers=player,
            data={"title": "Not a video"},
            files={"video_file": ("clip.mp4", b"\0" * 4096, "video/mp4")},
        )
        assert 400 <= r.status_code < 500, r.text

        def processed() -> bool:
            return c.get(f"/api/videos/{video_id}", headers=player).json()["status"] == "processed"

        wait_until(processed, 240, "the video to be processed")
        assert c.post(f"/api/public/videos/{video_id}/vote", headers=voter).status_code == 200
        assert c.post(f"/api/public/videos/{video_id}/vote", headers=voter).status_code == 400
        for _ in range(5):
            assert c.get("/api/videos", headers=player).status_code == 200
            assert c.get("/api/public/rankings", params={"city": "bogota"}).status_code == 200


def panel_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        (f"{p['title']} [{t['refId']}]", t["expr"].replace("__NAMESPACE__", observe.NAMESPACE))
        for p in panels
        for t in p["targets"]
    ]


def rule_exprs() -> list[tuple[str, str]]:
    return [
        (rule.get("record") or rule["alert"], rule["expr"])
        for group in observe.rule_groups((VALUES,))
        for rule in group["rules"]
    ]


# Every service of make run with a /metrics, by its port's offset from the gateway's.
METRICS_PORTS = {"auth": 1, "upload": 2, "processor": 3, "upload-worker": 6}


def exported(system: stack.System) -> dict[str, set[str]]:
    """Sample names -> label names, as the services' /metrics expose them (empty-valued labels
    too, which Prometheus drops from what it stores)."""
    base = urlsplit(system.url).port
    found: dict[str, set[str]] = {}
    for offset in METRICS_PORTS.values():
        text = httpx.get(f"http://127.0.0.1:{base + offset}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


def problems(
    prometheus: Prometheus, queries: list[tuple[str, str]], records: set[str], system: stack.System
) -> list:
    """What is wrong with each query against this Prometheus: an error, no data, or a series or
    label the services do not export."""
    services = exported(system)
    stored = set(prometheus.api("label/__name__/values"))
    found = []
    for what, expr in queries:
        answer = prometheus.query(expr)
        if answer["status"] != "success":
            found.append((what, "error", answer.get("error")))
        elif not answer["data"]["result"]:
            found.append((what, "no data", expr))
        known_labels = {"le"}
        for selector in promql.selectors(expr):
            if selector.metric in records:
                continue
            if selector.metric not in services and selector.metric not in stored:
                found.append((what, "not exported", selector.metric))
                continue
            # What the services expose, and the target's labels Prometheus (in a cluster, the
            # ServiceMonitor) adds: namespace, service, pod…
            labels = services.get(selector.metric, set()) | {
                label
                for series in prometheus.api("series", **{"match[]": selector.metric})
                for label in series
            }
            known_labels |= labels
            if missing := set(selector.labels) - labels:
                found.append((what, "labels not exported", selector.metric, sorted(missing)))
        if missing := promql.grouping_labels(expr) - known_labels - records:
            found.append((what, "grouping by labels not exported", sorted(missing)))
    return found


def test_every_panel_and_recording_rule_has_data_after_a_short_load(observed, clip) -> None:
    system, prometheus = observed
    short_load(system.url, clip)
    rules = rule_exprs()
    records = {name for name, expr in rules if name.startswith("slo:")}
    queries = panel_queries() + [(name, name) for name in sorted(records)]

    def settled() -> bool:
        # The last scrape after the load, and a rule evaluation after that.
        return not problems(prometheus, queries, records, system)

    # Waiting only gives the last scrape and evaluation their second; the assertion names what
    # is still wrong after it.
    with contextlib.suppress(TimeoutError):
        wait_until(settled, 30, "every panel and recording rule to have data")
    found = problems(prometheus, queries, records, system)
    assert found == [], "\n".join(map(str, found))
    # Alerts read raw series too: each one they name is exported with the labels they match on
    # (their results may rightly be empty, a healthy system firing nothing).
    unexported = [
        p
        for p in problems(prometheus, rules, records, system)
        if p[1] != "no data" and p[0] != "RisingStarsQueueSeriesMissing"
    ]
    assert unexported == []
    health = [
        (rule["name"], rule.get("lastError"))
        for group in prometheus.api("rules")["groups"]
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert health == []

    # The check can fail: a panel with a misspelt metric, or a label no series has.
    broken = [
        ("typo", 'sum(rate(http_requests_totl{namespace="rising-stars"}[5m]))'),
        ("label", 'sum(rate(http_requests_total{namespace="rising-stars", path="x"}[5m]))'),
        ("grouping", 'sum by (video_id) (rate(http_requests_total{namespace="rising-stars"}[5m]))'),
    ]
    reported = {p[0] for p in problems(prometheus, broken, records, system)}
    assert reported == {"typo", "label", "grouping"}


def _processor_pid(system: stack.System) -> int:
    listed = subprocess.run(
        ["pgrep", "-a", "-s", str(os.getpgid(system.proc.pid))], capture_output=True, text=True
    ).stdout.splitlines()
    pids = [
        int(line.split(" ", 1)[0]) for line in listed if line.endswith("-m risingstars.processor")
    ]
    assert len(pids) == 1, listed
    return pids[0]


def test_queue_alerts_fire_when_the_processor_stops(observed, clip) -> None:
    system, prometheus = observed
    processor = _processor_pid(system)
    os.kill(processor, signal.SIGTERM)
    wait_until(
        lambda: not Path(f"/proc/{processor}").exists() or _zombie(processor),
        60,
        "the processor to stop",
    )

    def firing() -> set[str]:
        return {
            a["labels"]["alertname"]
            for a in prometheus.api("alerts")["alerts"]
            if a["state"] == "firing"
        }

    assert "RisingStarsOldestJobTooOld" not in firing()
    with httpx.Client(base_url=system.url, timeout=60) as c:
        player = _account(c, "Carla")
        for n in range(2):
            _upload(c, player, clip, f"Waiting {n}")
    wait_until(lambda: "RisingStarsOldestJobTooOld" in firing(), 60, "the oldest-job alert")

    # A job the queue gave up on, as SQS moves it after its last receive.
    port = urlsplit(system.url).port
    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port + 4}", **_aws())
    dlq = next(u for u in sqs.list_queues()["QueueUrls"] if u.endswith("-jobs-dlq"))
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"not": "a job of ours"}))
    wait_until(
        lambda: "RisingStarsDeadLetterQueueNotEmpty" in firing(), 60, "the dead-letter alert"
    )


def _zombie(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def _aws() -> dict[str, str]:
    return {
        "region_name": AWS_DUMMY_ENV.get("AWS_DEFAULT_REGION", "us-east-1"),
        "aws_access_key_id": AWS_DUMMY_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
    }
