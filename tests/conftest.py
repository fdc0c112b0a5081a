"""Shared fixtures: a real PostgreSQL server, and a fresh migrated database for each test.

The server is ``DOCKO_TEST_DATABASE_URL`` if set, else the one answering on localhost:5432, else an
embedded one started with ``pgserver``. A template database is migrated once per session; each test
gets its own copy (``CREATE DATABASE ... TEMPLATE``), so tests never see each other's jobs or
notifications.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from docko_worker import Config, Queue, load_config
from docko_worker.embedded import start_embedded_postgres
from docko_worker.migrations import migrate

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def install_package(package: Path, target: Path) -> Path:
    """``pip install`` a test package (and its entry points) into ``target``, offline.

    Daemons under test get ``target`` on PYTHONPATH: a real install, without touching the
    environment the tests run in.
    """
    if importlib.util.find_spec("hatchling") is None:
        pytest.fail(
            f"the test handler packages build with hatchling, which is not installed in this "
            f"environment: run {sys.executable} -m pip install hatchling"
        )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(package),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        pytest.fail(f"pip could not install {package}:\n{result.stdout}\n{result.stderr}")
    return target


async def run_admin(server_dsn: str, statement: str) -> None:
    """One statement on the server's admin database (CREATE / DROP DATABASE)."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextmanager
def scratch_database(server_dsn: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """A database of its own (a copy of ``template`` if given), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(run_admin(server_dsn, f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield with_database(server_dsn, name)
    finally:
        asyncio.run(run_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except Exception:
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of a database on the test server with rights to create databases."""
    configured = os.environ.get("DOCKO_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if asyncio.run(_answers(LOCAL_SERVER)):
        yield LOCAL_SERVER
        return
    # The demo's embedded server (pgserver, in the 'test' extra): as root it runs as a system user
    # that is removed again when it stops (docko_worker/embedded.py).
    with start_embedded_postgres() as server:
        yield server.dsn


@pytest.fixture(scope="session")
def tcp_server_dsn(server_dsn: str) -> str:
    """The test server, for tests that need it over TCP (PgBouncer, password logins)."""
    if not urlsplit(server_dsn).hostname:
        pytest.fail(
            "this test needs PostgreSQL over TCP: set DOCKO_TEST_DATABASE_URL or run a server on "
            "localhost:5432 (the embedded server listens on a Unix socket only)"
        )
    return server_dsn


@pytest.fixture(scope="session")
def template_database(server_dsn: str) -> Iterator[str]:
    name = f"docko_template_{os.getpid()}"

    async def create() -> None:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(with_database(server_dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@pytest.fixture
def database_url(server_dsn: str, template_database: str) -> Iterator[str]:
    """A freshly migrated database of its own for this test."""
    with scratch_database(server_dsn, "docko_test", template_database) as url:
        yield url


def fast_config(database_url: str, **overrides: Any) -> Config:
    """Settings that make tests quick: short polls, leases and backoff."""
    settings: dict[str, Any] = {
        "database_url": database_url,
        "poll_interval": 0.2,
        "visibility_timeout": 5.0,
        "base_retry_delay": 0.01,
        "max_retry_delay": 0.05,
        "shutdown_timeout": 2.0,
        "rescue_interval": 0.2,
        "completion_flush_interval": 0.001,
        "log_level": "warning",
        "log_format": "console",
    }
    settings.update(overrides)
    return load_config(**settings)


@pytest.fixture
def config(database_url: str) -> Config:
    return fast_config(database_url)


@pytest.fixture
async def queue(config: Config) -> AsyncIterator[Queue]:
    async with await Queue.connect(config) as q:
        yield q
