"""LISTEN/NOTIFY wake-ups: an idle daemon runs a new job long before its next poll, poll-only mode
(``listen=False``) still runs jobs, and the waker reconnects after its backend is terminated."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from docko_worker import Config, Job, JobState, Queue
from docko_worker.pool import APPLICATION_NAME, connect
from docko_worker.waker import Waker
from tests.integration.support import running_queue, supervisor_of, wait_for_state, wait_until

# Idle daemons poll this rarely, so a job that starts promptly was woken by its NOTIFY.
SLOW_POLL = 5.0
# Generous against SLOW_POLL: a behaviour check that the wake-up works, not a latency target.
PROMPTLY = 2.5

# The waker's connection: the daemon's application name, and its last statement a LISTEN (or the
# waker's idle ping); pool connections run claims and pool resets instead.
WAKER_BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1
  AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')
ORDER BY pid
"""


async def noop(job: Job) -> None:
    return None


async def waker_pids(db: asyncpg.Connection) -> list[int]:
    return [row["pid"] for row in await db.fetch(WAKER_BACKENDS, APPLICATION_NAME)]


async def runs_promptly(queue: Queue, name: str) -> None:
    job = await queue.enqueue("default", "ocr", {"name": name})
    await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=PROMPTLY)


async def test_notify_wakes_an_idle_daemon_before_its_poll(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with running_queue(config, {"ocr": noop}) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        # The first job may be picked up by the wake-up the waker gives on connecting; by the
        # second the daemon has gone back to sleeping for SLOW_POLL.
        await runs_promptly(queue, "first")
        await runs_promptly(queue, "second")
        await runs_promptly(queue, "third")


async def test_poll_only_mode_runs_jobs_without_listening(
    make_config: Callable[..., Config], db: asyncpg.Connection
) -> None:
    # The PgBouncer (transaction mode) settings: no LISTEN, no prepared-statement cache.
    config = make_config(poll_interval=0.2, listen=False, statement_cache_size=0)
    async with running_queue(config, {"ocr": noop}) as queue:
        assert supervisor_of(queue).waker is None
        for name in ("first", "second"):
            job = await queue.enqueue("default", "ocr", {"name": name})
            await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=5)
        listening = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query ILIKE 'LISTEN%'"
        )
    assert listening == 0


async def test_waker_reconnects_after_its_backend_is_terminated(
    make_config: Callable[..., Config], db: asyncpg.Connection
) -> None:
    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with running_queue(config, {"ocr": noop}) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        [old_pid] = await wait_until(lambda: waker_pids(db), message="the waker's backend")

        assert await db.fetchval("SELECT pg_terminate_backend($1)", old_pid)

        async def reconnected() -> list[int]:
            pids = await waker_pids(db)
            return pids if waker.connected.is_set() and pids and old_pid not in pids else []

        new_pids = await wait_until(reconnected, timeout=15, message="the waker reconnecting")
        assert len(new_pids) == 1
        await runs_promptly(queue, "after-reconnect-1")
        await runs_promptly(queue, "after-reconnect-2")


async def test_waker_reconnects_at_once_when_told_the_database_is_back(
    make_config: Callable[..., Config],
) -> None:
    """Before: its backoff had grown to many seconds by the time the server answered again, and
    jobs waited for the poll meanwhile."""
    config = make_config(listen=True)
    refusals = 1

    async def flaky_connect() -> asyncpg.Connection:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise ConnectionRefusedError(111, "the database is restarting")
        return await connect(config)

    waker = Waker(
        config, flaky_connect, lambda _queue: None, base_backoff=600.0, max_backoff=3600.0
    )
    task = asyncio.create_task(waker.run())
    try:
        await wait_until(lambda: refusals == 0, message="a refused connection")
        # That failure's backoff is ten minutes; the daemon's pool reaching the database cuts it.
        waker.retry_now()
        await asyncio.wait_for(waker.connected.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
