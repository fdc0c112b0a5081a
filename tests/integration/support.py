"""Helpers for the integration tests: polling with a deadline, running queues, job look-ups.

Imported as ``tests.integration.support`` (the project root is on ``sys.path``), so the name
cannot clash with a helper module of another test directory.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

from docko_worker import Config, Job, JobState, Queue
from docko_worker.registry import Handler

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    *,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """Poll ``predicate`` (sync or async) until it returns something truthy, and return that.

    Fails the test with ``message`` (or the predicate's name) if ``timeout`` seconds pass first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if loop.time() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout:g}s waiting for: {what}")
        await asyncio.sleep(interval)


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

    try:
        return await wait_until(reached, timeout)
    except AssertionError:
        job = last[0]
        seen = "missing" if job is None else f"{job.state.value} (attempt {job.attempt})"
        raise AssertionError(
            f"job {job_id} did not reach {state.value} within {timeout:g}s; last seen {seen}"
        ) from None


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
