"""The Locust side of one load-test phase: simulated users uploading videos in a closed loop,
and the phase's load shape. `python -m loadtest run` writes the phase file and starts Locust
headless with it; by hand:
    LOADTEST_PHASE=phase.json locust -f loadtest/locustfile.py --headless --host URL

Every request is also logged to `requests.csv` in the phase's directory (one row per request,
with its status and the bytes sent) and the user count to `users.csv`, once a second: the report
is built from those, not from Locust's aggregated statistics.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, User, constant, events, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loadtest import accounts as accounts_file
from loadtest import wire

PHASE: dict[str, Any] = json.loads(Path(os.environ["LOADTEST_PHASE"]).read_text())
OUT = Path(PHASE["out"])
FILES = [(Path(p).name, Path(p).read_bytes()) for p in PHASE["files"]]
ACCOUNTS: list[dict[str, Any]] = json.loads(Path(PHASE["accounts"]).read_text())
# Each account serves up to `users_per_account` users at once (the first users get one each).
FREE = deque(i for _ in range(PHASE.get("users_per_account", 1)) for i in range(len(ACCOUNTS)))
STREAMED = "POST /api/videos/upload"
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DIRECT = "direct upload (create, PUT parts, complete)"
COMPLETE_RETRIES = 5  # a direct upload's completion answered 503 + Retry-After

_log = (OUT / "requests.csv").open("w", newline="")
_rows = csv.writer(_log)
_rows.writerow(["start", "end", "name", "kind", "status", "ms", "bytes", "profile", "error"])


@events.request.add_listener
def _on_request(name, response_time, exception, context, **_: Any) -> None:
    end = time.time()
    _rows.writerow(
        [
            f"{context.get('start', end - response_time / 1000):.3f}",
            f"{end:.3f}",
            name,
            context.get("kind", ""),
            context.get("status", 0),
            f"{response_time:.1f}",
            context.get("bytes", 0),
            context.get("profile", ""),
            "" if exception is None else str(exception)[:200],
        ]
    )


def _count_users(environment) -> None:
    with (OUT / "users.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["time", "users"])
        while True:
            out.writerow([f"{time.time():.3f}", environment.runner.user_count])
            f.flush()
            _log.flush()
            gevent.sleep(1)


@events.test_start.add_listener
def _started(environment, **_: Any) -> None:
    (OUT / "started").write_text(f"{time.time():.3f}\n")
    gevent.spawn(_count_users, environment)


@events.quitting.add_listener
def _quitting(**_: Any) -> None:
    _log.flush()
    # Tokens were refreshed during the phase: the next phase starts from these.
    accounts_file.save(Path(PHASE["accounts"]), ACCOUNTS)


def _profiles(weights: dict[str, float], slots: int = 20):
    """Users take profiles in turn, in the weights' proportions (so 3 users with equal weights
    get one of each)."""
    total = sum(weights.values())
    spread = []
    for name, weight in weights.items():
        n = max(1, round(slots * weight / total)) if weight > 0 else 0
        spread += [((k + 0.5) / n, name) for k in range(n)]
    return itertools.cycle([name for _, name in sorted(spread)])


PROFILES = _profiles(PHASE.get("profiles", {"full": 1}))


class Failure(Exception):
    pass


class Uploader(User):
    abstract = True
    wait_time = constant(PHASE.get("think", 0))

    def on_start(self) -> None:
        self.index = FREE.popleft() if FREE else random.randrange(len(ACCOUNTS))
        self.account = ACCOUNTS[self.index]
        self.http = wire.Client(timeout=PHASE.get("timeout", 900))
        self.profile = wire.Profile(
            next(PROFILES),
            rate=PHASE.get("rate", 130_000),
            head=PHASE.get("head", 64 * 1024),
            pause=PHASE.get("pause", 10),
        )

    def on_stop(self) -> None:
        self.http.close()
        FREE.append(self.index)

    # -- recording ---------------------------------------------------------------------------

    def record(self, name: str, kind: str, started: float, status: int, sent: int, error=None):
        self.environment.events.request.fire(
            request_type="HTTP",
            name=name,
            response_time=(time.time() - started) * 1000,
            response_length=sent,
            exception=error,
            context={
                "start": started,
                "kind": kind,
                "status": status,
                "bytes": sent,
                "profile": self.profile.name,
            },
        )

    def call(self, method: str, path: str, payload: Any = None, token: str | None = None):
        """A small JSON request, recorded as a step (not counted as an upload)."""
        started = time.time()
        name = f"{method} {_ID.sub('{id}', path)}"
        try:
            r = self.http.json(method, self.host + path, payload, token)
        except OSError as exc:
            self.record(name, "step", started, 0, 0, exc)
            raise Failure(f"{name}: {exc!r}") from None
        self.record(
            name, "step", started, r.status, 0, None if r.status < 400 else Failure(r.status)
        )
        return r

    # -- tokens ------------------------------------------------------------------------------

    def token(self) -> str:
        a = self.account
        margin = min(PHASE.get("refresh_margin", 60), a.get("ttl", 3600) / 2)
        if time.time() < a["expires_at"] - margin:
            return a["access_token"]
        r = None
        if a.get("refresh_token"):
            r = self.call("POST", "/api/auth/refresh", {"refresh_token": a["refresh_token"]})
        if r is None or r.status != 200:
            # The refresh token was used up (another phase, a shared account): log in again.
            r = self.call(
                "POST", "/api/auth/login", {"email": a["email"], "password": a["password"]}
            )
            if r.status != 200:
                raise Failure(f"login answered {r.status}")
        body = r.json()
        ttl = float(body.get("expires_in", 3600))
        a.update(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token", a.get("refresh_token")),
            expires_at=time.time() + ttl,
            ttl=ttl,
        )
        return a["access_token"]

    def clip(self) -> tuple[str, bytes]:
        return random.choice(FILES)

    def title(self) -> str:
        return f"Carga {self.index} {int(time.time() * 1000) % 100000}"

    def _accepted(self, r: wire.Response, expected: int = 201) -> Exception | None:
        if r.status == 401:
            self.account["expires_at"] = 0  # next time round, a fresh token
        if r.status != expected:
            return Failure(f"{r.status}: {r.body[:200]!r}")
        body = r.json()
        if not isinstance(body, dict) or not body.get("task_id"):
            return Failure(f"no task_id in {r.body[:200]!r}")
        return None


class StreamedUploader(Uploader):
    """The seed's request: the whole file in one multipart POST."""

    @task
    def upload(self) -> None:
        try:
            token = self.token()
        except Failure:
            return
        filename, data = self.clip()
        content_type, parts = wire.multipart(self.title(), filename, data)
        length = sum(len(p) for p in parts)
        started = time.time()
        try:
            r = self.http.request(
                "POST",
                self.host + "/api/videos/upload",
                headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
                body=wire.paced(parts, self.profile, gevent.sleep),
                length=length,
            )
        except OSError as exc:
            self.record(STREAMED, "upload", started, 0, length, exc)
            return
        self.record(STREAMED, "upload", started, r.status, length, self._accepted(r))


