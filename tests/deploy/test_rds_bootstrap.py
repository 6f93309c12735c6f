"""deploy/rds-bootstrap.sql, verbatim, as RDS's non-superuser master; then both services'
migrations as their own roles (what the chart's hook Jobs run)."""

from __future__ import annotations

import re

import pytest
from deploy.rds import (
    BOOTSTRAP,
    ROOT,
    create_master,
    drop_everything,
    migrate,
    psql_as,
    run_sql_file,
)

from risingstars.dev import infra
from risingstars.dev.chartboot import overlays


@pytest.fixture
def clean_cluster(pg: infra.Postgres):
    drop_everything(pg)
    create_master(pg)
    yield pg
    drop_everything(pg)


def test_bootstrap_runs_as_a_non_superuser_master_and_both_migrations_succeed(clean_cluster):
    pg = clean_cluster
    done = run_sql_file(pg, BOOTSTRAP)
    assert done.returncode == 0, done.stderr
    for service, role in (("auth", "rs_auth"), ("upload", "rs_upload")):
        ran = migrate(pg, service, role)
        assert ran.returncode == 0, f"{service}: {ran.stderr}"
    # Each role owns its schema only: upload cannot read auth's users.
    denied = psql_as(pg, "rs_upload", "SELECT count(*) FROM auth.users")
    assert denied.returncode != 0 and "permission denied" in denied.stderr


def test_docs_include_the_file_verbatim():
    """docs/deploy.md shows exactly the file the tests run."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", doc, re.S)
    assert BOOTSTRAP.read_text() in blocks


def test_chart_boot_runs_the_same_statements(clean_cluster):
    """chart-boot's database preparation is the file, statement by statement."""
    pg = clean_cluster
    for database, sql in overlays._PER_SERVICE_ROLES:
        infra.psql(pg, sql, database)
    for service, role in (("auth", "rs_auth"), ("upload", "rs_upload")):
        ran = migrate(pg, service, role)
        assert ran.returncode == 0, f"{service}: {ran.stderr}"
    assert len(overlays._PER_SERVICE_ROLES) == BOOTSTRAP.read_text().count(";\n")
