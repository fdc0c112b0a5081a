"""Each driver the producers take, driven through its library's own transaction API.

A ``Driver`` opens a connection of its kind to a database, begins a transaction the way that
library's users do (``conn.transaction()``, ``engine.begin()``, ``session.begin()``,
``transaction.atomic()``), makes calls of ``docko_worker``'s producer API on it, and commits, or
raises ``Rollback`` inside the block so the library rolls it back. Sync drivers run in a thread
(``asyncio.to_thread``), so a test's daemon keeps running on the event loop meanwhile; they call
the sync forms (``enqueue``), async drivers the ``_async`` forms.

A call is ``(name, args, kwargs)`` of ``docko_worker.<name>`` with the connection first;
``side_effect`` is a call that inserts one row into the test's ``side_effects`` table through
the same connection, as a handler's own write would. A call made with ``caught(error, ...)``
catches ``error`` inside the transaction and goes on, as a caller that handles it would.
"""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import asyncpg

import docko_worker

Call = tuple[str, tuple[Any, ...], dict[str, Any]]

SIDE_EFFECTS = "CREATE TABLE side_effects (job_id uuid NOT NULL)"
SIDE_EFFECT = "side_effect"


class Rollback(Exception):
    """Raised inside a transaction block to roll it back."""


class _Never(Exception):
    """Caught by a call that catches nothing."""


def call(name: str, *args: Any, **kwargs: Any) -> Call:
    return name, args, kwargs


def caught(error: type[Exception], name: str, *args: Any, **kwargs: Any) -> Call:
    """``call``, whose ``error`` is caught inside the transaction (the result is the error)."""
    return name, args, {**kwargs, CAUGHT: error}


CAUGHT = "_caught"


def with_driver(url: str, driver: str) -> str:
    """``url`` for SQLAlchemy's ``postgresql+<driver>`` dialect."""
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


class Driver(ABC):
    """One kind of connection, and how its library runs a transaction."""

    name: str
    is_async: bool

    async def run(self, url: str, calls: Sequence[Call], *, rollback: bool = False) -> list[Any]:
        """Make ``calls`` in one transaction; commit it, or roll it back and raise ``Rollback``.

        An exception from a call propagates through the library's transaction block (which rolls
        back) to the caller.
        """
        if self.is_async:
            return await self.transaction(url, calls, rollback)
        return await asyncio.to_thread(self.sync_transaction, url, calls, rollback)

    async def transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        raise NotImplementedError

    def sync_transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        raise NotImplementedError

    def make_sync(self, conn: Any, calls: Sequence[Call], rollback: bool) -> list[Any]:
        results: list[Any] = []
        for name, args, kwargs in calls:
            options = dict(kwargs)
            error: type[Exception] = options.pop(CAUGHT, _Never)
            try:
                if name == SIDE_EFFECT:
                    results.append(self.side_effect(conn, args[0]))
                else:
                    results.append(getattr(docko_worker, name)(conn, *args, **options))
            except error as exc:
                results.append(exc)
        if rollback:
            raise Rollback
        return results

    async def make_async(self, conn: Any, calls: Sequence[Call], rollback: bool) -> list[Any]:
        results: list[Any] = []
        for name, args, kwargs in calls:
            options = dict(kwargs)
            error: type[Exception] = options.pop(CAUGHT, _Never)
            try:
                if name == SIDE_EFFECT:
                    results.append(await self.side_effect_async(conn, args[0]))
                else:
                    function = getattr(docko_worker, name + "_async")
                    results.append(await function(conn, *args, **options))
            except error as exc:
                results.append(exc)
        if rollback:
            raise Rollback
        return results

    def side_effect(self, conn: Any, job_id: UUID) -> None:
        raise NotImplementedError

    async def side_effect_async(self, conn: Any, job_id: UUID) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class Psycopg(Driver):
    name, is_async = "psycopg", False

    def sync_transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        import psycopg

        with psycopg.connect(url) as conn, conn.transaction():
            return self.make_sync(conn, calls, rollback)

    def side_effect(self, conn: Any, job_id: UUID) -> None:
        conn.execute("INSERT INTO side_effects (job_id) VALUES (%s)", [job_id])


