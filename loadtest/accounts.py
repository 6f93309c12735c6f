"""The load test's users: signed up once per run (or reused from an earlier run's file), logged
in, and their tokens kept fresh, so no request fails because a token expired mid-run (the seed's
401s). Signup throttling (429 + Retry-After) is waited out, within a bound."""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "load-test-passphrase"
CITIES = ["Bogotá", "Medellín", "Cali", "Barranquilla", "Cartagena"]
MAX_WAIT = 120.0


def _post(client: httpx.Client, path: str, payload: dict[str, Any]) -> httpx.Response:
    """POST, waiting out 429/503 answers (Retry-After) up to MAX_WAIT seconds in total."""
    waited = 0.0
    while True:
        r = client.post(path, json=payload)
        if r.status_code not in (429, 503) or waited >= MAX_WAIT:
            return r
        pause = min(float(r.headers.get("retry-after", "1") or 1), MAX_WAIT - waited)
        time.sleep(max(pause, 0.1))
        waited += max(pause, 0.1)


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = _post(client, "/api/auth/login", {"email": email, "password": password})
    r.raise_for_status()
    body = r.json()
    return {
        "email": email,
        "password": password,
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token"),
        "expires_at": time.time() + float(body.get("expires_in", 3600)),
    }


def signup(client: httpx.Client, run_tag: str, i: int) -> dict[str, Any]:
    email = f"load.{run_tag}.{i}@example.com"
    r = _post(
        client,
        "/api/auth/signup",
        {
            "first_name": "Load",
            "last_name": f"Test {i}",
            "email": email,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "city": CITIES[i % len(CITIES)],
            "country": "Colombia",
        },
    )
    if r.status_code != 201:
        raise RuntimeError(f"signup of {email} answered {r.status_code}: {r.text[:200]}")
    return login(client, email)


def prepare(host: str, count: int, path: Path, reuse: Path | None = None) -> list[dict[str, Any]]:
    """At least `count` logged-in accounts in `path`: those already there, then those of `reuse`
    (an earlier run's file), logged in again, then new signups. Few at a time: password hashing
    is the costly part of both, and it runs on the system under test."""
    known = json.loads(reuse.read_text()) if reuse and reuse.exists() else []
    have = json.loads(path.read_text()) if path.exists() else []
    if len(have) >= count:
        return have
    known = [a for a in known if a["email"] not in {h["email"] for h in have}]
    tag = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=host, timeout=120) as client, ThreadPoolExecutor(4) as pool:
        wanted = known[: count - len(have)]
        again = list(pool.map(lambda a: login(client, a["email"], a["password"]), wanted))
        start = len(have) + len(again)
        fresh = list(pool.map(lambda i: signup(client, tag, i), range(start, count)))
    accounts = have + again + fresh
    save(path, accounts)
    return accounts


def save(path: Path, accounts: list[dict[str, Any]]) -> None:
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    partial.write_text(json.dumps(accounts, indent=1))
    partial.rename(path)
