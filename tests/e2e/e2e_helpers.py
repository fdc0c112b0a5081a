"""Helpers for the end-to-end tests: the daemon as a subprocess, the CLI, the test database.

The daemon and the CLI run from the virtual environment's ``docko-worker`` script with a minimal
environment: a few process basics from ``os.environ``, never a ``DOCKO_*`` variable or
``DATABASE_URL`` of the caller, ``PYTHONPATH`` naming the directories the handler packages were
installed into, and the settings each test passes. Daemon output goes to files, so a chatty
daemon can never block on a full pipe, and every failure message carries what it logged. The
process and the fleet come from ``tests/daemon_process.py``; waits are blocking polls of
``tests/waiting.py`` that fail at once if a daemon expected to keep running exits.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import pytest

from tests.daemon_process import DaemonProcess, Fleet, KeepRunning, run_cli, with_settings
from tests.waiting import wait_until_blocking

# Deadlines: generous, so a slow machine is not a failure; a working daemon needs far less.
START_TIMEOUT = 20.0
JOB_TIMEOUT = 30.0
EXIT_TIMEOUT = 20.0

QUEUE = "e2e"
PASSWORD = "sekrit-pw"
# The prefix of the session's password role (``password_role`` in conftest.py adds a suffix).
PASSWORD_ROLE = "e2e_pw"
# Everything that role is granted on a test's database: {db} and {role} are filled in.
PASSWORD_ROLE_GRANTS = (
    'GRANT CONNECT ON DATABASE "{db}" TO {role}',
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON docko_schema_migrations TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON docko_jobs TO {role}",
    "GRANT SELECT, INSERT ON docko_queues TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON e2e_runs TO {role}",
    "GRANT USAGE ON SEQUENCE e2e_runs_run_id_seq TO {role}",
)

# Where the handlers of tests/e2e/handler_pkg record each execution.
RUNS_TABLE = """
CREATE TABLE e2e_runs (
    run_id      bigserial   PRIMARY KEY,
    job_id      uuid        NOT NULL,
    attempt     integer     NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
)
"""

DEFAULT_SETTINGS: dict[str, str] = {
    "DOCKO_QUEUES": QUEUE,
    "DOCKO_WORKER_COUNT": "2",
    "DOCKO_POLL_INTERVAL": "0.2",
    "DOCKO_VISIBILITY_TIMEOUT": "30",
    "DOCKO_SHUTDOWN_TIMEOUT": "5",
    "DOCKO_RESCUE_INTERVAL": "0.5",
    "DOCKO_BASE_RETRY_DELAY": "0.01",
    "DOCKO_MAX_RETRY_DELAY": "0.05",
    "DOCKO_LOG_FORMAT": "json",
}


def daemon_env(
    base: Mapping[str, str], database_url: str | None, **settings: str | None
) -> dict[str, str]:
    """``base`` plus the test defaults, ``DOCKO_DATABASE_URL`` and ``settings`` (None removes)."""
    return with_settings(base, DEFAULT_SETTINGS, database_url, settings)


def with_credentials(dsn: str, user: str, password: str) -> str:
    """``dsn`` with its user and password replaced, keeping host, port, database and query."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, ""))


class Daemon(DaemonProcess):
    """A daemon of an e2e test, waited on by blocking polls."""

    def wait_for_event(
        self, event: str, *, count: int = 1, timeout: float = START_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Wait until the daemon has logged ``event`` at least ``count`` times; returns them."""

        def seen() -> list[dict[str, Any]] | None:
            matching = [record for record in self.events() if record.get("event") == event]
            return matching if len(matching) >= count else None

        return wait_until_blocking(
            seen, timeout, message=f"{count} {event!r} log line(s)", watch=KeepRunning([self])
        )

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daemon did not exit within {timeout:g}s\n{self.describe()}")


#: The daemons of one e2e test (the ``daemons`` fixture).
Daemons = Fleet[Daemon]


def describe_result(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit status {result.returncode}\n--- stdout:\n{result.stdout}"
        f"\n--- stderr:\n{result.stderr}"
    )


def enqueue(
    env: Mapping[str, str], job_type: str, payload: Any, *options: str, queue: str = QUEUE
) -> UUID:
    """``docko-worker enqueue``: returns the job id it prints."""
    result = run_cli(["enqueue", queue, job_type, json.dumps(payload), *options], env)
    assert result.returncode == 0, describe_result(result)
    return UUID(result.stdout.strip())


class Database:
    """A synchronous view of one test database, for polling job state from plain tests."""

    def __init__(self, dsn: str) -> None:
        self._runner = asyncio.Runner()
        try:
            self._conn: Any = self._runner.run(asyncpg.connect(dsn))
        except BaseException:
            self._runner.close()
            raise

    def close(self) -> None:
        try:
            self._runner.run(self._conn.close())
        finally:
            self._runner.close()

    def execute(self, query: str, *args: Any) -> None:
        self._runner.run(self._conn.execute(query, *args))

    def fetch(self, query: str, *args: Any) -> list[Any]:
        rows: list[Any] = self._runner.run(self._conn.fetch(query, *args))
        return rows

    def job(self, job_id: UUID) -> Any:
        rows = self.fetch(
            "SELECT id, state::text AS state, attempt, max_attempts, worker_id, lease_expires_at,"
            " finished_at, last_error FROM docko_jobs WHERE id = $1",
            job_id,
        )
        assert rows, f"job {job_id} is not in docko_jobs"
        return rows[0]

    def runs(self, job_id: UUID) -> list[Any]:
        """The executions the e2e handlers recorded for ``job_id``, oldest first."""
        return self.fetch("SELECT * FROM e2e_runs WHERE job_id = $1 ORDER BY run_id", job_id)

    def wait_for_state(
        self,
        job_id: UUID,
        state: str,
        *,
        daemons: Sequence[Daemon],
        timeout: float = JOB_TIMEOUT,
    ) -> Any:
        """Wait until the job is in ``state``; returns its row."""

        def reached() -> Any:
            row = self.job(job_id)
            return row if row["state"] == state else None

        return wait_until_blocking(
            reached, timeout, message=f"job {job_id} to be {state}", watch=KeepRunning(daemons)
        )

    def wait_for_run(
        self,
        job_id: UUID,
        attempt: int,
        *,
        daemons: Sequence[Daemon],
        timeout: float = JOB_TIMEOUT,
    ) -> Any:
        """Wait until a handler has started ``attempt`` of the job; returns the run's row."""

        def started() -> Any:
            for run in self.runs(job_id):
                if run["attempt"] == attempt:
                    return run
            return None

        return wait_until_blocking(
            started,
            timeout,
            message=f"the handler to start attempt {attempt} of job {job_id}",
            watch=KeepRunning(daemons),
        )
