"""Applies the numbered, forward-only migrations in ``sql/`` and reports their status.

All migrations run in one transaction under an advisory lock, so replicas starting together apply
each file exactly once and a second run is a no-op. Versions are recorded in
``docko_schema_migrations``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .db import Connection
from .errors import MigrationError
from .statements import SQL, sql_dir

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


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
    applied: list[Migration] = []
    async with conn.transaction():
        await conn.execute(SQL.migration_lock)
        await conn.execute(SQL.create_migration_table)
        done = await applied_versions(conn)
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                await conn.execute(migration.sql())
            except Exception as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
            await conn.execute(SQL.record_migration, migration.version, migration.name)
            applied.append(migration)
    return applied


async def pending_migrations(conn: Connection, directory: Path | None = None) -> list[Migration]:
    done = await applied_versions(conn)
    return [m for m in available_migrations(directory) if m.version not in done]
