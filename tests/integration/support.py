"""Helpers for the integration tests: running queues, waiting for a job's state, job look-ups.

Imported as ``tests.integration.support`` (the project root is on ``sys.path``), so the name
cannot clash with a helper module of another test directory. ``wait_until`` is the one of
``tests/waiting.py``, re-exported here for the tests that import it from this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import pytest

from docko_worker import Config, Job, JobState, Queue
from docko_worker.registry import Handler
from docko_worker.store import JobStore
from docko_worker.supervisor import Supervisor
from tests.waiting import poll, wait_until

__all__ = [
    "count_jobs",
    "running_queue",
    "store_of",
    "supervisor_of",
    "wait_for_state",
    "wait_until",
]


async def wait_for_state(
    queue: Queue,
    job_id: UUID,
    state: JobState,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> Job:
    """Wait until the stored job is in ``state``; returns it."""
    last: list[Job | None] = [None]

    async def reached() -> Job | None:
        job = await queue.get_job(job_id)
        last[0] = job
        return job if job is not None and job.state is state else None

    found = await poll(reached, timeout)
    if found is None:
        job = last[0]
        seen = "missing" if job is None else f"{job.state.value} (attempt {job.attempt})"
        pytest.fail(
            f"job {job_id} did not reach {state.value} within {timeout:g}s; last seen {seen}"
        )
    return found


@asynccontextmanager
async def running_queue(
    config: Config,
    handlers: Mapping[str, Handler],
    *,
    queues: Sequence[str] | None = None,
    timeouts: Mapping[str, float] | None = None,
) -> AsyncIterator[Queue]:
    """A started queue with its own pool and ``handlers``; stopped and closed on exit."""
    async with await Queue.connect(config) as queue:
        for job_type, handler in handlers.items():
            queue.register_handler(job_type, handler, timeout=(timeouts or {}).get(job_type))
        await queue.start(queues)
        yield queue


async def count_jobs(queue: Queue, **where: Any) -> int:
    """Rows in ``docko_jobs``, optionally filtered by column equality."""
    clauses = " AND ".join(f"{column} = ${i}" for i, column in enumerate(where, start=1))
    sql = "SELECT count(*) FROM docko_jobs" + (f" WHERE {clauses}" if clauses else "")
    return int(await queue.pool.fetchval(sql, *where.values()))


def supervisor_of(queue: Queue) -> Supervisor:
    """The running daemon inside ``queue``: the tests' one look behind the public surface."""
    supervisor = queue._supervisor
    assert supervisor is not None, "the queue has not been started"
    return supervisor


def store_of(queue: Queue) -> JobStore:
    """Named-statement access on the queue's own pool."""
    return JobStore(queue.pool)
