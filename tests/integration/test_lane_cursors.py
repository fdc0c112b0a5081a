"""Claims start each lane where its claimable jobs begin (docko_worker/lanes.py), and never leave
a job behind that a notification announced: a job enqueued in a transaction that committed after
later jobs ran, and a job of a better priority than those claimed so far, each run at once, not
at the next claim that reads every lane from its start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from docko_worker import Config, Job, JobState, Queue
from docko_worker.lanes import FULL_CLAIM_INTERVAL
from docko_worker.registry import Handler
from tests.integration.support import count_jobs, running_queue, supervisor_of, wait_for_state
from tests.waiting import wait_until

# Far longer than the tests wait: a job that runs was woken for, not polled for.
SLOW_POLL = 600.0
# Well inside FULL_CLAIM_INTERVAL: a job found within it was not found by a claim from the start.
PROMPTLY = FULL_CLAIM_INTERVAL / 2


async def _noop(job: Job) -> None:
    return None


@asynccontextmanager
async def _listening_daemon(
    make_config: Callable[..., Config], handlers: Mapping[str, Handler] | None = None
) -> AsyncIterator[Queue]:
    """A daemon (no-op ``ocr`` handler by default) that polls rarely, once it listens."""
    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with running_queue(config, dict(handlers or {"ocr": _noop})) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        yield queue


async def _run_some(queue: Queue, count: int, priority: int = 0) -> None:
    ids = await queue.enqueue_many("default", "ocr", [{}] * count, priority=priority)
    for job_id in ids:
        await wait_for_state(queue, job_id, JobState.COMPLETED, timeout=15)


async def test_a_job_enqueued_in_a_transaction_that_committed_late_runs_at_once(
    make_config: Callable[..., Config], database_url: str
) -> None:
    async with _listening_daemon(make_config) as queue:
        producer = await asyncpg.connect(database_url)
        try:
            transaction = producer.transaction()
            await transaction.start()
            late = await queue.enqueue("default", "ocr", {}, conn=producer)  # due at BEGIN
            await asyncio.sleep(0.05)
            await _run_some(queue, 5)  # due after it: the lane's cursor moves past it
            await transaction.commit()
        finally:
            await producer.close()
        await wait_for_state(queue, late.id, JobState.COMPLETED, timeout=PROMPTLY)


async def test_a_job_of_a_better_priority_than_those_claimed_runs_at_once(
    make_config: Callable[..., Config],
) -> None:
    async with _listening_daemon(make_config) as queue:
        await _run_some(queue, 5, priority=5)
        urgent = await queue.enqueue("default", "ocr", {}, priority=0)
        await wait_for_state(queue, urgent.id, JobState.COMPLETED, timeout=PROMPTLY)


async def test_every_job_runs_once_while_a_snapshot_is_held(
    make_config: Callable[..., Config], database_url: str
) -> None:
    """A session idle in a transaction holding a snapshot: vacuum and the index's own clean-up
    keep every claimed job's entry, and the claims start past them."""
    ran: list[Job] = []

    async def record(job: Job) -> None:
        ran.append(job)

    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await holder.fetchval("SELECT count(*) FROM docko_jobs")
        async with _listening_daemon(make_config, {"ocr": record}) as queue:
            for _ in range(20):
                await queue.enqueue_many("default", "ocr", [{}] * 25)
                await asyncio.sleep(0.01)

            async def all_completed() -> bool:
                return await count_jobs(queue, state="completed") == 500

            await wait_until(all_completed, timeout=30, interval=0.05)
    finally:
        await holder.close()
    assert len(ran) == len({job.id for job in ran}) == 500


async def test_a_job_handed_back_by_a_stopping_daemon_is_claimed_at_once_by_another(
    make_config: Callable[..., Config],
) -> None:
    """Handed back, a job keeps its due time, behind the cursor of a daemon that has claimed
    later jobs since; the hand-back is announced like an enqueue, so an idle daemon polling
    rarely claims it at once."""
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()  # until the shutdown cancels it

    stopping = make_config(worker_count=1, shutdown_timeout=0.2, poll_interval=0.05)
    busy_context: Any = running_queue(stopping, {"ocr": stuck})
    busy = await busy_context.__aenter__()
    try:
        job = await busy.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        async with _listening_daemon(make_config) as idle:
            # Due after it: the idle daemon's cursor moves past it (the busy one has no free slot).
            await _run_some(idle, 5)
            stopped, busy_context = busy_context, None
            await stopped.__aexit__(None, None, None)  # hands the job back
            await wait_for_state(idle, job.id, JobState.COMPLETED, timeout=PROMPTLY)
    finally:
        if busy_context is not None:
            await busy_context.__aexit__(None, None, None)
