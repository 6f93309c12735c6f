"""Runs deploy/rds-bootstrap.sql as RDS runs it: with psql, as a master user that is not a
superuser but has CREATEROLE and CREATEDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from risingstars.dev import infra, rds_bootstrap

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = rds_bootstrap.FILE
MASTER = "rds_master"
PASSWORDS = {"auth_password": "auth-pw'quoted", "upload_password": "upload-pw"}


def create_master(pg: infra.Postgres) -> None:
    infra.psql(pg, f"CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB")


def run_sql_file(pg: infra.Postgres, path: Path, user: str = MASTER) -> subprocess.CompletedProcess:
    """`psql -f FILE` as docs/deploy.md shows it (ON_ERROR_STOP, passwords as variables)."""
    args = [str(infra.postgres_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for key, value in PASSWORDS.items():
        args += ["-v", f"{key}={value}"]
    args += ["-h", "127.0.0.1", "-p", str(pg.port), "-U", user, "-d", "postgres", "-f", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def migrate(pg: infra.Postgres, service: str, role: str) -> subprocess.CompletedProcess:
    """The migration Job's command, as the service's own role."""
    env = {**os.environ, "DATABASE_URL": f"postgresql://{role}@127.0.0.1:{pg.port}/risingstars"}
    return subprocess.run(
        [sys.executable, "-m", f"risingstars.{service}", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def drop_everything(pg: infra.Postgres) -> None:
    for sql in (
        "DROP DATABASE IF EXISTS risingstars WITH (FORCE)",
        "DROP ROLE IF EXISTS rs_auth",
        "DROP ROLE IF EXISTS rs_upload",
        f"DROP ROLE IF EXISTS {MASTER}",
    ):
        infra.psql(pg, sql)


def psql_as(pg: infra.Postgres, role: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *(str(infra.postgres_bindir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1"),
            *("-h", "127.0.0.1", "-p", str(pg.port), "-U", role, "-d", "risingstars", "-c", sql),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
