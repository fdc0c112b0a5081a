"""Job handlers for docko-worker's fault-injection tests, loaded through entry points.

Every handler records each execution in the table ``chaos_runs`` (see
``tests/chaos/chaos_checker.py``): a row is inserted *before* any work, with the job id, the
attempt and the pid of the daemon running it, and stamped with ``finished_at`` and an ``outcome``
at the end. A run whose daemon was killed therefore stays started-but-not-finished, which is how
the checker tells an interrupted execution from a completed one.

The recording connection is not the daemon's: it is a small pool of this package's own, with
``application_name = 'chaos-handler'`` (so terminating the daemon's backends leaves it alone),
reaching ``CHAOS_RUNS_DSN`` if set (tests that route the daemon through PgBouncer or a restricted
role still record through a plain superuser connection) or else ``DOCKO_DATABASE_URL``. Recording
writes are idempotent (client-side run ids) and retried while the database is unreachable, so a
PostgreSQL restart delays a record but never loses it.

``chaos_work``, the workload, fails an attempt deterministically, per (job id, attempt) hash, about
``CHAOS_FAIL_PERCENT`` (default 10) per cent of the time, and sleeps 0-50 ms, also per hash.

``chaos_once`` (async, asyncpg) and ``chaos_once_sync`` (a plain def, psycopg, run in the daemon's
threads) complete their jobs in their own transaction: after recording their start, they sleep
0-50 ms, then in one transaction insert the job's row into ``chaos_effects``, stamp their run
finished, and ``complete`` the job. The effect, the run's ``ok`` and the job's ``completed``
commit together or not at all; an attempt that lost the job raises ``LeaseLost`` and rolls back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

import docko_worker
from docko_worker import PermanentError

if TYPE_CHECKING:
    from docko_worker import Job

T = TypeVar("T")

RUNS_DSN_ENV = "CHAOS_RUNS_DSN"
APPLICATION_NAME = "chaos-handler"
# Seconds a recording write is retried while the database does not answer.
RECORD_DEADLINE = 60.0

_RETRYABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    # Seen when the server goes away mid-statement: "cannot switch to state 12; another
    # operation (2) is in progress".
    asyncpg.InternalClientError,
)

_pool: Any = None
_pool_lock: asyncio.Lock | None = None


class ChaosFailure(RuntimeError):
    """The simulated failure of an attempt (retried by the daemon)."""


class BadPayload(PermanentError):
    """A payload the handler cannot use at all (the job fails at once)."""


async def _get_pool() -> Any:
    global _pool, _pool_lock
    if _pool is not None:
        return _pool
    if _pool_lock is None:
        _pool_lock = asyncio.Lock()
    async with _pool_lock:
        if _pool is None:
            dsn = os.environ.get(RUNS_DSN_ENV) or os.environ["DOCKO_DATABASE_URL"]
            _pool = await asyncpg.create_pool(
                dsn,
                # No floor to restore: asyncpg's own reconnect messages then come from the
                # daemon's pool only.
                min_size=0,
                max_size=int(os.environ.get("CHAOS_RUNS_POOL_SIZE", "4")),
                server_settings={"application_name": APPLICATION_NAME},
                timeout=5,
            )
    return _pool


async def _record(query: str, *args: Any) -> None:
    deadline = time.monotonic() + RECORD_DEADLINE
    delay = 0.05
    while True:
        try:
            pool = await _get_pool()
            await pool.execute(query, *args)
            return
        except _RETRYABLE:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


async def _started(job: Job) -> uuid.UUID:
    run_id = uuid.uuid4()
    await _record(
        "INSERT INTO chaos_runs (run_id, job_id, attempt, pid) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (run_id) DO NOTHING",
        run_id,
        job.id,
        job.attempt,
        os.getpid(),
    )
    return run_id


async def _finished(run_id: uuid.UUID, outcome: str) -> None:
    await _record(
        "UPDATE chaos_runs SET finished_at = clock_timestamp(), outcome = $2 WHERE run_id = $1",
        run_id,
        outcome,
    )


def roll(job_id: uuid.UUID, attempt: int) -> bytes:
    """The deterministic dice of one attempt."""
    return hashlib.sha256(f"{job_id}:{attempt}".encode()).digest()


def attempt_fails(job_id: uuid.UUID, attempt: int) -> bool:
    percent = float(os.environ.get("CHAOS_FAIL_PERCENT", "10"))
    return roll(job_id, attempt)[0] < round(256 * percent / 100)


def _parse(payload: Any) -> tuple[int, float]:
    """``(n, slow)`` from a workload payload; ``BadPayload`` or ``TypeError`` when unusable."""
    if not isinstance(payload, dict):
        raise BadPayload(f"payload must be a JSON object, got {type(payload).__name__}")
    if "n" not in payload:
        raise BadPayload(f"payload has no 'n' (keys: {sorted(payload)})")
    n = payload["n"]
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"payload 'n' must be an integer, got {type(n).__name__}")
    slow = payload.get("slow", 0)
    if not isinstance(slow, int | float) or isinstance(slow, bool):
        raise TypeError(f"payload 'slow' must be a number, got {type(slow).__name__}")
    return n, float(slow)


async def chaos_work(job: Job) -> None:
    """The workload: record, parse, sleep 0-50 ms, fail about 10 % of attempts, record."""
    run_id = await _started(job)
    try:
        _, slow = _parse(job.payload)
    except BadPayload:
        await _finished(run_id, "permanent")
        raise
    except TypeError:
        await _finished(run_id, "fail")
        raise
    dice = roll(job.id, job.attempt)
    seconds = (dice[1] % 51) / 1000
    if os.environ.get("CHAOS_SLOW") == "1":
        seconds += slow
    await asyncio.sleep(seconds)
    if attempt_fails(job.id, job.attempt):
        await _finished(run_id, "fail")
        raise ChaosFailure(f"simulated failure of job {job.id}, attempt {job.attempt}")
    await _finished(run_id, "ok")


async def _regardless(step: Awaitable[T]) -> tuple[T, int]:
    """Await ``step`` to its end whatever cancellations arrive; returns it and how many came."""
    task = asyncio.ensure_future(step)
    ignored = 0
    while True:
        try:
            return await asyncio.shield(task), ignored
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            ignored += 1


async def chaos_stubborn(job: Job) -> None:
    """On attempt 1, swallows every cancellation for ``payload["ignore_for"]`` seconds (its
    recording writes included), then records ``ignored_cancel`` if it was cancelled."""
    if job.attempt > 1:
        await _finished(await _started(job), "ok")
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(job.payload["ignore_for"])
    run_id, ignored = await _regardless(_started(job))
    while (left := deadline - loop.time()) > 0:
        try:
            await asyncio.sleep(min(left, 0.1))
        except asyncio.CancelledError:
            ignored += 1  # the point of this handler: keep going regardless
    _, more = await _regardless(_finished(run_id, "ignored_cancel" if ignored else "ok"))
    del more


async def chaos_block(job: Job) -> None:
    """On attempt 1, blocks the event loop with ``time.sleep(payload["block"])``."""
    run_id = await _started(job)
    if job.attempt == 1:
        time.sleep(float(job.payload["block"]))  # noqa: ASYNC251 - blocking on purpose
    await _finished(run_id, "ok")


class _Unprintable(Exception):
    """An error whose message cannot be read: its ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("this error has no text")


