"""The machinery of the chaos tests: the chaos daemons' settings and waits, the workload.

Daemons are real ``docko-worker run`` processes (``tests/daemon_process.py``) started with a minimal
environment (process basics, ``PYTHONPATH`` naming the installed chaos handler package, and the
``DOCKO_*`` settings of the test; never a variable of the caller's), held by a ``Fleet`` and waited
on asynchronously through ``tests/waiting.py``, with the fleet as the watch: a daemon that exits
without being signalled fails the test at once.
The test's own database connections use application names other than ``docko-worker``, so a fault
aimed at the daemons' backends never hits the test.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from chaos_checker import Faults, Result, check, collect

from docko_worker import Queue, load_config
from tests.daemon_process import DaemonProcess, Fleet, with_settings
from tests.waiting import poll, wait_until

QUEUE = "chaos"
WORK = "chaos_work"
TEST_APPLICATION = "chaos-test"
PRODUCER_APPLICATION = "chaos-producer"
# Generous: a working fleet needs a fraction of it, a slow CI machine is not a failure.
FINISH_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0

RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS chaos_runs (
    run_id      uuid        PRIMARY KEY,
    job_id      uuid        NOT NULL,
    attempt     integer     NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    outcome     text
);
CREATE INDEX IF NOT EXISTS chaos_runs_job_idx ON chaos_runs (job_id);
"""

# Settings shared by every chaos daemon: short leases and sweeps, quick retries, JSON logs.
CHAOS_SETTINGS: dict[str, str] = {
    "DOCKO_QUEUES": QUEUE,
    "DOCKO_WORKER_COUNT": "8",
    "DOCKO_POLL_INTERVAL": "0.5",
    "DOCKO_VISIBILITY_TIMEOUT": "2",
    "DOCKO_RESCUE_INTERVAL": "0.5",
    "DOCKO_BASE_RETRY_DELAY": "0.05",
    "DOCKO_MAX_RETRY_DELAY": "0.5",
    "DOCKO_SHUTDOWN_TIMEOUT": "5",
    "DOCKO_MAX_ATTEMPTS": "5",
    "DOCKO_POOL_SIZE": "6",
    "DOCKO_LOG_FORMAT": "json",
    "DOCKO_LOG_LEVEL": "info",
}


def daemon_env(
    base: Mapping[str, str], database_url: str, **settings: str | None
) -> dict[str, str]:
    """``base`` plus the chaos defaults, ``DOCKO_DATABASE_URL`` and ``settings`` (None removes)."""
    return with_settings(base, CHAOS_SETTINGS, database_url, settings)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Daemon(DaemonProcess):
    """A daemon of the chaos fleet, waited on asynchronously."""

    describe_tail = 15
    describe_width = 400

    async def wait_started(self, within: float) -> None:
        """Until the daemon logged ``supervisor_started``, exited, or ``within`` seconds passed."""

        def started_or_exited() -> bool:
            return not self.alive() or self.event_count("supervisor_started") > 0

        await poll(started_or_exited, within, interval=0.05)

    async def wait_exit(self, within: float = EXIT_TIMEOUT) -> int:
        await wait_until(
            lambda: self.proc.poll() is not None,
            within,
            message=lambda: f"the daemon to exit\n{self.describe()}",
        )
        return self.proc.wait()


async def stop_all(fleet: Fleet[Daemon], within: float = EXIT_TIMEOUT) -> dict[int, int]:
    """SIGTERM every running daemon and wait for it; returns exit statuses by pid.

    A daemon restarted a moment ago may still be importing, before it handles signals (it holds no
    job then, and SIGTERM's default action ends it): each gets up to ``within`` seconds to log
    ``supervisor_started`` before its signal.
    """
    running = fleet.running
    for daemon in running:
        await daemon.wait_started(within)
        daemon.send(signal.SIGTERM)
    return {daemon.pid: await daemon.wait_exit(within) for daemon in running}


