"""Migrations that run outside a transaction (``-- docko: no-transaction``): CREATE INDEX
CONCURRENTLY, replicas racing, a run that failed half-way resumed, a lock wait bounded and
tried again; and migration 0002 adds its columns to a filled table without rewriting it."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from docko_worker import MigrationError
from docko_worker.migrations import available_migrations, migrate, pending_migrations
from docko_worker.statements import sql_dir
from tests.integration.operator_support import wait_for_lock_wait

CONCURRENT_INDEX = """-- docko: no-transaction
CREATE TABLE IF NOT EXISTS docko_probe (id integer, label text);
-- docko: step
CREATE INDEX CONCURRENTLY IF NOT EXISTS docko_probe_label_idx ON docko_probe (label);
"""


def write_migrations(directory: Path, *files: tuple[str, str]) -> Path:
    for name, sql in files:
        (directory / name).write_text(sql)
    return directory


async def test_a_no_transaction_migration_builds_an_index_concurrently(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path,
        ("0001_table.sql", "CREATE TABLE docko_base (id integer);"),
        ("0002_index.sql", CONCURRENT_INDEX),
        ("0003_after.sql", "ALTER TABLE docko_base ADD COLUMN note text;"),
    )
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = await migrate(conn, directory)
        assert [m.version for m in applied] == [1, 2, 3]
        assert [m.transactional for m in applied] == [True, False, True]
        assert await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'docko_probe_label_idx'::regclass"
        )
        assert await migrate(conn, directory) == []
        assert not conn.is_in_transaction()
        # The lock is the session's and was given back.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
            == 0
        )
    finally:
        await conn.close()


async def test_replicas_racing_apply_a_no_transaction_migration_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path, ("0001_index.sql", CONCURRENT_INDEX))
    connections = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(conn, directory) for conn in connections))
        assert sorted(len(result) for result in results) == [0, 0, 0, 1]
    finally:
        await asyncio.gather(*(conn.close() for conn in connections))


async def test_a_run_that_failed_half_way_is_resumed(
    empty_database_url: str, tmp_path: Path
) -> None:
    broken = CONCURRENT_INDEX + "-- docko: step\nSELECT no_such_function();\n"
    write_migrations(tmp_path, ("0001_index.sql", broken))
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(MigrationError, match="0001_index failed"):
            await migrate(conn, tmp_path)
        assert [m.version for m in await pending_migrations(conn, tmp_path)] == [1]
        # The steps before the failure stay done; running them again is harmless.
        assert await conn.fetchval("SELECT to_regclass('docko_probe_label_idx')") is not None
        write_migrations(tmp_path, ("0001_index.sql", CONCURRENT_INDEX))
        assert [m.version for m in await migrate(conn, tmp_path)] == [1]
    finally:
        await conn.close()


@asynccontextmanager
async def column_migration_behind_a_lock(
    database_url: str, directory: Path, lock_timeout: str
) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    """A no-transaction migration adding a column to a table another session holds a lock on;
    yields (the migrator's connection, the holder's, which releases the lock when closed)."""
    write_migrations(
        directory,
        (
            "0001_column.sql",
            f"-- docko: no-transaction\nSET LOCAL lock_timeout = '{lock_timeout}';\n"
            "ALTER TABLE docko_base ADD COLUMN IF NOT EXISTS note text;\n",
        ),
    )
    migrator = await asyncpg.connect(database_url)
    holder = await asyncpg.connect(database_url)
    try:
        await migrator.execute("CREATE TABLE docko_base (id integer)")
        await holder.execute("BEGIN; LOCK TABLE docko_base IN ACCESS SHARE MODE")
        yield migrator, holder
    finally:
        await holder.close()
        await migrator.close()


async def test_a_step_that_times_out_on_a_lock_is_tried_again(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("docko_worker.migrations.LOCK_TIMEOUT_PAUSE", 0.1)
    async with column_migration_behind_a_lock(empty_database_url, tmp_path, "50ms") as (
        migrator,
        holder,
    ):
        migrating = asyncio.create_task(migrate(migrator, tmp_path))
        await wait_for_lock_wait(holder)
        # Held past the step's lock_timeout: its first attempt gives up, a later one runs.
        await asyncio.sleep(0.3)
        await holder.close()
        assert [m.version for m in await migrating] == [1]


async def test_a_lock_held_past_every_attempt_fails_the_migration(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("docko_worker.migrations.LOCK_TIMEOUT_PAUSE", 0.01)
    async with column_migration_behind_a_lock(empty_database_url, tmp_path, "20ms") as (
        migrator,
        _,
    ):
        with pytest.raises(MigrationError, match="lock timeout"):
            await migrate(migrator, tmp_path)
        assert [m.version for m in await pending_migrations(migrator, tmp_path)] == [1]


async def test_migration_0002_adds_its_columns_without_rewriting_a_filled_table(
    empty_database_url: str, tmp_path: Path
) -> None:
    shutil.copy(sql_dir() / "0001_initial.sql", tmp_path)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        await conn.execute(
            "INSERT INTO docko_jobs (id, queue_name, job_type, payload, max_attempts) "
            "SELECT gen_random_uuid(), 'default', 'ocr', '{}', 5 FROM generate_series(1, 5000)"
        )
        before = await conn.fetchval("SELECT pg_relation_filenode('docko_jobs')")
        applied = await migrate(conn)
        assert [m.name for m in applied] == [m.name for m in available_migrations()][1:]
        assert await conn.fetchval("SELECT pg_relation_filenode('docko_jobs')") == before
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM docko_jobs "
                "WHERE errors IS NULL AND cancel_requested_at IS NULL"
            )
            == 5000
        )
        assert await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'docko_jobs_stopped_idx'::regclass"
        )
    finally:
        await conn.close()


async def test_migration_0002_lets_roles_granted_the_jobs_table_use_the_queues_table(
    empty_database_url: str, tmp_path: Path
) -> None:
    """An upgrade keeps a daemon running as a role of its own claiming: the claim now reads
    docko_queues, which its role was never granted."""
    shutil.copy(sql_dir() / "0001_initial.sql", tmp_path)
    suffix = uuid.uuid4().hex[:8]
    daemon, producer = f"docko_daemon_{suffix}", f"docko_producer_{suffix}"
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        for role, grant in ((daemon, "SELECT, UPDATE, DELETE"), (producer, "SELECT, INSERT")):
            await conn.execute(f'CREATE ROLE "{role}"')
            await conn.execute(f'GRANT {grant} ON docko_jobs TO "{role}"')
        await migrate(conn)
        privileges = await conn.fetch(
            "SELECT role, privilege, has_table_privilege(role, 'docko_queues', privilege) AS has "
            "FROM unnest($1::text[]) AS role, "
            "unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS privilege",
            [daemon, producer],
        )
        assert {(row["role"], row["privilege"]) for row in privileges if row["has"]} == {
            (daemon, "SELECT"),
            (daemon, "INSERT"),
            (daemon, "UPDATE"),
            (producer, "SELECT"),
        }
    finally:
        for role in (daemon, producer):
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'DROP OWNED BY "{role}"')
                await conn.execute(f'DROP ROLE "{role}"')
        await conn.close()
