"""docko-worker's producers on a caller's own connection: enqueue rates through asyncpg and
psycopg, the way a web application enqueues.

Per driver, in a fresh migrated database: ``singles`` jobs each enqueued in a transaction of its
own (begin, ``enqueue``, commit: one request's work), and ``jobs`` jobs through the bulk call,
5,000 per call, each call in a transaction. asyncpg goes through ``docko_worker.enqueue_async``
and ``enqueue_many_async``, psycopg 3 through the sync ``docko_worker.enqueue`` and
``enqueue_many`` (called right on the harness's thread: nothing else runs meanwhile). The jobs
table is emptied between the drivers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncpg

from .adapters.base import JOB_TYPE, QUEUE, payload
from .adapters.docko import Docko
from .db import scratch_database

CHUNK = 5000
DRIVERS = ("asyncpg", "psycopg")


def _rate(count: int, started: float) -> float:
    return count / (time.perf_counter() - started)


async def _asyncpg(dsn: str, jobs: int, singles: int) -> dict[str, float]:
    import docko_worker

    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for seq in range(singles):
            async with conn.transaction():
                await docko_worker.enqueue_async(conn, QUEUE, JOB_TYPE, payload(seq, time.time()))
        single = _rate(singles, started)
        items = [payload(seq, time.time()) for seq in range(jobs)]
        started = time.perf_counter()
        for offset in range(0, jobs, CHUNK):
            async with conn.transaction():
                await docko_worker.enqueue_many_async(
                    conn, QUEUE, JOB_TYPE, items[offset : offset + CHUNK]
                )
        return {"single": single, "bulk": _rate(jobs, started)}
    finally:
        await conn.close()


def _psycopg(dsn: str, jobs: int, singles: int) -> dict[str, float]:
    import psycopg

    import docko_worker

    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for seq in range(singles):
            with conn.transaction():
                docko_worker.enqueue(conn, QUEUE, JOB_TYPE, payload(seq, time.time()))
        single = _rate(singles, started)
        items = [payload(seq, time.time()) for seq in range(jobs)]
        started = time.perf_counter()
        for offset in range(0, jobs, CHUNK):
            with conn.transaction():
                docko_worker.enqueue_many(conn, QUEUE, JOB_TYPE, items[offset : offset + CHUNK])
        return {"single": single, "bulk": _rate(jobs, started)}


async def measure_producers(
    admin_dsn: str, jobs: int, singles: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Single (one transaction each) and bulk enqueue rates, jobs/s, per driver."""
    result: dict[str, Any] = {"jobs": jobs, "singles": singles}
    async with scratch_database(admin_dsn, "docko_producers") as dsn:
        await Docko(retention=0).install(dsn)
        admin = await asyncpg.connect(dsn)
        try:
            for driver in DRIVERS:
                await admin.execute("TRUNCATE docko_jobs")
                await admin.execute("VACUUM ANALYZE docko_jobs")
                if driver == "asyncpg":
                    rates = await _asyncpg(dsn, jobs, singles)
                else:
                    rates = _psycopg(dsn, jobs, singles)
                result[driver] = rates
                log(
                    f"  producers, {driver}: single {rates['single']:,.0f} jobs/s "
                    f"(one transaction each), bulk {rates['bulk']:,.0f} jobs/s"
                )
        finally:
            await admin.close()
    return result
