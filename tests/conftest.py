"""The test harness: a throwaway PostgreSQL server and moto's S3 + SQS HTTP server per test
session, fresh databases and fresh AWS resources per test. Nothing is left running: both
servers die with the test process."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from risingstars.dev import infra


@pytest.fixture(scope="session")
def _scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="risingstars-test-"))
    path.chmod(0o755)  # the PostgreSQL server runs as `postgres` when tests run as root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(_scratch: Path) -> infra.Postgres:
    server = infra.start_postgres(_scratch / "pg", log_path=_scratch / "pg.log")
    yield server
    infra.stop(server.proc)


@pytest.fixture(scope="session")
def pg_dsn(pg: infra.Postgres) -> str:
    return pg.dsn


@pytest.fixture
def database_url(pg: infra.Postgres) -> str:
    return infra.create_database(pg, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def moto_url(_scratch: Path) -> str:
    server = infra.start_moto(log_path=_scratch / "moto.log")
    saved = {k: os.environ.get(k) for k in [*infra.AWS_DUMMY_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(infra.AWS_DUMMY_ENV)
    os.environ["AWS_ENDPOINT_URL"] = server.url
    yield server.url
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    infra.stop(server.proc)


@pytest.fixture
def aws(moto_url: str) -> infra.AWSResources:
    return infra.create_aws_resources(moto_url, f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def system():
    """The whole system as `make run` starts it, shared by the tests of its clients."""
    from risingstars.dev.stack import running

    with running() as started:
        yield started
