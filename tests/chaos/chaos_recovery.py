"""What the tests that take the database away share (restart, failover, demotion in place).

A database of the test's own on a cluster of the suite's own, migrated and with ``chaos_runs``;
daemons started on it and LISTENing; the producer's settings; and the measure they report: the
time from the database's return to the first job completed on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos_harness import FINISH_TIMEOUT, QUEUE, Daemon, Fleet, connect, create_runs_table

from docko_worker import Config, load_config
from tests.daemon_process import run_cli
from tests.waiting import wait_until

# The first completion written at or after a moment.
FIRST_COMPLETION = """
SELECT extract(epoch FROM min(finished_at)) FROM docko_jobs
WHERE state = 'completed' AND finished_at >= to_timestamp($1)
"""
# The first completion of a job whose deciding run started at or after a moment.
FIRST_FRESH_COMPLETION = """
SELECT extract(epoch FROM min(jobs.finished_at))
FROM docko_jobs AS jobs
JOIN chaos_runs AS runs
  ON runs.job_id = jobs.id AND runs.attempt = jobs.attempt AND runs.outcome = 'ok'
WHERE jobs.state = 'completed' AND runs.started_at >= to_timestamp($1)
"""


async def create_database(admin_dsn: str, name: str) -> None:
    admin = await connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def start_listening(fleet: Fleet, env: Mapping[str, str], count: int = 2) -> list[Daemon]:
    """Migrate the database of ``env``, add ``chaos_runs``, start ``count`` daemons on it and wait
    until each LISTENs."""
    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    await create_runs_table(env["DOCKO_DATABASE_URL"])
    daemons = [fleet.start(env) for _ in range(count)]

    async def all_listening() -> bool:
        return all(d.event_count("listen_connected") >= 1 for d in daemons)

    await wait_until(
        all_listening, FINISH_TIMEOUT, message=f"{count} daemons to LISTEN", watch=fleet
    )
    return daemons


def producer_config(dsn: str, **settings: Any) -> Config:
    """Settings for a ``Queue.connect`` producer of the test's own (quiet logs)."""
    return load_config(
        database_url=dsn, queues=[QUEUE], log_format="console", log_level="error", **settings
    )


async def first_completion_since(conn: Any, since: float, fleet: Fleet, what: str) -> float:
    """Wait for a job completed at or after ``since`` (epoch seconds); returns when it was."""

    async def completed() -> float | None:
        value = await conn.fetchval(FIRST_COMPLETION, since)
        return None if value is None else float(value)

    found: float = await wait_until(completed, 90, message=what, watch=fleet)
    return found


async def first_fresh_completion_since(conn: Any, since: float) -> float:
    """When the first job whose deciding run started at or after ``since`` completed."""
    return float(await conn.fetchval(FIRST_FRESH_COMPLETION, since))