class PsycopgAsync(Driver):
    name, is_async = "psycopg-async", True

    async def transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
            return await self.make_async(conn, calls, rollback)

    async def side_effect_async(self, conn: Any, job_id: UUID) -> None:
        await conn.execute("INSERT INTO side_effects (job_id) VALUES (%s)", [job_id])


class Asyncpg(Driver):
    name, is_async = "asyncpg", True

    async def transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                return await self.make_async(conn, calls, rollback)
        finally:
            await conn.close()

    async def side_effect_async(self, conn: Any, job_id: UUID) -> None:
        await conn.execute("INSERT INTO side_effects (job_id) VALUES ($1)", job_id)


class SqlAlchemy(Driver):
    """``engine.begin()`` (a ``Connection``) or ``session.begin()`` (a ``Session``), on psycopg."""

    is_async = False

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"sqlalchemy-{kind}"

    def sync_transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        engine = create_engine(with_driver(url, "psycopg"))
        try:
            if self.kind == "session":
                with Session(engine) as session, session.begin():
                    return self.make_sync(session, calls, rollback)
            with engine.begin() as conn:
                return self.make_sync(conn, calls, rollback)
        finally:
            engine.dispose()

    def side_effect(self, conn: Any, job_id: UUID) -> None:
        from sqlalchemy import text

        conn.execute(text("INSERT INTO side_effects (job_id) VALUES (:id)"), {"id": job_id})


class SqlAlchemyAsync(Driver):
    """``engine.begin()`` (an ``AsyncConnection``) or ``session.begin()`` (an
    ``AsyncSession``), on asyncpg or on psycopg's async connection."""

    is_async = True

    def __init__(self, kind: str, driver: str) -> None:
        self.kind = kind
        self.driver = driver
        self.name = f"sqlalchemy-async-{kind}-{driver}"

    async def transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

        engine = create_async_engine(with_driver(url, self.driver))
        try:
            if self.kind == "session":
                async with AsyncSession(engine) as session, session.begin():
                    return await self.make_async(session, calls, rollback)
            async with engine.begin() as conn:
                return await self.make_async(conn, calls, rollback)
        finally:
            await engine.dispose()

    async def side_effect_async(self, conn: Any, job_id: UUID) -> None:
        from sqlalchemy import text

        await conn.execute(text("INSERT INTO side_effects (job_id) VALUES (:id)"), {"id": job_id})


class Django(Driver):
    """``django.db.connection`` inside ``transaction.atomic()``; needs ``django.setup()``."""

    name, is_async = "django", False

    def sync_transaction(self, url: str, calls: Sequence[Call], rollback: bool) -> list[Any]:
        from django.db import connection, transaction

        with django_database(url), transaction.atomic():
            return self.make_sync(connection, calls, rollback)

    def side_effect(self, conn: Any, job_id: UUID) -> None:
        with conn.cursor() as cursor:
            cursor.execute("INSERT INTO side_effects (job_id) VALUES (%s)", [job_id])


@contextmanager
def django_database(url: str) -> Iterator[None]:
    """Point Django's default database at ``url`` for this thread; disconnect afterwards."""
    from django.db import connections

    from tests.django_project.settings import database_settings

    connections["default"].settings_dict.update(database_settings(url))
    try:
        yield
    finally:
        connections.close_all()


DRIVERS: list[Driver] = [
    Psycopg(),
    PsycopgAsync(),
    Asyncpg(),
    SqlAlchemy("connection"),
    SqlAlchemy("session"),
    SqlAlchemyAsync("connection", "asyncpg"),
    SqlAlchemyAsync("session", "asyncpg"),
    SqlAlchemyAsync("connection", "psycopg"),
    SqlAlchemyAsync("session", "psycopg"),
    Django(),
]
