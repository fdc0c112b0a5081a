"""psycopg 3 connections as statement runners: the shape of asyncpg's connection that ``JobStore``
and ``Queue.enqueue`` run on, over a caller's ``psycopg.Connection`` or ``AsyncConnection``.

Statements go through ``placeholders.bind`` (``$n`` to ``%s``), on cursors that return plain
tuples whatever row factory the caller set. Nothing here commits: every statement runs in the
caller's transaction, as the caller's own statements would. The one step of more than one
statement, the bulk COPY and its NOTIFY, runs in ``transaction()``: a savepoint inside the
caller's transaction, so that a payload that fails mid-stream rolls back only the call. On a
connection out of autocommit whose transaction has not begun yet (psycopg begins it with the
first statement; Django's ``atomic()`` and SQLAlchemy leave it so), a first statement begins it,
since psycopg's ``transaction()`` would otherwise open a transaction of its own and commit it.
On an autocommit connection the call runs in a transaction of its own, as on asyncpg.

``PsycopgRunner``'s coroutines block on the connection and never suspend (see ``loopless.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from ..copy_format import COPY_COLUMNS
from ..statements import SQL
from ..store import JOBS_TABLE
from .placeholders import bind


def _check_copy(table: str, columns: Sequence[str], format: str) -> None:
    """The COPY asked for is the one ``SQL.copy_jobs`` does."""
    if (table, tuple(columns), format) != (JOBS_TABLE, COPY_COLUMNS, "binary"):
        raise ValueError(f"no named COPY statement for {table} {tuple(columns)} ({format})")


def _must_begin(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE


class PsycopgRunner:
    """A sync ``psycopg.Connection``, run through coroutines that never suspend."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _run(self, query: str, args: Sequence[Any]) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor(row_factory=tuple_row)
        cursor.execute(*bind(query, args))
        return cursor

    async def execute(self, query: str, *args: Any) -> str:
        with self._run(query, args) as cursor:
            return cursor.statusmessage or ""

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        with self._run(query, args) as cursor:
            return cursor.fetchall()

    async def fetchrow(self, query: str, *args: Any) -> Any:
        with self._run(query, args) as cursor:
            return cursor.fetchone()

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[column]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if _must_begin(self._conn):
            await self.execute(SQL.ping)
        with self._conn.transaction():
            yield

    async def copy_to_table(
        self, table: str, *, source: AsyncIterable[bytes], columns: Sequence[str], format: str
    ) -> str:
        _check_copy(table, columns, format)
        with self._conn.cursor() as cursor:
            with cursor.copy(SQL.copy_jobs) as copy:
                async for chunk in source:
                    copy.write(chunk)
            return cursor.statusmessage or ""


class AsyncPsycopgRunner:
    """A ``psycopg.AsyncConnection``."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def _run(self, query: str, args: Sequence[Any]) -> psycopg.AsyncCursor[Any]:
        cursor = self._conn.cursor(row_factory=tuple_row)
        await cursor.execute(*bind(query, args))
        return cursor

    async def execute(self, query: str, *args: Any) -> str:
        async with await self._run(query, args) as cursor:
            return cursor.statusmessage or ""

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        async with await self._run(query, args) as cursor:
            return await cursor.fetchall()

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with await self._run(query, args) as cursor:
            return await cursor.fetchone()

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[column]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if _must_begin(self._conn):
            await self.execute(SQL.ping)
        async with self._conn.transaction():
            yield

    async def copy_to_table(
        self, table: str, *, source: AsyncIterable[bytes], columns: Sequence[str], format: str
    ) -> str:
        _check_copy(table, columns, format)
        async with self._conn.cursor() as cursor:
            async with cursor.copy(SQL.copy_jobs) as copy:
                async for chunk in source:
                    await copy.write(chunk)
            return cursor.statusmessage or ""