class DirectUploader(Uploader):
    """The presigned path: create, PUT each part straight to storage, complete."""

    @task
    def upload(self) -> None:
        _, data = self.clip()
        started = time.time()
        sent = 0
        try:
            r = self.call(
                "POST",
                "/api/videos/uploads",
                {"title": self.title(), "size": len(data)},
                self.token(),
            )
            if r.status != 201:
                self.record(DIRECT, "upload", started, r.status, 0, Failure(f"create {r.status}"))
                return
            upload = r.json()
            part_size = upload["part_size"]
            for part in upload["parts"]:
                offset = (part["part_number"] - 1) * part_size
                chunk = memoryview(data)[offset : offset + part["size"]]
                put = self.put_part(part["url"], chunk)
                sent += len(chunk)
                if put.status != 200:
                    self.record(DIRECT, "upload", started, put.status, sent, Failure("part PUT"))
                    return
            r = self.complete(upload["upload_id"])
        except (Failure, OSError) as exc:
            self.record(DIRECT, "upload", started, 0, sent, exc)
            return
        self.record(DIRECT, "upload", started, r.status, sent, self._accepted(r))

    def put_part(self, url: str, chunk: memoryview) -> wire.Response:
        return wire.put_retried(
            self.http,
            url,
            lambda: wire.paced([chunk], self.profile, gevent.sleep),
            len(chunk),
            gevent.sleep,
        )

    def complete(self, upload_id: str) -> wire.Response:
        """Completion is idempotent (a second call finds the upload completed), so a 503 with
        Retry-After (storage too slow to finish within the service's deadline) is retried after
        the pause it asks for, as a client should; every attempt stays a recorded step."""
        path = f"/api/videos/uploads/{upload_id}/complete"
        for _ in range(COMPLETE_RETRIES):
            r = self.call("POST", path, None, self.token())
            if r.status != 503 or "retry-after" not in r.headers:
                return r
            gevent.sleep(_seconds(r.headers["retry-after"]))
        return self.call("POST", path, None, self.token())


def _seconds(retry_after: str, most: float = 30.0) -> float:
    try:
        return min(max(float(retry_after), 0.1), most)
    except ValueError:  # an HTTP date: not worth parsing for a pause this short
        return 1.0


CLASSES = {
    "stream": [StreamedUploader],
    "direct": [DirectUploader],
    "both": [StreamedUploader, DirectUploader],
}[PHASE.get("path", "stream")]


def users_at(points: list[list[float]], t: float) -> float:
    """The user count the phase asks for at `t` s: straight lines between (time, users)."""
    for (t0, u0), (t1, u1) in itertools.pairwise(points):
        if t0 <= t <= t1:
            return u1 if t1 == t0 else u0 + (u1 - u0) * (t - t0) / (t1 - t0)
    return points[-1][1]


class PhaseShape(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        points = PHASE["points"]
        if t >= points[-1][0]:
            return None
        return round(users_at(points, t)), 100, CLASSES
