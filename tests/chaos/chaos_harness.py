"""The machinery of the chaos tests: daemon processes, their logs, the workload, waiting.

Daemons are real ``docko-worker run`` processes started from the virtual environment's script with
a minimal environment (process basics, ``PYTHONPATH`` naming the installed chaos handler package,
and the ``DOCKO_*`` settings of the test; never a variable of the caller's). Their stdout and stderr
go to files, so a chatty daemon never blocks on a pipe and a killed daemon's last words are kept.
The test's own database connections use application names other than ``docko-worker``, so a fault
aimed at the daemons' backends never hits the test.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from chaos_checker import Faults, Result, check, collect

from docko_worker import Queue, load_config
from tests.daemon_process import DaemonProcess, with_settings

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
    """A daemon of the fleet, waited on asynchronously; remembers the signal the test sent."""

    describe_tail = 15
    describe_width = 400

    def __init__(self, proc: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        super().__init__(proc, stdout, stderr)
        self.signalled: signal.Signals | None = None
        self.signalled_at: float | None = None
        # Set by tests of a daemon that is meant to exit by itself (bad configuration).
        self.exit_expected = False

    def event_count(self, event: str) -> int:
        return sum(1 for record in self.events() if record.get("event") == event)

    def send(self, signum: signal.Signals) -> None:
        if self.signalled is None or signum == signal.SIGKILL:
            self.signalled, self.signalled_at = signum, time.time()
        if self.alive():
            self.proc.send_signal(signum)

    async def wait_started(self, within: float) -> None:
        """Until the daemon logged ``supervisor_started``, exited, or ``within`` seconds passed."""
        deadline = time.monotonic() + within
        while self.alive() and time.monotonic() < deadline:
            if self.event_count("supervisor_started"):
                return
            await asyncio.sleep(0.05)

    async def wait_exit(self, within: float = EXIT_TIMEOUT) -> int:
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"daemon did not exit within {within:g}s\n{self.describe()}")
            await asyncio.sleep(0.02)
        return code


class Fleet:
    """The daemons of one test; whatever is still running at teardown is killed."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.started: list[Daemon] = []

    def start(self, env: Mapping[str, str], *args: str) -> Daemon:
        """Start ``docko-worker run`` (or ``docko-worker *args``) with exactly ``env``."""
        daemon = Daemon.launch(self._directory, len(self.started), env, *args)
        self.started.append(daemon)
        return daemon

    @property
    def running(self) -> list[Daemon]:
        return [daemon for daemon in self.started if daemon.alive()]

    def check_unexpected_exits(self) -> None:
        """Fail if a daemon exited that the test did not signal."""
        for daemon in self.started:
            if not daemon.alive() and daemon.signalled is None and not daemon.exit_expected:
                pytest.fail(f"daemon exited on its own\n{daemon.describe()}")

    async def stop_all(self, within: float = EXIT_TIMEOUT) -> dict[int, int]:
        """SIGTERM every running daemon and wait for it; returns exit statuses by pid.

        A daemon restarted a moment ago may still be importing, before it handles signals (it
        holds no job then, and SIGTERM's default action ends it): each gets up to ``within``
        seconds to log ``supervisor_started`` before its signal.
        """
        running = self.running
        for daemon in running:
            await daemon.wait_started(within)
            daemon.send(signal.SIGTERM)
        return {daemon.pid: await daemon.wait_exit(within) for daemon in running}

    def kill_all(self) -> None:
        for daemon in self.started:
            daemon.kill()

    def events(self) -> list[dict[str, Any]]:
        return [record for daemon in self.started for record in daemon.events()]

    def describe(self, tail: int = 15) -> str:
        return "\n".join(daemon.describe(tail) for daemon in self.started)

    def all_output(self) -> str:
        return "\n".join(daemon.stdout() + "\n" + daemon.stderr() for daemon in self.started)


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

    async def enqueue(
        self, payloads: Iterable[Any], *, job_type: str = WORK, max_attempts: int | None = None
    ) -> list[UUID]:
        """Enqueue ``payloads`` in statements of 500 jobs; returns the new ids in order."""
        assert self._queue is not None
        items = list(payloads)
        ids: list[UUID] = []
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            ids += await self._queue.enqueue_many(QUEUE, job_type, chunk, max_attempts=max_attempts)
        self.enqueued += ids
        return ids


def workload(count: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [{"n": n, **extra} for n in range(start, start + count)]


async def state_counts(conn: Any) -> dict[str, int]:
    rows = await conn.fetch("SELECT state::text AS state, count(*) AS n FROM docko_jobs GROUP BY 1")
    return {row["state"]: row["n"] for row in rows}


async def wait_until_final(
    conn: Any,
    fleet: Fleet,
    expected: int,
    *,
    within: float = FINISH_TIMEOUT,
    what: str = "every job to reach a final state",
) -> None:
    """Wait until ``expected`` jobs exist and none is available or running."""
    deadline = time.monotonic() + within
    while True:
        counts = await state_counts(conn)
        open_jobs = counts.get("available", 0) + counts.get("running", 0)
        if open_jobs == 0 and sum(counts.values()) >= expected:
            return
        fleet.check_unexpected_exits()
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {within:g}s waiting for {what}: {counts}\n" + fleet.describe()
            )
        await asyncio.sleep(0.1)


async def wait_for(
    what: str, check: Any, *, fleet: Fleet | None = None, within: float = FINISH_TIMEOUT
) -> Any:
    """Await ``check()`` every 50 ms until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if fleet is not None:
            fleet.check_unexpected_exits()
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {within:g}s waiting for {what}\n"
                + (fleet.describe() if fleet else "")
            )
        await asyncio.sleep(0.05)


async def stop_and_check(
    fault: str, dsn: str, fleet: Fleet, enqueued: list[UUID], faults: Faults
) -> Result:
    """SIGTERM the fleet (each daemon must exit 0), then run the checker over everything."""
    statuses = await fleet.stop_all()
    bad = {pid: status for pid, status in statuses.items() if status != 0}
    assert not bad, f"daemons exited with {bad} after SIGTERM\n{fleet.describe()}"
    faults.add_events(fleet.events())
    conn = await connect(dsn)
    try:
        job_rows, run_rows = await collect(conn)
    finally:
        await conn.close()
    return check(fault, enqueued, job_rows, run_rows, faults)
