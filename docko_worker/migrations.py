"""Applies the numbered, forward-only migrations in ``sql/`` and reports their status.

Migrations run under a session-level advisory lock, so replicas starting together apply each file
exactly once and a second run is a no-op. Versions are recorded in ``docko_schema_migrations``.

Consecutive ordinary migrations run together in one transaction: one that fails rolls back the
others of its run. A migration whose first line is ``-- docko: no-transaction`` runs outside any
transaction (``CREATE INDEX CONCURRENTLY`` needs that), as steps separated by lines reading
``-- docko: step``; each step is sent on its own (several statements in one step share one implicit
transaction, so a ``SET LOCAL`` there covers the step). Such a migration is recorded once all its
steps succeeded; its steps must be idempotent (``IF NOT EXISTS``), as a run that failed half-way
runs them again. A step that times out waiting for a lock (its ``lock_timeout``) is tried again a
few times before the migration fails.

Replicas waiting for the lock poll for it instead of blocking in the server: a session blocked
there holds a snapshot, which ``CREATE INDEX CONCURRENTLY`` would wait for while that session
waits for the lock the index build holds.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .db import Connection
from .errors import MigrationError
from .statements import SQL, sql_dir

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
NO_TRANSACTION_MARKER = "-- docko: no-transaction"
STEP_MARKER = "-- docko: step"
_STEP_SPLIT = re.compile(
    rf"^[ \t]*(?:{re.escape(STEP_MARKER)}|{re.escape(NO_TRANSACTION_MARKER)})[ \t]*$", re.M
)

# Seconds between attempts to take the migration lock.
LOCK_POLL_INTERVAL = 0.1
# Attempts of a step that timed out waiting for a lock, and the pause between them (seconds).
LOCK_TIMEOUT_ATTEMPTS = 5
LOCK_TIMEOUT_PAUSE = 1.0


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def transactional(self) -> bool:
        lines = self.sql().splitlines()
        return not lines or lines[0].strip() != NO_TRANSACTION_MARKER

    def steps(self) -> list[str]:
        """The steps of a no-transaction migration, in order (comment-only steps dropped)."""
        return [step.strip() for step in _STEP_SPLIT.split(self.sql()) if _has_code(step)]


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("--") for line in sql.splitlines())


def available_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files, in version order; two files with one version is an error."""
    directory = directory or sql_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}: {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[version] for version in sorted(found)]


async def applied_versions(conn: Connection) -> set[int]:
    """The versions recorded so far (none if the version table does not exist); read-only."""
    if not await conn.fetchval(SQL.migration_table_exists):
        return set()
    rows = await conn.fetch(SQL.applied_migrations)
    return {row["version"] for row in rows}


async def migrate(conn: Connection, directory: Path | None = None) -> list[Migration]:
    """Apply every migration not yet recorded; returns those applied (empty: already current).

    A current schema is recognised with reads alone, so a role without CREATE rights may call
    this at every start.
    """
    migrations = available_migrations(directory)
    recorded = await applied_versions(conn)
    if all(migration.version in recorded for migration in migrations):
        return []
    await _lock(conn)
    try:
        await conn.execute(SQL.create_migration_table)
        done = await applied_versions(conn)
        applied: list[Migration] = []
        for run in _runs([m for m in migrations if m.version not in done]):
            if run[0].transactional:
                async with conn.transaction():
                    for migration in run:
                        await _apply(conn, migration, [migration.sql()])
            else:
                await _apply(conn, run[0], run[0].steps())
            applied.extend(run)
        return applied
    finally:
        await _unlock(conn)


def _runs(pending: list[Migration]) -> Iterator[list[Migration]]:
    """Consecutive transactional migrations together; each no-transaction migration alone."""
    run: list[Migration] = []
    for migration in pending:
        if migration.transactional:
            run.append(migration)
            continue
        if run:
            yield run
            run = []
        yield [migration]
    if run:
        yield run


async def _apply(conn: Connection, migration: Migration, steps: list[str]) -> None:
    for step in steps:
        for attempt in range(1, LOCK_TIMEOUT_ATTEMPTS + 1):
            try:
                await conn.execute(step)
                break
            except asyncpg.LockNotAvailableError as exc:
                if conn.is_in_transaction() or attempt == LOCK_TIMEOUT_ATTEMPTS:
                    raise _failed(migration, exc) from exc
                await asyncio.sleep(LOCK_TIMEOUT_PAUSE)
            except Exception as exc:
                raise _failed(migration, exc) from exc
    await conn.execute(SQL.record_migration, migration.version, migration.name)


def _failed(migration: Migration, exc: Exception) -> MigrationError:
    return MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}")


async def _lock(conn: Connection) -> None:
    while True:
        if await conn.fetchval(SQL.migration_try_lock):
            return
        await asyncio.sleep(LOCK_POLL_INTERVAL)


async def _unlock(conn: Connection) -> None:
    """Release the migration lock; a connection that cannot is closed, which releases it too
    (pooled connections are not reset on release, so a lock left behind would outlive us)."""
    try:
        await conn.execute(SQL.migration_unlock)
    except BaseException:
        conn.terminate()
        raise


async def pending_migrations(conn: Connection, directory: Path | None = None) -> list[Migration]:
    done = await applied_versions(conn)
    return [m for m in available_migrations(directory) if m.version not in done]
