"""The database boundary: what runs docko-worker's statements, and which of its errors pass.

``Runner`` is anything that runs a statement: an asyncpg ``Pool`` or ``Connection`` (a pool lends
one of its connections per call). ``Connection`` also opens transactions; ``Pool`` also lends a
connection for longer.
``is_transient`` tells an error of the connection or the server's state (worth trying the same
statement again later) from an error of the statement's arguments (which will fail again);
``is_read_only`` tells, among those, a server that refuses writes (a demoted primary, a standby),
on which a connection is no use until it is replaced.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import asyncpg
from asyncpg import exceptions as pg


class Runner(Protocol):
    """Runs one statement: what asyncpg's ``Pool`` and ``Connection`` have in common."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any: ...


class Connection(Runner, Protocol):
    """A ``Runner`` that is one connection: it can open a transaction."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    def is_in_transaction(self) -> bool: ...

    async def close(self) -> None: ...

    def terminate(self) -> None: ...


class Pool(Runner, Protocol):
    """A ``Runner`` that also lends a connection for several statements."""

    def acquire(self) -> AbstractAsyncContextManager[Any]: ...

    async def close(self) -> None: ...

    def terminate(self) -> None: ...


# Errors of the connection or of the server's state, not of a statement's arguments.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    pg.PostgresConnectionError,  # class 08: the connection failed
    pg.OperatorInterventionError,  # class 57: shutdown, cancelled, cannot connect now
    pg.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    pg.TransactionRollbackError,  # class 40: serialization failure, deadlock
    pg.LockNotAvailableError,
    pg.ReadOnlySQLTransactionError,  # a primary demoted under a pooled connection
)


def is_transient(exc: BaseException) -> bool:
    """Whether the same statement with the same arguments may well succeed later."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    # The driver's own state errors. When the server ends an idle connection
    # (pg_terminate_backend, a restart), asyncpg reads the server's FATAL error before it sees
    # the socket close, and a pool may lend the connection in between: the next statement on it
    # fails with "cannot switch to state ...; another operation is in progress"
    # (InternalClientError). Moments later asyncpg sees the close and the pool replaces the
    # connection, so the same statement succeeds on another. But an argument the driver could
    # not encode (a DataError, also a ValueError) is the statement's own fault.
    if isinstance(exc, pg.InternalClientError):
        return True
    return isinstance(exc, pg.InterfaceError) and not isinstance(exc, ValueError)


def is_read_only(exc: BaseException) -> bool:
    """The server refused a write because it is read-only: a primary demoted under the connection,
    a standby, or ``default_transaction_read_only`` (SQLSTATE 25006, also "... during recovery")."""
    return isinstance(exc, pg.ReadOnlySQLTransactionError)
