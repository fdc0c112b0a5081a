"""Fixtures of the e2e layer: handler packages installed with pip, daemons, the test database.

The handler packages in ``handler_pkg/`` and ``broken_pkg/`` are really installed (built by pip
with the virtual environment's build backend, no network) into temporary target directories, and
reach the daemon under test only through its ``PYTHONPATH``: the shared virtual environment stays
as it was. The broken package is installed only for the test that asks for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from e2e_helpers import (
    PASSWORD,
    PASSWORD_ROLE,
    PASSWORD_ROLE_GRANTS,
    RUNS_TABLE,
    Daemon,
    Daemons,
    Database,
    with_credentials,
)

from tests.conftest import install_package, run_admin
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


@pytest.fixture(scope="session")
def password_role(server_dsn: str) -> Iterator[str]:
    """A login role with a password and no other attribute, of this session alone.

    Not a superuser and without CREATEDB or CREATEROLE: ``password_dsn`` grants it what the daemon
    needs on each test's database (those grants go with the database). Dropped at the end of the
    session; its name is unique, so sessions sharing a server never meet.
    """
    role = f"{PASSWORD_ROLE}_{uuid.uuid4().hex[:10]}"
    asyncio.run(
        run_admin(
            server_dsn,
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{PASSWORD}'",
        )
    )
    try:
        yield role
    finally:
        asyncio.run(run_admin(server_dsn, f"DROP ROLE IF EXISTS {role}"))


@pytest.fixture
def password_dsn(db: Database, database_url: str, password_role: str) -> str:
    """``database_url`` reached as ``password_role`` (trust auth accepts the password anyway),
    granted exactly what the daemon, the CLI and the e2e handlers use there."""
    database = urlsplit(database_url).path.lstrip("/")
    for grant in PASSWORD_ROLE_GRANTS:
        db.execute(grant.format(db=database, role=password_role))
    return with_credentials(database_url, password_role, PASSWORD)