class _NotAnException(BaseException):
    """What some libraries raise: a ``BaseException`` that is not an ``Exception``."""


HOSTILE_SHAPES = ("unprintable", "own_cancel", "system_exit", "base_exception", "nul", "surrogate")
# Attempts that raise before one succeeds.
HOSTILE_FAILING_ATTEMPTS = 2


async def _raise_shape(shape: str, job: Job) -> None:
    if shape == "unprintable":
        raise _Unprintable()
    if shape == "own_cancel":
        # A task something else cancelled, awaited: the CancelledError is the handler's own.
        task = asyncio.ensure_future(asyncio.sleep(10))
        task.cancel()
        await task
    if shape == "system_exit":
        raise SystemExit(f"a library gave up on job {job.id}")
    if shape == "base_exception":
        raise _NotAnException(f"job {job.id}")
    if shape == "nul":
        raise ValueError(f"bad header PK\x00\x03 in job {job.id}")
    if shape == "surrogate":
        raise FileNotFoundError(f"scan-caf\udce9-{job.id}.tiff")
    raise AssertionError(f"unknown shape {shape!r}")


async def chaos_hostile(job: Job) -> None:
    """Ends its first attempts with one of ``HOSTILE_SHAPES`` (payload ``shape``), then succeeds."""
    run_id = await _started(job)
    await asyncio.sleep((roll(job.id, job.attempt)[1] % 31) / 1000)
    if job.attempt <= HOSTILE_FAILING_ATTEMPTS:
        await _finished(run_id, "fail")
        await _raise_shape(job.payload["shape"], job)
    await _finished(run_id, "ok")


EFFECT = "INSERT INTO chaos_effects (job_id, attempt, pid) VALUES ($1, $2, $3)"


def _pause(job: Job) -> float:
    return (roll(job.id, job.attempt)[1] % 51) / 1000


async def chaos_once(job: Job) -> None:
    """Effect, run record and completion in one asyncpg transaction."""
    run_id = await _started(job)
    await asyncio.sleep(_pause(job))
    pool = await _get_pool()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(EFFECT, job.id, job.attempt, os.getpid())
        await conn.execute(
            "UPDATE chaos_runs SET finished_at = clock_timestamp(), outcome = 'ok'"
            " WHERE run_id = $1",
            run_id,
        )
        await job.complete(conn)


_local = threading.local()


def _psycopg_connection() -> Any:
    """This thread's own psycopg connection (the daemon's handler threads live on)."""
    import psycopg

    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        dsn = os.environ.get(RUNS_DSN_ENV) or os.environ["DOCKO_DATABASE_URL"]
        conn = psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME)
        _local.conn = conn
    return conn


def chaos_once_sync(job: Job) -> None:
    """``chaos_once`` as a plain def: psycopg, in one of the daemon's threads."""
    conn = _psycopg_connection()
    run_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO chaos_runs (run_id, job_id, attempt, pid) VALUES (%s, %s, %s, %s)",
        [run_id, job.id, job.attempt, os.getpid()],
    )
    time.sleep(_pause(job))
    with conn.transaction():
        conn.execute(
            "INSERT INTO chaos_effects (job_id, attempt, pid) VALUES (%s, %s, %s)",
            [job.id, job.attempt, os.getpid()],
        )
        conn.execute(
            "UPDATE chaos_runs SET finished_at = clock_timestamp(), outcome = 'ok'"
            " WHERE run_id = %s",
            [run_id],
        )
        docko_worker.complete(conn, job)


async def chaos_tick(job: Job) -> None:
    """The periodic job's handler (see ``schedules.py``): its slot is its ``run_at``; nothing to
    record."""
    del job
