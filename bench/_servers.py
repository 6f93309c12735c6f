"""The throwaway servers the service benchmarks run against: PostgreSQL, moto (S3 + SQS) and a
JWKS endpoint, all gone when the block ends."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from risingstars.dev import infra
from risingstars.dev.tokens import TokenFactory, serve_jwks


@dataclasses.dataclass(frozen=True)
class Servers:
    tmp: Path
    pg: Any
    moto: Any
    jwks_url: str
    keys: TokenFactory


@contextlib.contextmanager
def servers(prefix: str) -> Iterator[Servers]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # PostgreSQL runs as `postgres` when benchmarks run as root
        os.environ.update(infra.AWS_DUMMY_ENV)
        keys = TokenFactory()
        with (
            infra.running(infra.start_postgres, tmp / "pg", log_path=tmp / "pg.log") as pg,
            infra.running(infra.start_moto, log_path=tmp / "moto.log") as moto,
            serve_jwks(keys.jwks) as jwks_url,
        ):
            yield Servers(tmp, pg, moto, jwks_url, keys)
