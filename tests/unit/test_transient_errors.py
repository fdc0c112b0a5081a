"""Which database errors are worth the same statement again later, and which are the rows'."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg import exceptions as pg

from docko_worker.db import is_transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        pg.ConnectionDoesNotExistError("closed"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.QueryCanceledError("canceling statement due to lock timeout"),
        pg.DeadlockDetectedError("deadlock"),
        pg.TooManyConnectionsError("too many"),
        pg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        pg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_of_the_connection_or_server_state_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        pg.DataError("interval out of range"),
        pg.CharacterNotInRepertoireError("invalid byte sequence"),
        pg.UndefinedTableError('relation "docko_jobs" does not exist'),
        asyncpg.exceptions._base.DataError("invalid input for query argument $3"),
        UnicodeEncodeError("utf-8", "\udce9", 0, 1, "surrogates not allowed"),
        ValueError("bad"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_of_the_statement_or_its_arguments_are_not(error: BaseException) -> None:
    assert not is_transient(error)
