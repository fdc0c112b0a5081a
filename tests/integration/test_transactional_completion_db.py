"""A running daemon whose handlers complete their jobs in their own transactions.

The handler's writes and its job's ``completed`` commit together; the daemon then writes no
outcome over it and reports no lost lease. A handler whose transaction rolls back and which
returns normally still has its job completed, by the daemon. Sync handlers do the same through
psycopg, from their thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import psycopg
import pytest
from structlog.testing import capture_logs

import docko_worker
from docko_worker import Config, Job, JobState
from tests.integration.producer_drivers import SIDE_EFFECTS
from tests.integration.support import running_queue, supervisor_of, wait_for_state, wait_until


class Rollback(Exception):
    pass


@pytest.fixture
async def side_effects(db: asyncpg.Connection) -> AsyncIterator[None]:
    await db.execute(SIDE_EFFECTS)
    yield


async def side_rows(db: asyncpg.Connection, job: Job) -> int:
    return int(await db.fetchval("SELECT count(*) FROM side_effects WHERE job_id = $1", job.id))


async def test_handlers_that_complete_in_their_own_transaction(
    make_config: Callable[..., Config],
    database_url: str,
    db: asyncpg.Connection,
    side_effects: None,
) -> None:
    handled: list[Job] = []

    async def in_transaction(job: Job) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO side_effects (job_id) VALUES ($1)", job.id)
                await job.complete(conn)
        finally:
            await conn.close()
        handled.append(job)

    def sync_in_transaction(job: Job) -> None:
        with psycopg.connect(database_url) as conn, conn.transaction():
            conn.execute("INSERT INTO side_effects (job_id) VALUES (%s)", [job.id])
            docko_worker.complete(conn, job)
        handled.append(job)

    async def rolled_back(job: Job) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO side_effects (job_id) VALUES ($1)", job.id)
                await docko_worker.complete_async(conn, job)
                raise Rollback
        except Rollback:
            pass  # the handler gives up on its transaction, and returns normally
        finally:
            await conn.close()
        handled.append(job)

    handlers = {"tx": in_transaction, "sync_tx": sync_in_transaction, "undone": rolled_back}
    with capture_logs() as logs:
        async with running_queue(make_config(), handlers) as queue:
            jobs = [await queue.enqueue("default", kind, {}) for kind in handlers]
            for job in jobs:
                await wait_for_state(queue, job.id, JobState.COMPLETED)
            await wait_until(lambda: queue.idle, message="every outcome written")
            totals = supervisor_of(queue).completer.totals
    assert {job.job_type for job in handled} == set(handlers)
    assert all(job.completed_in_transaction for job in handled)
    tx, sync_tx, undone = jobs
    assert [await side_rows(db, job) for job in (tx, sync_tx, undone)] == [1, 1, 0]
    # Two completions were the handlers' own; the daemon's guarded write completed the third.
    assert (totals.completed_in_transaction, totals.refused, totals.written) == (2, 0, 1)
    events = [entry["event"] for entry in logs]
    assert "outcome_refused_lease_lost" not in events
    assert "lease_lost" not in events
