"""Migrations against a real server: idempotence, the version table, concurrent replicas, failure
rollback, and every named statement in ``queries.sql`` preparing against the migrated schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from docko_worker import MigrationError
from docko_worker.migrations import available_migrations, migrate, pending_migrations
from docko_worker.statements import load_statements


async def test_migrating_a_current_database_is_a_noop(db: asyncpg.Connection) -> None:
    assert await migrate(db) == []
    assert await migrate(db) == []
    assert await pending_migrations(db) == []


async def test_version_table_records_every_migration(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "SELECT version, name, applied_at FROM docko_schema_migrations ORDER BY version"
    )
    expected = [(m.version, m.name) for m in available_migrations()]
    assert expected, "the package ships no migrations"
    assert [(row["version"], row["name"]) for row in rows] == expected
    assert all(row["applied_at"] is not None for row in rows)


async def test_fresh_database_gets_every_migration_once(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert [m.version for m in await pending_migrations(conn)] == [
            m.version for m in available_migrations()
        ]
        applied = await migrate(conn)
        assert [m.version for m in applied] == [m.version for m in available_migrations()]
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM docko_jobs") == 0
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_migration_once(empty_database_url: str) -> None:
    connections = [await asyncpg.connect(empty_database_url) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in connections))
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in available_migrations()]
        assert sum(1 for result in results if result) == 1
        versions = await connections[0].fetch(
            "SELECT version FROM docko_schema_migrations ORDER BY version"
        )
        assert [row["version"] for row in versions] == applied
    finally:
        await asyncio.gather(*(conn.close() for conn in connections))


async def test_failed_migration_raises_and_records_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE docko_probe (id integer);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE docko_probe_2 (id no_such_type);")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(MigrationError, match="0002_broken"):
            await migrate(conn, tmp_path)
        # One transaction: the good migration before the broken one is rolled back too.
        assert await conn.fetchval("SELECT to_regclass('docko_probe')") is None
        assert [m.version for m in await pending_migrations(conn, tmp_path)] == [1, 2]
    finally:
        await conn.close()


def test_two_migrations_with_one_version_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 1"):
        available_migrations(tmp_path)


async def test_every_named_statement_prepares(db: asyncpg.Connection) -> None:
    statements = load_statements()
    assert statements
    failures: list[str] = []
    for name, sql in statements.items():
        try:
            await db.prepare(sql)
        except asyncpg.PostgresError as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failures, "statements that do not prepare:\n" + "\n".join(failures)
