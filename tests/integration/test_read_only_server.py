"""Connections to a server that turned read-only are let go, so the pool reconnects.

A failover that demotes the old primary in place leaves pooled connections open to a server that
refuses every write. Here a connection is made read-only by its own session
(``SET default_transaction_read_only = on``, which the pool keeps, as it keeps every session
setting): the same error class, "cannot execute ... in a read-only transaction", without touching
the shared server. The chaos suite demotes a whole server (``tests/chaos/test_demoted_primary.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from docko_worker import Config, Job, JobState, Queue
from docko_worker.pool import connect
from docko_worker.waker import Waker
from tests.integration.support import running_queue, wait_for_state, wait_until

READ_ONLY = "SET default_transaction_read_only = on"


async def noop(job: Job) -> None:
    return None


async def make_read_only(pool: Any, connections: int) -> set[int]:
    """Turn ``connections`` of ``pool``'s connections read-only; returns their backend pids."""
    lent = [await pool.acquire() for _ in range(connections)]
    try:
        for conn in lent:
            await conn.execute(READ_ONLY)
        return {conn.get_server_pid() for conn in lent}
    finally:
        for conn in lent:
            await pool.release(conn)


async def backends_gone(db: asyncpg.Connection, pids: set[int]) -> bool:
    alive = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
    )
    return alive == 0


async def test_an_enqueue_refused_as_read_only_replaces_the_producers_connection(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await queue.enqueue("default", "ocr", {"n": 0})
    old = await make_read_only(queue.pool, 1)
    with capture_logs() as logs, pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await queue.enqueue("default", "ocr", {"n": 1})
    assert [e for e in logs if e["event"] == "server_read_only_reconnecting"]
    await wait_until(lambda: backends_gone(db, old), message="the read-only connection closed")
    # The same queue, no restart: the next enqueue runs on a new connection.
    job = await queue.enqueue("default", "ocr", {"n": 2})
    assert job.state is JobState.AVAILABLE
    async with queue.pool.acquire() as conn:
        assert conn.get_server_pid() not in old


async def test_a_daemon_whose_claims_are_refused_as_read_only_reconnects_and_runs_jobs(
    make_config: Callable[..., Config], queue: Queue, db: asyncpg.Connection
) -> None:
    config = make_config(pool_size=2)
    async with running_queue(config, {"ocr": noop}) as daemon:
        # Every connection of the daemon's pool: its claims, outcome writes and sweeps.
        old = await make_read_only(daemon.pool, 2)
        with capture_logs() as logs:
            job = await queue.enqueue("default", "ocr", {"n": 1})
            await wait_for_state(queue, job.id, JobState.COMPLETED)
        assert [e for e in logs if e["event"] == "server_read_only_reconnecting"]
        await wait_until(lambda: backends_gone(db, old), message="the read-only connections closed")


async def test_the_waker_refuses_a_read_only_server_and_listens_on_the_next(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    made: list[Any] = []

    async def first_one_read_only() -> Any:
        conn = await connect(config)
        if not made:
            await conn.execute(READ_ONLY)
        made.append(conn)
        return conn

    waker = Waker(config, first_one_read_only, lambda _queue: None, max_backoff=0.05)
    with capture_logs() as logs:
        task = asyncio.create_task(waker.run())
        try:
            await asyncio.wait_for(waker.connected.wait(), 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    failed = [e for e in logs if e["event"] == "listen_connect_failed"]
    assert len(failed) == 1
    assert "read-only" in failed[0]["error"]
    assert len(made) == 2
    assert made[0].is_closed()
