"""Scratch databases: each system gets a fresh one per run, created and dropped here."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Every database the harness creates starts with this, so leftovers are recognisable.
PREFIX = "dockobench_"


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@asynccontextmanager
async def scratch_database(admin_dsn: str, label: str) -> AsyncIterator[str]:
    """Create ``dockobench_<label>_<pid>``, yield its DSN, drop it afterwards."""
    name = f"{PREFIX}{label.replace('-', '_')}_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT version()"))
    finally:
        await conn.close()


async def server_settings(dsn: str, names: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: str(await conn.fetchval("SELECT current_setting($1)", name)) for name in names
        }
    finally:
        await conn.close()


async def checkpoint(dsn: str) -> float:
    """Run ``CHECKPOINT`` on ``dsn``'s server; the seconds it took.

    Before every measured run, so no run pays for the previous step's writes (a seed's or an
    enqueue's WAL and dirty buffers flushed while the worker runs). Needs a superuser or, from
    PostgreSQL 15, a member of ``pg_checkpoint``.
    """
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute("CHECKPOINT", timeout=600)
        return time.perf_counter() - started
    finally:
        await conn.close()
