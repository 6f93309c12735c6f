"""Auth benchmarks.

- `auth.verify_ratio`: access-token verification throughput of the kit's TokenVerifier ÷ a bare
  `jwt.decode` with the key in hand (same tokens, same checks, same run). Target >= 0.8.
- `auth.kdf_ms`: one password hash (argon2id as configured: OWASP's 19 MiB, t=2, p=1).
- `auth.kdf_scrypt_ratio`: that hash ÷ one hash of the scheme it replaced (scrypt n=2**15, r=8,
  p=1, 32 MiB) in the same run: what a login or signup costs in CPU now against before.
- `auth.login_p50_ms` / `auth.login_p95_ms`: POST /api/auth/login through the real server
  (uvicorn in a subprocess, a throwaway PostgreSQL), one client, sequential. Target p50 < 150 ms.
- `auth.login_p50_kdf_ratio`: login p50 ÷ kdf_ms, i.e. what a login costs over its unavoidable
  password hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt

from bench import printer
from risingstars.auth import keys, passwords
from risingstars.auth.app import MIGRATIONS, SERVICE
from risingstars.dev import infra
from risingstars.kit import db
from risingstars.kit.tokens import TokenVerifier

ISSUER, AUDIENCE = "rising-stars-auth", "rising-stars-api"
TOKENS = 2000
ROUNDS = 5
LOGINS = 200
WARMUP = 10
PASSWORD = "Vuelo-Alto-2024"


bench = printer("auth")


def _tokens(directory: Path) -> tuple[keys.KeyRing, list[str]]:
    keys.generate(directory)
    ring = keys.load(directory)
    now = int(time.time())
    tokens = [
        ring.sign(
            {
                "sub": f"user-{i}",
                "username": f"u{i}",
                "city": "Bogotá",
                "iss": ISSUER,
                "aud": AUDIENCE,
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "jti": f"{i:032x}",
            }
        )
        for i in range(TOKENS)
    ]
    return ring, tokens


def verify_ratio(scratch: Path) -> None:
    ring, tokens = _tokens(scratch / "verify-keys")
    public = ring.current.private.public_key()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=ring.jwks())

    def bare() -> float:
        start = time.perf_counter()
        for token in tokens:
            jwt.decode(
                token, public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                leeway=30, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )  # fmt: skip
        return len(tokens) / (time.perf_counter() - start)

    async def kit() -> float:
        start = time.perf_counter()
        for token in tokens:
            await verifier.verify(token)
        return len(tokens) / (time.perf_counter() - start)

    bare_rates, kit_rates = [], []
    for _ in range(ROUNDS):  # interleaved, so both see the same machine load
        bare_rates.append(bare())
        kit_rates.append(asyncio.run(kit()))
    print(
        f"# verify: kit {max(kit_rates):.0f}/s, bare jwt.decode {max(bare_rates):.0f}/s "
        f"(best of {ROUNDS} x {TOKENS} tokens)",
        flush=True,
    )
    bench("verify_ratio", max(kit_rates) / max(bare_rates))


def median_ms(fn) -> float:
    fn()  # warm-up
    times = []
    for _ in range(10):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def kdf_ms() -> float:
    return median_ms(lambda: passwords.hash_password(PASSWORD))


def scrypt_ms() -> float:
    """The scheme before argon2id (scrypt n=2**15, r=8, p=1: 32 MiB), as the baseline."""
    salt = b"0123456789abcdef"
    return median_ms(
        lambda: hashlib.scrypt(
            PASSWORD.encode(), salt=salt, n=2**15, r=8, p=1, dklen=32, maxmem=64 * 2**20
        )
    )


def _wait_ready(client: httpx.Client, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"auth exited with {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("auth not ready after 60 s")


def login_latency(scratch: Path) -> tuple[float, float]:
    pg = infra.start_postgres(scratch / "pg", log_path=scratch / "pg.log")
    server = None
    try:
        url = infra.create_database(pg, "bench_auth")
        asyncio.run(db.migrate(url, SERVICE, MIGRATIONS))
        keys.generate(scratch / "keys")
        port = infra.free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "AUTH_SIGNING_KEYS_DIR": str(scratch / "keys"),
            "PORT": str(port),
            "DRAIN_SECONDS": "0",
        }
        log = scratch / "auth.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "risingstars.auth", "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_ready(client, server, log)
            body = {
                "first_name": "Bench", "last_name": "Mark", "email": "bench@example.com",
                "password1": PASSWORD, "password2": PASSWORD, "city": "Cali",
                "country": "Colombia",
            }  # fmt: skip
            client.post("/api/auth/signup", json=body).raise_for_status()
            credentials = {"email": "bench@example.com", "password": PASSWORD}
            samples = []
            for i in range(WARMUP + LOGINS):
                start = time.perf_counter()
                response = client.post("/api/auth/login", json=credentials)
                elapsed = (time.perf_counter() - start) * 1000
                response.raise_for_status()
                if i >= WARMUP:
                    samples.append(elapsed)
        cuts = statistics.quantiles(samples, n=100)
        return cuts[49], cuts[94]
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        infra.stop(pg.proc)


def run() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="risingstars-bench-auth-"))
    scratch.chmod(0o755)  # PostgreSQL runs as `postgres` when the bench runs as root
    try:
        verify_ratio(scratch)
        kdf = kdf_ms()
        bench("kdf_ms", kdf, "ms")
        bench("kdf_scrypt_ratio", kdf / scrypt_ms())
        p50, p95 = login_latency(scratch)
        bench("login_p50_ms", p50, "ms")
        bench("login_p95_ms", p95, "ms")
        bench("login_p50_kdf_ratio", p50 / kdf)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    run()
