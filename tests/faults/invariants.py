"""What must hold after a fault scenario, read from PostgreSQL, S3 and the services' logs:

- every upload answered 201 ends processed (or failed/rejected with a reason), with exactly one
  output and one event applied; nothing waits in the outbox;
- no stored object without its row, no row without its object;
- no 5xx outside the fault windows, and inside them only 503 + Retry-After (while the one
  instance of a service restarts, the gateway's: counted apart, and never a 502);
- no request hangs past its deadline (a client timeout is a failure);
- every video's vote count equals its vote rows, and every vote answered 200 has its row."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
from pathlib import Path

import asyncpg
import boto3
from faults.load import Load
from faults.stack import Stack

TERMINAL = {"processed", "failed", "rejected"}
# After a dependency comes back, clients may need a moment to notice (reconnect, next poll).
GRACE_SECONDS = 3.0


@dataclasses.dataclass
class Window:
    label: str
    start: float
    end: float | None = None
    # A restarted single instance: the gateway cannot reach it and answers 503 + Retry-After.
    restart: bool = False

    def covers(self, start: float, end: float) -> bool:
        stop = (self.end if self.end is not None else time.monotonic()) + GRACE_SECONDS
        return start <= stop and end >= self.start


@dataclasses.dataclass
class Outcome:
    scenario: str
    load: str
    faults: str
    uploaded: int = 0
    processed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    errors_outside: int = 0
    errors_inside: int = 0  # 503 + Retry-After inside the windows (expected)
    gateway_503_in_restarts: int = 0  # of errors_inside
    max_latency_s: float = 0.0
    requests: int = 0
    votes: int = 0
    command: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)

    def row(self) -> dict:
        return dataclasses.asdict(self)


def query(stack: Stack, sql: str, *args):
    async def run():
        conn = await asyncpg.connect(stack.pg.url("upload"), timeout=10)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def settled(stack: Stack, ids: list[str]) -> bool:
    rows = query(stack, "SELECT status FROM videos WHERE id = ANY($1::uuid[])", ids)
    outbox = query(stack, "SELECT count(*) AS n FROM outbox")[0]["n"]
    return len(rows) == len(ids) and all(r["status"] in TERMINAL for r in rows) and outbox == 0


def wait_settled(stack: Stack, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if settled(stack, ids):
                return
        except (OSError, asyncpg.PostgresError):
            pass
        time.sleep(1)


def _objects(stack: Stack) -> tuple[list[str], int]:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.aws.bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    pending = s3.list_multipart_uploads(Bucket=stack.aws.bucket).get("Uploads", [])
    return keys, len(pending)


def _applied_events(state: Path) -> collections.Counter:
    applied: collections.Counter = collections.Counter()
    for log in state.glob("upload*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"event"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            # Outcomes only: each attempt's `started` report moves the video to processing.
            if (
                entry.get("message") == "event"
                and entry.get("result") == "applied"
                and entry.get("type") != "started"
            ):
                applied[entry.get("video_id")] += 1
    return applied


def check(
    stack: Stack,
    load: Load,
    windows: list[Window],
    outcome: Outcome,
    *,
    settle_seconds: float = 180,
) -> Outcome:
    ids = list(load.accepted)
    wait_settled(stack, ids, settle_seconds)
    problems = outcome.problems
    outcome.uploaded = len(ids)

    rows = {
        str(r["id"]): r
        for r in query(
            stack,
            "SELECT id, status, failure_reason, original_key, processed_key, thumbnail_key,"
            " votes FROM videos",
        )
    }
    keys, multipart = _objects(stack)
    applied = _applied_events(stack.state)

    for video_id in ids:
        row = rows.get(video_id)
        if row is None:
            outcome.lost += 1
            problems.append(f"201 upload {video_id} has no row")
            continue
        status = row["status"]
        if status not in TERMINAL:
            outcome.lost += 1
            problems.append(f"{video_id} still {status}")
            continue
        if status == "processed":
            outcome.processed += 1
        else:
            outcome.failed += 1
            if not row["failure_reason"]:
                problems.append(f"{video_id} {status} without a reason")
        if applied[video_id] != 1:
            if applied[video_id] > 1:
                outcome.duplicated += 1
            problems.append(f"{video_id}: {applied[video_id]} events applied, want 1")

    by_video: dict[str, list[str]] = collections.defaultdict(list)
    for key in keys:
        by_video[Path(key).stem].append(key)
    for video_id, row in rows.items():
        have = set(by_video.pop(video_id, []))
        want = {row["original_key"]}
        if row["status"] == "processed":
            want |= {row["processed_key"], row["thumbnail_key"]}
        if have != want:
            status = row["status"]
            problems.append(f"{video_id} ({status}): objects {sorted(have)}, want {sorted(want)}")
    for orphans in by_video.values():
        problems.append(f"objects without a row: {orphans}")
    if multipart:
        problems.append(f"{multipart} multipart uploads left open in S3")

    vote_rows = query(
        stack,
        "SELECT v.id, v.votes, count(x.user_id) AS n FROM videos v"
        " LEFT JOIN votes x ON x.video_id = v.id GROUP BY v.id, v.votes",
    )
    for r in vote_rows:
        if r["votes"] != r["n"]:
            problems.append(f"{r['id']}: votes={r['votes']} but {r['n']} vote rows")
    stored = {(str(r["video_id"]), r["user_id"]) for r in query(stack, "SELECT * FROM votes")}
    for vote in load.votes - stored:
        problems.append(f"vote {vote} answered 200 but has no row")
    outcome.votes = len(stored)

    outcome.requests = len(load.calls)
    outcome.max_latency_s = round(max((c.seconds for c in load.calls), default=0.0), 2)
    for call in load.calls:
        inside = [w for w in windows if w.covers(call.start, call.end)]
        if call.error == "ReadTimeout" or call.error == "WriteTimeout":
            problems.append(f"{call.kind} hung {call.seconds:.1f} s past its deadline")
            continue
        failed = call.status is None or call.status >= 500
        if not failed:
            continue
        if not inside:
            outcome.errors_outside += 1
            problems.append(f"{call.kind} -> {call.status or call.error} outside any fault window")
        elif call.status == 503 and call.retry_after:
            outcome.errors_inside += 1
            outcome.gateway_503_in_restarts += any(w.restart for w in inside)
        else:
            outcome.errors_outside += 1
            problems.append(
                f"{call.kind} -> {call.status or call.error} without Retry-After in "
                f"{[w.label for w in inside]}"
            )
    return outcome


def save(outcome: Outcome, path: str | None) -> None:
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps(outcome.row(), ensure_ascii=False) + "\n")
