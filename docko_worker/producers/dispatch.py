"""Which driver a caller's connection belongs to, and the statement runner over it.

The connection's class (or a base class) names its library: ``psycopg``, ``sqlalchemy``,
``django`` or ``asyncpg``. Only that library's module is imported, so each driver stays an
optional extra. SQLAlchemy and Django connections are unwrapped to the driver connection under
them; what runs the statements is psycopg 3 (sync or async) or asyncpg.
"""

from __future__ import annotations

from typing import Any

from ..db import Runner
from ..errors import DockoError

_LIBRARIES = ("psycopg", "sqlalchemy", "django", "asyncpg")

SYNC_KINDS = "a psycopg Connection, a SQLAlchemy Connection or Session, or Django's connection"
ASYNC_KINDS = (
    "a psycopg AsyncConnection, a SQLAlchemy AsyncConnection or AsyncSession, "
    "or an asyncpg connection"
)


def _library(conn: Any) -> str:
    for cls in type(conn).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in _LIBRARIES:
            return root
    return ""


def _refuse(conn: Any, wanted: str, hint: str = "") -> DockoError:
    kind = f"{type(conn).__module__}.{type(conn).__qualname__}"
    return DockoError(f"cannot run on a {kind}: pass {wanted}{hint}")


def sync_runner(conn: Any) -> Runner:
    """A runner for a sync connection; ``DockoError`` for anything else."""
    library = _library(conn)
    if library == "sqlalchemy":
        from . import sqlalchemy_driver

        if sqlalchemy_driver.is_async(conn):
            raise _refuse(conn, SYNC_KINDS, " (use the _async form for this one)")
        try:
            conn = sqlalchemy_driver.driver_connection(conn)
        except TypeError:
            raise _refuse(conn, SYNC_KINDS) from None
    elif library == "django":
        from . import django_driver

        conn = django_driver.driver_connection(conn)
    elif library == "asyncpg":
        raise _refuse(conn, SYNC_KINDS, " (use the _async form for asyncpg)")
    if _library(conn) == "psycopg":
        return _psycopg_runner(conn, want_async=False)
    raise _refuse(conn, SYNC_KINDS, _driver_hint(library))


async def async_runner(conn: Any) -> Runner:
    """A runner for an async connection; ``DockoError`` for anything else."""
    library = _library(conn)
    if library == "asyncpg":
        runner: Runner = conn
        return runner
    if library == "sqlalchemy":
        from . import sqlalchemy_driver

        if not sqlalchemy_driver.is_async(conn):
            raise _refuse(conn, ASYNC_KINDS, " (use the sync form for this one)")
        try:
            conn = await sqlalchemy_driver.async_driver_connection(conn)
        except TypeError:
            raise _refuse(conn, ASYNC_KINDS) from None
        if _library(conn) == "asyncpg":
            runner = conn
            return runner
    if _library(conn) == "psycopg":
        return _psycopg_runner(conn, want_async=True)
    raise _refuse(conn, ASYNC_KINDS, _driver_hint(library))


def _psycopg_runner(conn: Any, *, want_async: bool) -> Runner:
    import psycopg

    from .psycopg_runner import AsyncPsycopgRunner, PsycopgRunner

    if want_async and isinstance(conn, psycopg.AsyncConnection):
        return AsyncPsycopgRunner(conn)
    if not want_async and isinstance(conn, psycopg.Connection):
        return PsycopgRunner(conn)
    other_kind = isinstance(conn, psycopg.Connection | psycopg.AsyncConnection)
    hint = (
        (" (use the sync form)" if want_async else " (use the _async form)") if other_kind else ""
    )
    raise _refuse(conn, ASYNC_KINDS if want_async else SYNC_KINDS, hint)


def _driver_hint(library: str) -> str:
    """For a SQLAlchemy or Django connection over a driver other than psycopg 3 or asyncpg."""
    if library in ("sqlalchemy", "django"):
        return f" ({library} must run on psycopg 3, or asyncpg for the async forms)"
    return ""
