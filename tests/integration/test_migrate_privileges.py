"""A current schema is recognised with reads alone: a daemon role without CREATE may migrate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from docko_worker.migrations import migrate


@pytest.fixture
async def reader_url(database_url: str) -> AsyncIterator[str]:
    """A role that may read the version table and use the jobs table, but create nothing."""
    role = f"docko_reader_{uuid.uuid4().hex[:8]}"
    database = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        await admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        await admin.execute(f'GRANT SELECT, UPDATE, DELETE ON docko_jobs TO "{role}"')
        await admin.execute(f'GRANT SELECT ON docko_schema_migrations TO "{role}"')
        parts = urlsplit(database_url)
        host = parts.netloc.rpartition("@")[2]
        yield urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, ""))
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def test_a_role_without_create_sees_the_schema_is_current(reader_url: str) -> None:
    conn = await asyncpg.connect(reader_url)
    try:
        assert await migrate(conn) == []
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE docko_probe (id int)")
    finally:
        await conn.close()
