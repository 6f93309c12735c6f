import asyncio
from pathlib import Path

import asyncpg
import pytest

from risingstars.kit.db import migrate, migration_files


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_applies_in_order_once_and_records(tmp_path: Path, database_url: str) -> None:
    write(tmp_path, "001_create.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path, "002_seed.sql", "INSERT INTO things VALUES (1);")
    assert await migrate(database_url, "svc", tmp_path) == ["001_create.sql", "002_seed.sql"]
    assert await migrate(database_url, "svc", tmp_path) == []
    write(tmp_path, "003_more.sql", "INSERT INTO things VALUES (2);")
    assert await migrate(database_url, "svc", tmp_path) == ["003_more.sql"]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM things") == 2
        names = await conn.fetch(
            "SELECT name FROM schema_migrations WHERE service='svc' ORDER BY 1"
        )
        assert [r["name"] for r in names] == ["001_create.sql", "002_seed.sql", "003_more.sql"]
    finally:
        await conn.close()


async def test_concurrent_replicas_apply_each_file_once(tmp_path: Path, database_url: str) -> None:
    # Without the advisory lock, the second CREATE TABLE fails or the INSERT runs twice.
    write(tmp_path, "001_create.sql", "CREATE TABLE counter (n int); SELECT pg_sleep(0.2);")
    write(tmp_path, "002_seed.sql", "INSERT INTO counter VALUES (1);")
    results = await asyncio.gather(*(migrate(database_url, "svc", tmp_path) for _ in range(5)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 2]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM counter") == 1
    finally:
        await conn.close()


async def test_a_failing_migration_is_rolled_back_and_not_recorded(
    tmp_path: Path, database_url: str
) -> None:
    write(tmp_path, "001_bad.sql", "CREATE TABLE half (id int); SELECT * FROM no_such_table;")
    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(database_url, "svc", tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "")
    write(tmp_path, "001_b.sql", "")
    with pytest.raises(ValueError, match="duplicate"):
        migration_files(tmp_path)
