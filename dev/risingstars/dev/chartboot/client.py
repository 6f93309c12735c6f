"""An HTTP client outside the cluster: the ingress host reaches the router (ALB), and any other
link host resolves as the overlay's documentation says a user reaches it (an S3 endpoint, a
port-forwarded Service). Plain http.client: every hop is visible in errors."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    def json(self):
        return json.loads(self.body)

    def describe(self) -> str:
        return f"{self.url} -> HTTP {self.status}: {self.body[:300]!r}"


class Client:
    def __init__(self, resolve: Callable[[str, int], tuple[str, int]], base: str) -> None:
        self.resolve = resolve
        self.base = base.rstrip("/")
        self.timeout = 120

    def request(
        self, method: str, url: str, *, body: bytes = b"", headers: dict | None = None
    ) -> Response:
        if url.startswith("/"):
            url = self.base + url
        parts = urllib.parse.urlsplit(url)
        default = 443 if parts.scheme == "https" else 80
        addr, port = self.resolve(parts.hostname or "", parts.port or default)
        conn = http.client.HTTPConnection(addr, port, timeout=self.timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = {"Host": parts.netloc, **(headers or {})}
        if body or method in ("POST", "PUT", "PATCH"):
            sent["Content-Length"] = str(len(body))
        try:
            conn.request(method, target or "/", body=body or None, headers=sent)
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read(), url)
        finally:
            conn.close()

    def json(self, method: str, url: str, payload=None, token: str | None = None) -> Response:
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps(payload).encode() if payload is not None else b""
        return self.request(method, url, body=body, headers=headers)


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data, ctype) in files.items():
        out.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class FlowError(AssertionError):
    pass


def expect(resp: Response, status: int, step: str) -> Response:
    if resp.status != status:
        raise FlowError(f"{step}: expected HTTP {status}, got {resp.describe()}")
    return resp


def until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise FlowError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def run_flow(c: Client, clip: bytes, *, city: str = "Bogotá", log: Callable[[str], None]) -> dict:
    """signup -> login -> upload -> processed -> download processed and original -> vote ->
    rankings, through the ingress, as the API contract describes it."""
    email = f"boot.{uuid.uuid4().hex[:10]}@example.com"
    password = "a-long-passphrase"  # noqa: S105 (a throwaway test account)
    signup = {
        "first_name": "Ana",
        "last_name": "Boot",
        "email": email,
        "password1": password,
        "password2": password,
        "city": city,
        "country": "Colombia",
    }
    expect(c.json("POST", "/api/auth/signup", signup), 201, "signup")
    log("signup ok")
    login = expect(
        c.json("POST", "/api/auth/login", {"email": email, "password": password}), 200, "login"
    )
    token = login.json()["access_token"]
    me = expect(c.json("GET", "/api/auth/me", token=token), 200, "me").json()
    log("login ok")
    body, ctype = multipart(
        {"title": "Chart boot"}, {"video_file": ("clip.mp4", clip, "video/mp4")}
    )
    up = c.request(
        "POST",
        "/api/videos/upload",
        body=body,
        headers={"Content-Type": ctype, "Authorization": f"Bearer {token}"},
    )
    video_id = expect(up, 201, "upload").json()["video_id"]
    log(f"upload ok ({len(clip)} bytes, video {video_id})")

    def processed():
        r = expect(c.json("GET", f"/api/videos/{video_id}", token=token), 200, "video detail")
        status = r.json()["status"]
        if status not in ("uploaded", "processing", "processed"):
            raise FlowError(f"video ended {status}: {r.describe()}")
        return r.json() if status == "processed" else None

    detail = until(processed, 180, "the video to be processed")
    log("processed ok")
    downloads = {}
    for field in ("processed_url", "original_url"):
        link = detail.get(field)
        if not link:
            raise FlowError(f"{field} missing in {detail}")
        got = c.request("GET", link)
        if got.status != 200 or got.body[4:8] != b"ftyp":
            raise FlowError(f"{field} not downloadable: {got.describe()}")
        downloads[field] = {"url": link, "bytes": len(got.body)}
    if downloads["original_url"]["bytes"] != len(clip):
        raise FlowError("the original link does not return the uploaded bytes")
    sizes = ", ".join(f"{k}={v['bytes']} B" for k, v in downloads.items())
    log(f"links ok ({sizes})")
    # Another player votes (nobody may vote for their own video).
    voter = f"fan.{uuid.uuid4().hex[:10]}@example.com"
    fan = signup | {"email": voter, "first_name": "Luis"}
    expect(c.json("POST", "/api/auth/signup", fan), 201, "signup of a voter")
    voter_login = c.json("POST", "/api/auth/login", {"email": voter, "password": password})
    voter_token = expect(voter_login, 200, "login of a voter").json()["access_token"]
    expect(c.json("POST", f"/api/public/videos/{video_id}/vote", token=voter_token), 200, "vote")
    log("vote ok")

    def ranked():
        r = expect(
            c.json("GET", "/api/public/rankings?city=" + urllib.parse.quote(city)), 200, "rankings"
        )
        return [row for row in r.json() if row["username"] == me["username"] and row["votes"] == 1]

    until(ranked, 90, "the vote to show in the rankings")
    log("rankings ok")
    return {"video_id": video_id, "downloads": downloads, "token": token}


def check_web_app(c: Client, *, log: Callable[[str], None]) -> None:
    """`/` through the Ingress is the web app: its page, with its CSP, names a hashed script
    that is served and cached for good."""
    page = expect(c.request("GET", "/"), 200, "web app page")
    script = re.search(rb'<script type="module" src="(/assets/app\.[0-9a-f]+\.js)"', page.body)
    if script is None or "script-src 'self'" not in page.headers.get("content-security-policy", ""):
        raise FlowError(f"web app: / is not the app's page: {page.describe()}")
    asset = expect(c.request("GET", script.group(1).decode()), 200, "web app script")
    if "immutable" not in asset.headers.get("cache-control", ""):
        raise FlowError(f"web app: {asset.url} is not cached for good: {asset.headers}")
    log(f"web app at / (its script {script.group(1).decode()})")
