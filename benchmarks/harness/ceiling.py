"""The ceiling: docko-worker's own claim and delete statements in a bare loop, no daemon.

On one asyncpg connection to a fresh database, under the daemon's generic plans, the same
``--jobs`` no-op jobs the burn-down uses are claimed 1,000 at a time (the daemon's
``DOCKO_CLAIM_BATCH_SIZE`` in the benchmark) and each claimed batch deleted at once
(``delete_completed_jobs``, the completion of ``DOCKO_COMPLETED_RETENTION=0``), until a claim
returns nothing. No handler, no pool, no concurrency: what the database does for the statements
alone, which the daemon's processing rate after its first job is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg

from .adapters.base import JOB_TYPE, QUEUE
from .adapters.docko import Docko
from .db import checkpoint, scratch_database
from .scenarios import measure_enqueue

Log = Callable[[str], None]

# The lease the claim sets, in seconds (the daemon's default DOCKO_VISIBILITY_TIMEOUT).
LEASE_SECONDS = 60.0
WORKER_ID = "bench-bare-loop"


async def claim_delete_loop(conn: Any, batch: int) -> dict[str, Any]:
    """Claim up to ``batch`` jobs and delete them, until a claim returns none; timed from the
    first claim (statements prepared beforehand, as a running daemon has them)."""
    from docko_worker.lanes import Lanes
    from docko_worker.statements import SQL

    lane = Lanes([QUEUE], [JOB_TYPE]).bounds(from_start=True)
    claim = await conn.prepare(SQL.claim_jobs)
    delete = await conn.prepare(SQL.delete_completed_jobs)
    claims = deleted = 0
    claim_seconds = 0.0
    started = time.perf_counter()
    while True:
        before = time.perf_counter()
        # $1 lane queues, $2 lane job types, $3 limit, $4 worker id, $5 lease seconds, and
        # where each lane begins ($6 priority, $7 due time): here, from its start.
        rows = await claim.fetch(
            lane.queues,
            lane.job_types,
            batch,
            WORKER_ID,
            LEASE_SECONDS,
            lane.after_priority,
            lane.after_run_at,
        )
        claim_seconds += time.perf_counter() - before
        claims += 1
        if not rows:
            break
        done = await delete.fetch([row["id"] for row in rows], [row["attempt"] for row in rows])
        deleted += len(done)
    seconds = time.perf_counter() - started
    return {
        "jobs": deleted,
        "seconds": seconds,
        "rate": deleted / seconds if seconds > 0 else None,
        "claims": claims,
        "claim_seconds": claim_seconds,
        "batch": batch,
    }


async def measure_bare_loop(admin_dsn: str, jobs: int, run: int, log: Log) -> dict[str, Any]:
    """``jobs`` enqueued through ``Queue.enqueue_many`` (as for the burn-down), ``CHECKPOINT``,
    then the bare claim-and-delete loop."""
    system = Docko(retention=0)
    async with scratch_database(admin_dsn, "docko_bare") as dsn:
        await system.install(dsn)
        await system.open(dsn)
        try:
            enqueue = await measure_enqueue(system, jobs)
        finally:
            await system.close()
        checkpoint_seconds = await checkpoint(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            from docko_worker.statements import SQL

            await conn.execute(SQL.use_generic_plans)
            loop = await claim_delete_loop(conn, system.claim_batch)
        finally:
            await conn.close()
    loop["checkpoint_seconds"] = checkpoint_seconds
    loop["exactly_once"] = loop["jobs"] == jobs
    log(
        f"  docko bare claim-and-delete loop (run {run}): {loop['rate'] or 0:,.0f} jobs/s "
        f"({loop['claims']} claims, {loop['jobs']:,} deleted)"
    )
    return {"enqueue": enqueue, "bare_loop": loop}
