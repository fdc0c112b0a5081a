"""asyncpg connection set-up: the daemon's pool, single connections, start-up retries, and
letting go of connections whose server turned read-only.

Payloads cross the wire as JSON text (see ``sql/queries.sql``), so no codec is installed: a
connection the caller owns behaves exactly like one from this pool.

A failover that demotes the old primary in place (``default_transaction_read_only``, a restart as
a standby behind an unchanged name, a proxy that still points at it) leaves pooled connections open
to a server that refuses every write. ``ReadWritePool`` runs a pool's statements and, on the first
"cannot execute ... in a read-only transaction", expires all of the pool's connections: each is
replaced before it runs another statement, and the DSN (its hosts, ``target_session_attrs``)
decides where the new ones go. ``refuse_read_only`` does the same for a single connection (the
LISTEN connection), from what the server reports about itself.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import asyncpg
import structlog

from .config import Config
from .db import Connection, Pool, is_read_only
from .dsn import describe_connection_error, redact_dsn
from .errors import describe_error
from .retry import reconnect_delay
from .statements import SQL

log = structlog.get_logger("docko_worker.pool")

APPLICATION_NAME = "docko-worker"

# Errors that mean "the database is not there (yet)", worth retrying at start-up.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    # A multi-host DSN with target_session_attrs while no host qualifies (mid-failover).
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)


def _server_settings() -> dict[str, str]:
    return {"application_name": APPLICATION_NAME}


async def _keep_session(_conn: Connection) -> None:
    """Pool reset hook: skip asyncpg's reset query, a round trip per release.

    Connections of this pool only run the named statements, which leave no session state
    behind (no SET, LISTEN, cursors or session locks; the daemon's plan setting is made once
    per connection, on purpose); asyncpg still rolls back a transaction left open before
    calling this.
    """


async def _use_generic_plans(conn: Connection) -> None:
    await conn.execute(SQL.use_generic_plans)


async def create_pool(
    config: Config,
    *,
    min_size: int = 1,
    max_size: int | None = None,
    generic_plans: bool = False,
) -> Pool:
    """A pool sized for the daemon (or ``max_size``), honouring ``statement_cache_size``.

    ``generic_plans``: the daemon's pool, whose connections run only docko-worker's statements,
    plans each of them once (see ``use_generic_plans`` in ``sql/queries.sql``). Not with a
    statement cache of 0: then nothing is prepared to reuse a plan, and behind PgBouncer in
    transaction mode a session setting would leak to other clients.
    """
    init = _use_generic_plans if generic_plans and config.statement_cache_size > 0 else None
    pool: Pool = await asyncpg.create_pool(
        config.require_database_url(),
        min_size=min_size,
        max_size=max_size or config.pool_size,
        statement_cache_size=config.statement_cache_size,
        server_settings=_server_settings(),
        init=init,
        reset=_keep_session,
        timeout=10,
    )
    return pool


async def connect(config: Config) -> Connection:
    """One connection outside the pool (LISTEN, migrations, CLI commands)."""
    conn: Connection = await asyncpg.connect(
        config.require_database_url(),
        statement_cache_size=config.statement_cache_size,
        server_settings=_server_settings(),
        timeout=10,
    )
    return conn


async def wait_for_pool(
    config: Config,
    stop: asyncio.Event | None = None,
    *,
    max_delay: float = 30.0,
    generic_plans: bool = False,
    deadline: float | None = None,
) -> Pool | None:
    """Create the pool, retrying with backoff while the database does not answer.

    Returns ``None`` if ``stop`` is set while waiting. With ``deadline`` (seconds), the error of
    the last attempt is raised once that long has passed.
    """
    give_up_at = None if deadline is None else time.monotonic() + deadline
    attempt = 0
    while True:
        try:
            return await create_pool(config, generic_plans=generic_plans)
        except asyncpg.ClientConfigurationError:
            raise  # a setting asyncpg refuses (target_session_attrs, say): no wait mends it
        except CONNECT_ERRORS as exc:
            attempt += 1
            delay = reconnect_delay(attempt, 0.5, max_delay)
            if give_up_at is not None:
                left = give_up_at - time.monotonic()
                if left <= 0:
                    raise
                delay = min(delay, left)
            log.warning(
                "database_unavailable",
                dsn=redact_dsn(config.database_url),
                attempt=attempt,
                retry_in=round(delay, 2),
                error=describe_connection_error(exc, config.database_url),
            )
            if stop is None:
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                continue
            return None


class ReadOnlyServerError(ConnectionError):
    """The server behind a connection takes no writes: a demoted primary, or a standby."""


def read_only_reason(conn: Any) -> str | None:
    """Why the server behind ``conn`` takes no writes, by what it last reported; None if it does.

    PostgreSQL 14 and later report ``in_hot_standby`` and ``default_transaction_read_only`` at
    connection start and again with the reply to the first statement after either changes (a
    configuration reload); older servers report neither, and pass.
    """
    settings = conn.get_settings()
    if getattr(settings, "in_hot_standby", "off") == "on":
        return "the server is a standby (in recovery)"
    if getattr(settings, "default_transaction_read_only", "off") == "on":
        return "the server is read-only (default_transaction_read_only = on)"
    return None


def refuse_read_only(conn: Any) -> None:
    """Raise ``ReadOnlyServerError`` if the server behind ``conn`` takes no writes."""
    reason = read_only_reason(conn)
    if reason is not None:
        raise ReadOnlyServerError(f"{reason}: a demoted primary or a standby; reconnecting")


class ReadWritePool:
    """Runs statements on an asyncpg pool; expires its connections once their server is read-only.

    The statement that meets the read-only server still fails (with asyncpg's
    ``ReadOnlySQLTransactionError``, which ``is_transient`` counts as worth retrying); the
    connection it ran on is closed as it goes back to the pool, and every other one before it runs
    another statement. Costs one ``async with`` per statement, as ``Pool.fetch`` does itself.
    """

    __slots__ = ("pool",)

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def acquire(self) -> _Lent:
        """A connection of the pool, as ``Pool.acquire`` lends it, watched for read-only errors."""
        return _Lent(self.pool)

    async def execute(self, query: str, *args: Any) -> str:
        async with _Lent(self.pool) as conn:
            result: str = await conn.execute(query, *args)
            return result

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with _Lent(self.pool) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with _Lent(self.pool) as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        async with _Lent(self.pool) as conn:
            return await conn.fetchval(query, *args, column=column)


class _Lent:
    """``async with``: a pooled connection; a read-only error inside expires the pool's connections
    before this one goes back, so it is closed on its way. A connection whose driver state broke
    (``InternalClientError``: its server ended it, and asyncpg had read the server's last error
    but not yet the socket's close) is terminated, so the pool never lends it again."""

    __slots__ = ("_conn", "_lending", "_pool")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._lending = pool.acquire()
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        self._conn = await self._lending.__aenter__()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            if is_read_only(exc):
                await self._pool.expire_connections()
                log.warning("server_read_only_reconnecting", error=describe_error(exc))
            elif isinstance(exc, asyncpg.InternalClientError) and self._conn is not None:
                self._conn.terminate()
        await self._lending.__aexit__(exc_type, exc, tb)


def read_write(runner: Any) -> Any:
    """``runner`` as ``ReadWritePool`` if it is an asyncpg pool; a single connection as it is."""
    return ReadWritePool(runner) if isinstance(runner, asyncpg.Pool) else runner
