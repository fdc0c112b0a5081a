"""Job handlers for docko-worker's end-to-end tests, loaded through entry points.

Each handler records its execution in the table ``e2e_runs`` of the daemon's own database
(``DOCKO_DATABASE_URL``): one row per attempt, inserted when the handler starts and stamped with
``finished_at`` when it returns. The tests create the table and read it to see which process ran
which attempt, and whether a handler was interrupted.

``e2e_block_sync`` and ``e2e_block_sync_timed`` are plain defs, run in the daemon's threads: they
record through psycopg and block in ``time.sleep``; the second carries a 1 s timeout.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

import asyncpg

from docko_worker import handler_options

if TYPE_CHECKING:
    from docko_worker import Job


async def _execute(query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(os.environ["DOCKO_DATABASE_URL"])
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _started(job: Job) -> int:
    run_id: int = await _execute(
        "INSERT INTO e2e_runs (job_id, attempt, pid) VALUES ($1, $2, $3) RETURNING run_id",
        job.id,
        job.attempt,
        os.getpid(),
    )
    return run_id


async def _finished(run_id: int) -> None:
    await _execute("UPDATE e2e_runs SET finished_at = clock_timestamp() WHERE run_id = $1", run_id)


async def e2e_ok(job: Job) -> None:
    """Succeeds at once."""
    await _finished(await _started(job))


async def e2e_slow(job: Job) -> None:
    """Sleeps ``payload["seconds"]``; from the second attempt on, ``payload["retry_seconds"]``
    if given (so a job killed mid-run finishes quickly when it runs again)."""
    payload = job.payload
    seconds = payload["seconds"]
    if job.attempt > 1:
        seconds = payload.get("retry_seconds", seconds)
    run_id = await _started(job)
    await asyncio.sleep(float(seconds))
    await _finished(run_id)


async def e2e_fail(job: Job) -> None:
    """Always raises."""
    await _started(job)
    raise RuntimeError(f"e2e_fail failed on attempt {job.attempt}")


def _record_sync(query: str, *args: Any) -> Any:
    import psycopg

    with psycopg.connect(os.environ["DOCKO_DATABASE_URL"], autocommit=True) as conn:
        row = conn.execute(query, args).fetchone()
        return None if row is None else row[0]


def e2e_block_sync(job: Job) -> None:
    """Blocks its thread in ``time.sleep(payload["seconds"])``."""
    run_id = _record_sync(
        "INSERT INTO e2e_runs (job_id, attempt, pid) VALUES (%s, %s, %s) RETURNING run_id",
        job.id,
        job.attempt,
        os.getpid(),
    )
    time.sleep(float(job.payload["seconds"]))
    _record_sync(
        "UPDATE e2e_runs SET finished_at = clock_timestamp() WHERE run_id = %s RETURNING run_id",
        run_id,
    )


@handler_options(timeout=1)
def e2e_block_sync_timed(job: Job) -> None:
    """``e2e_block_sync`` with a timeout of 1 s."""
    e2e_block_sync(job)


async def e2e_block(job: Job) -> None:
    """Blocks the daemon's event loop for ``payload["seconds"]`` (a blocking call in a handler)."""
    run_id = await _started(job)
    time.sleep(float(job.payload["seconds"]))  # noqa: ASYNC251 - blocking on purpose
    await _finished(run_id)
