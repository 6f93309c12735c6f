"""Smoke test of an installed Rising Stars release (standard library only).

Used by `helm test` (through the Services) and by CI through the ingress:
  API_URL      base URL routing /api/auth, /.well-known and /api/public (ingress or a Service)
  AUTH_URL     optional: auth's own base URL (defaults to API_URL)
  UPLOAD_URL   optional: upload's own base URL (defaults to API_URL)
  READYZ_URLS  comma-separated base URLs whose /readyz must answer 200
  DEADLINE_SECONDS  how long to retry before failing (default 120)
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


def call(method, url, body=None, token=None):
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (checked above)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def until_ok(label, deadline, attempt):
    """Retries attempt() until it returns None (success) or the deadline passes."""
    while True:
        try:
            problem = attempt()
        except OSError as error:
            problem = repr(error)
        if problem is None:
            print(f"ok   {label}")
            return
        if time.monotonic() > deadline:
            sys.exit(f"FAIL {label}: {problem}")
        time.sleep(2)


def expect(status, body, wanted):
    return None if status == wanted else f"HTTP {status}: {body[:300]!r}"


def main():
    api = os.environ["API_URL"].rstrip("/")
    auth = os.environ.get("AUTH_URL", api).rstrip("/")
    upload = os.environ.get("UPLOAD_URL", api).rstrip("/")
    readyz = [u.rstrip("/") for u in os.environ.get("READYZ_URLS", "").split(",") if u]
    deadline = time.monotonic() + float(os.environ.get("DEADLINE_SECONDS", "120"))

    for base in readyz:
        until_ok(
            f"{base}/readyz",
            deadline,
            lambda base=base: expect(*call("GET", f"{base}/readyz"), 200),
        )

    email = f"smoke-{uuid.uuid4().hex[:12]}@example.com"
    password = uuid.uuid4().hex
    signup = {
        "first_name": "Smoke",
        "last_name": "Test",
        "email": email,
        "password1": password,
        "password2": password,
        "city": "Bogotá",
        "country": "Colombia",
    }
    until_ok(
        "signup", deadline, lambda: expect(*call("POST", f"{auth}/api/auth/signup", signup), 201)
    )

    token = {}

    def login():
        status, body = call(
            "POST", f"{auth}/api/auth/login", {"email": email, "password": password}
        )
        if status == 200:
            token["access"] = json.loads(body)["access_token"]
        return expect(status, body, 200)

    until_ok("login", deadline, login)
    until_ok(
        "me",
        deadline,
        lambda: expect(*call("GET", f"{auth}/api/auth/me", token=token["access"]), 200),
    )
    until_ok("jwks", deadline, lambda: expect(*call("GET", f"{auth}/.well-known/jwks.json"), 200))
    until_ok(
        "rankings", deadline, lambda: expect(*call("GET", f"{upload}/api/public/rankings"), 200)
    )
    until_ok(
        "videos (authenticated)",
        deadline,
        lambda: expect(*call("GET", f"{upload}/api/videos", token=token["access"]), 200),
    )
    print("smoke test passed")


if __name__ == "__main__":
    main()
