"""Fixtures of the e2e layer: handler packages installed with pip, daemons, the test database.

The handler packages in ``handler_pkg/`` and ``broken_pkg/`` are really installed (built by pip
with the virtual environment's build backend, no network) into temporary target directories, and
reach the daemon under test only through its ``PYTHONPATH``: the shared virtual environment stays
as it was. The broken package is installed only for the test that asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from e2e_helpers import (
    PASSWORD,
    PASSWORD_ROLE,
    RUNS_TABLE,
    Daemon,
    Daemons,
    Database,
    with_credentials,
)

from tests.conftest import install_package
from tests.daemon_process import minimal_environ

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def handlers_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the installed ``docko-e2e-handlers`` distribution."""
    return install_package(HERE / "handler_pkg", tmp_path_factory.mktemp("e2e-handlers"))


@pytest.fixture(scope="session")
def broken_handlers_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding ``docko-e2e-broken``, whose entry point does not import."""
    return install_package(HERE / "broken_pkg", tmp_path_factory.mktemp("e2e-broken"))


@pytest.fixture
def base_env(handlers_path: Path) -> dict[str, str]:
    """A minimal environment (no DOCKO_* variable) in which the e2e handlers are installed."""
    return minimal_environ([handlers_path])


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The test's own migrated database, with the ``e2e_runs`` table the handlers write to."""
    database = Database(database_url)
    try:
        database.execute(RUNS_TABLE)
        yield database
    finally:
        database.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Starts daemon subprocesses; kills any still running when the test ends."""
    started = Daemons(tmp_path, Daemon)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
def password_dsn(server_dsn: str, database_url: str) -> str:
    """``database_url`` reached as a role that has a password (trust auth accepts it anyway)."""

    async def create_role() -> None:
        admin = await asyncpg.connect(server_dsn)
        try:
            exists = await admin.fetchval(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", PASSWORD_ROLE
            )
            if not exists:
                # Another session may create it meanwhile: that is as good.
                with contextlib.suppress(
                    asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError
                ):
                    await admin.execute(
                        f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}' SUPERUSER"
                    )
        finally:
            await admin.close()

    asyncio.run(create_role())
    return with_credentials(database_url, PASSWORD_ROLE, PASSWORD)
