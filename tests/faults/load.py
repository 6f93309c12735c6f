"""A steady, bounded stream of uploads, votes and reads through the gateway, every request
recorded (start, end, status, Retry-After, error) for the invariants."""

from __future__ import annotations

import base64
import dataclasses
import random
import threading
import time
import uuid

import httpx
import jwt

PASSWORD = "a-long-passphrase"
CITIES = ("Bogotá", "Medellín", "Cali")
# Every TUS_EVERY-th upload goes by tus, in pieces of TUS_PIECE bytes, a client resuming from
# the server's offset after a failed request (at most TUS_ATTEMPTS failures, then it cancels).
TUS_EVERY = 3
TUS_PIECE = 3 * 1024 * 1024
TUS_ATTEMPTS = 8
TUS = {"Tus-Resumable": "1.0.0"}


@dataclasses.dataclass(frozen=True)
class Call:
    kind: str
    start: float
    end: float
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    retry_after: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclasses.dataclass
class User:
    email: str
    token: str
    sub: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Load:
    """Uploads every `upload_every` seconds (at most `max_uploads`), and a reader/voter loop;
    both stop on `stop()` or after `max_seconds`."""

    def __init__(
        self,
        url: str,
        clips: list[bytes],
        *,
        seed: int,
        users: int = 4,
        upload_every: float = 2.0,
        max_uploads: int = 30,
        read_every: float = 0.3,
        max_seconds: float = 600,
        upload_deadline: float = 120,
        read_deadline: float = 30,
    ) -> None:
        self.url = url
        self.clips = clips
        self.rng = random.Random(seed)
        self.user_count = users
        self.upload_every = upload_every
        self.max_uploads = max_uploads
        self.read_every = read_every
        self.max_seconds = max_seconds
        self.upload_deadline = upload_deadline
        self.read_deadline = read_deadline
        self.users: list[User] = []
        self.calls: list[Call] = []
        self.accepted: list[str] = []  # video ids answered 201
        self.votes: set[tuple[str, str]] = set()  # (video id, voter) answered 200
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- driving ---------------------------------------------------------------------------

    def start(self) -> Load:
        with httpx.Client(base_url=self.url, timeout=self.read_deadline) as c:
            for i in range(self.user_count):
                self.users.append(self._signup(c, i))
        self._started = time.monotonic()
        for target in (self._uploads, self._reads_and_votes):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.upload_deadline + 10)

    def uploads_done(self) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.kind == "upload")

    def _signup(self, c: httpx.Client, i: int) -> User:
        email = f"player{i}.{uuid.uuid4().hex[:8]}@example.com"
        body = {
            "first_name": f"Jugador{i}",
            "last_name": "Prueba",
            "email": email,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "city": CITIES[i % len(CITIES)],
            "country": "Colombia",
        }
        r = c.post("/api/auth/signup", json=body)
        assert r.status_code == 201, r.text
        r = c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        sub = jwt.decode(token, options={"verify_signature": False})["sub"]
        return User(email, token, sub)

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() - self._started < self.max_seconds

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _call(self, client: httpx.Client, kind: str, method: str, path: str, **kw):
        start = time.monotonic()
        try:
            r = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self._record(Call(kind, start, time.monotonic(), None, error=type(exc).__name__))
            return None
        self._record(
            Call(kind, start, time.monotonic(), r.status_code, r.headers.get("retry-after"))
        )
        return r

    def _uploads(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.upload_deadline) as c:
            for n in range(self.max_uploads):
                if not self._running():
                    return
                user = self.users[n % len(self.users)]
                clip = self.clips[n % len(self.clips)]
                if n % TUS_EVERY == TUS_EVERY - 1:
                    self._tus_upload(c, user, clip, n)
                    self._stop.wait(self.upload_every)
                    continue
                r = self._call(
                    c,
                    "upload",
                    "POST",
                    "/api/videos/upload",
                    headers=user.headers,
                    data={"title": f"Jugada {n}"},
                    files={"video_file": (f"clip{n}.mp4", clip, "video/mp4")},
                )
                if r is not None and r.status_code == 201:
                    with self._lock:
                        self.accepted.append(r.json()["video_id"])
                self._stop.wait(self.upload_every)

    def _tus_upload(self, c: httpx.Client, user: User, clip: bytes, n: int) -> None:
        """A tus client: create, PATCH piece by piece; after a failed request, a pause, then
        HEAD says where to resume. Recorded as an upload (201) once the server names the
        video; a client that gives up cancels the upload (DELETE)."""
        start = time.monotonic()
        title = base64.b64encode(f"Jugada {n} (tus)".encode()).decode()
        headers = {**user.headers, **TUS}
        creation = {**headers, "Upload-Length": str(len(clip)), "Upload-Metadata": f"title {title}"}
        r = self._call(c, "tus", "POST", "/api/videos/tus/", headers=creation)
        if r is None or r.status_code != 201:
            return
        location, offset, failures = r.headers["Location"], 0, 0
        while failures < TUS_ATTEMPTS:
            r = self._call(c, "tus", "PATCH", location, headers={
                **headers, "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            }, content=clip[offset : offset + TUS_PIECE])  # fmt: skip
            if r is None or r.status_code != 204:
                failures += 1
                time.sleep(min(2**failures, 10))
                r = self._call(c, "tus", "HEAD", location, headers=headers)
                if r is None or r.status_code != 200:
                    continue
            if "Video-Id" in r.headers:
                with self._lock:
                    self.accepted.append(r.headers["Video-Id"])
                self._record(Call("upload", start, time.monotonic(), 201))
                return
            offset = int(r.headers["Upload-Offset"])
        self._call(c, "tus", "DELETE", location, headers=headers)

    def _reads_and_votes(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.read_deadline) as c:
            while self._running():
                user = self.rng.choice(self.users)
                r = self._call(c, "public", "GET", "/api/public/videos", params={"limit": 100})
                public = r.json() if r is not None and r.status_code == 200 else []
                if public:
                    video = self.rng.choice(public)["video_id"]
                    voter = self.rng.choice(self.users)
                    r = self._call(
                        c, "vote", "POST", f"/api/public/videos/{video}/vote", headers=voter.headers
                    )
                    if r is not None and r.status_code == 200:
                        with self._lock:
                            self.votes.add((video, voter.sub))
                self._call(c, "rankings", "GET", "/api/public/rankings")
                r = self._call(c, "mine", "GET", "/api/videos", headers=user.headers)
                own = r.json() if r is not None and r.status_code == 200 else []
                if own:
                    video = self.rng.choice(own)["video_id"]
                    self._call(c, "detail", "GET", f"/api/videos/{video}", headers=user.headers)
                self._stop.wait(self.read_every)
