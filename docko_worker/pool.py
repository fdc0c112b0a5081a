"""asyncpg connection set-up: the daemon's pool, single connections, and start-up retries.

Payloads cross the wire as JSON text (see ``sql/queries.sql``), so no codec is installed: a
connection the caller owns behaves exactly like one from this pool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog

from .config import Config
from .dsn import describe_connection_error, redact_dsn
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


async def _keep_session(_conn: Any) -> None:
    """Pool reset hook: skip asyncpg's reset query, a round trip per release.

    Connections of this pool only run the named statements, which leave no session state
    behind (no SET, LISTEN, cursors or session locks; the daemon's plan setting is made once
    per connection, on purpose); asyncpg still rolls back a transaction left open before
    calling this.
    """


async def _use_generic_plans(conn: Any) -> None:
    await conn.execute(SQL.use_generic_plans)


async def create_pool(
    config: Config,
    *,
    min_size: int = 1,
    max_size: int | None = None,
    generic_plans: bool = False,
) -> Any:
    """A pool sized for the daemon (or ``max_size``), honouring ``statement_cache_size``.

    ``generic_plans``: the daemon's pool, whose connections run only docko-worker's statements,
    plans each of them once (see ``use_generic_plans`` in ``sql/queries.sql``). Not with a
    statement cache of 0: then nothing is prepared to reuse a plan, and behind PgBouncer in
    transaction mode a session setting would leak to other clients.
    """
    init = _use_generic_plans if generic_plans and config.statement_cache_size > 0 else None
    return await asyncpg.create_pool(
        config.require_database_url(),
        min_size=min_size,
        max_size=max_size or config.pool_size,
        statement_cache_size=config.statement_cache_size,
        server_settings=_server_settings(),
        init=init,
        reset=_keep_session,
        timeout=10,
    )


async def connect(config: Config) -> Any:
    """One connection outside the pool (LISTEN, migrations, CLI commands)."""
    return await asyncpg.connect(
        config.require_database_url(),
        statement_cache_size=config.statement_cache_size,
        server_settings=_server_settings(),
        timeout=10,
    )


async def wait_for_pool(
    config: Config,
    stop: asyncio.Event | None = None,
    *,
    max_delay: float = 30.0,
    generic_plans: bool = False,
    deadline: float | None = None,
) -> Any | None:
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
