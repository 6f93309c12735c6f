"""`schemathesis run --checks all` against the auth service served over HTTP on loopback, on a
real PostgreSQL: beyond "no 5xx" and schema conformance, data the document allows must be
accepted (it states every constraint the service enforces), data it forbids refused with a 4xx,
an unsupported method answered 405 with `Allow`, OPTIONS with an `Allow` matching the document.
Bounded by ST_EXAMPLES (25) per operation, with a fixed seed.

One allowance: a signup the document allows may still be refused with the contract's 400 for
rules JSON Schema cannot state (the two passwords must be equal, and not weak or the email).
Every other constraint (lengths, visible text, no control characters, required bodies) is in
the document and must match what the service enforces."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from risingstars.dev import infra
from risingstars.kit import db

EXAMPLES = int(os.environ.get("ST_EXAMPLES", "25"))
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFIG = """
[[operations]]
include-path = "/api/auth/signup"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2XX", "400", "401", "403", "404", "409", "429"]
"""


@contextlib.contextmanager
def _serving(app) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "auth did not start"
        time.sleep(0.05)  # polling for the server thread, bounded above
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_auth_api_passes_every_schemathesis_check(pg: infra.Postgres, tmp_path: Path) -> None:
    from risingstars.auth import keys
    from risingstars.auth.app import MIGRATIONS, SERVICE, create_app
    from risingstars.auth.settings import Settings
    from risingstars.kit.settings import load

    keys.generate(tmp_path / "keys")
    database_url = infra.create_database(pg, f"st_auth_{uuid.uuid4().hex[:10]}")
    asyncio.run(db.migrate(database_url, SERVICE, MIGRATIONS))
    environment = {
        "DATABASE_URL": database_url,
        "AUTH_SIGNING_KEYS_DIR": str(tmp_path / "keys"),
        # One client address for every generated request: the throttles would otherwise be
        # what answers (429), not the rules under test.
        "SIGNUP_MAX_PER_IP": "1000000",
        "LOGIN_MAX_FAILURES_PER_IP": "1000000",
    }
    app = create_app(load(Settings, environment))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with _serving(app) as url:
        result = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(config), "run", f"{url}/openapi.json",
             "--checks", "all",
             "--max-examples", str(EXAMPLES), "--seed", "2024", "--workers", "1",
             "--phases", "examples,coverage,fuzzing", "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