async def kill_random_daemons(
    fleet: Fleet[Daemon], env: Mapping[str, str], rng: random.Random, faults: Faults
) -> None:
    """Until cancelled: every 1.5-2.5 s, SIGKILL a random daemon of ``fleet`` (recorded in
    ``faults.killed``) and start a new one with ``env`` in its place."""
    while True:
        await asyncio.sleep(rng.uniform(1.5, 2.5))
        victim = rng.choice(fleet.running)
        victim.send(signal.SIGKILL)
        faults.killed[victim.pid] = time.time()
        assert await victim.wait_exit() == -signal.SIGKILL
        fleet.start(env)


async def stop_task(task: asyncio.Task[None]) -> BaseException | None:
    """Cancel a background task of the test and wait for it; returns what it failed with before,
    if it did."""
    task.cancel()
    [outcome] = await asyncio.gather(task, return_exceptions=True)
    return None if isinstance(outcome, asyncio.CancelledError) else outcome


async def create_runs_table(dsn: str) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(RUNS_TABLE)
    finally:
        await conn.close()


async def connect(dsn: str, **kwargs: Any) -> Any:
    """A connection of the test's own (never named ``docko-worker``)."""
    return await asyncpg.connect(
        dsn, server_settings={"application_name": TEST_APPLICATION}, **kwargs
    )


@dataclass
class Producer:
    """Enqueues through a ``Queue`` over a pool of the test's own (``chaos-producer``)."""

    dsn: str
    statement_cache_size: int = 100
    enqueued: list[UUID] = field(default_factory=list)
    _pool: Any = None
    _queue: Queue | None = None

    async def __aenter__(self) -> Producer:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=2,
            statement_cache_size=self.statement_cache_size,
            server_settings={"application_name": PRODUCER_APPLICATION},
        )
        config = load_config(
            database_url=self.dsn, queues=[QUEUE], log_format="console", log_level="warning"
        )
        self._queue = Queue(self._pool, config)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pool.close()

    @property
    def queue(self) -> Queue:
        assert self._queue is not None
        return self._queue

    async def enqueue(
        self,
        payloads: Iterable[Any],
        *,
        job_type: str = WORK,
        max_attempts: int | None = None,
        queue_name: str = QUEUE,
        delay: float | None = None,
    ) -> list[UUID]:
        """Enqueue ``payloads`` in statements of 500 jobs, due now or after ``delay`` seconds;
        returns the new ids in order."""
        items = list(payloads)
        ids: list[UUID] = []
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            ids += await self.queue.enqueue_many(
                queue_name, job_type, chunk, max_attempts=max_attempts, delay=delay
            )
        self.enqueued += ids
        return ids


def workload(count: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [{"n": n, **extra} for n in range(start, start + count)]


async def state_counts(conn: Any) -> dict[str, int]:
    rows = await conn.fetch("SELECT state::text AS state, count(*) AS n FROM docko_jobs GROUP BY 1")
    return {row["state"]: row["n"] for row in rows}


async def wait_until_final(
    conn: Any,
    fleet: Fleet[Daemon],
    expected: int,
    *,
    within: float = FINISH_TIMEOUT,
    what: str = "every job to reach a final state",
) -> None:
    """Wait until ``expected`` jobs exist and none is available or running."""
    counts: dict[str, int] = {}

    async def final() -> bool:
        counts.clear()
        counts.update(await state_counts(conn))
        open_jobs = counts.get("available", 0) + counts.get("running", 0)
        return open_jobs == 0 and sum(counts.values()) >= expected

    await wait_until(final, within, interval=0.1, message=lambda: f"{what}: {counts}", watch=fleet)


async def stop_and_check(
    fault: str, dsn: str, fleet: Fleet[Daemon], enqueued: list[UUID], faults: Faults
) -> Result:
    """SIGTERM the fleet (each daemon must exit 0), then run the checker over everything."""
    statuses = await stop_all(fleet)
    bad = {pid: status for pid, status in statuses.items() if status != 0}
    assert not bad, f"daemons exited with {bad} after SIGTERM\n{fleet.describe()}"
    faults.add_events(fleet.events())
    conn = await connect(dsn)
    try:
        job_rows, run_rows = await collect(conn)
    finally:
        await conn.close()
    return check(fault, enqueued, job_rows, run_rows, faults)
