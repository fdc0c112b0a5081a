"""A shutdown that cannot write its outcomes says so, names the jobs, and exits non-zero."""

from __future__ import annotations

import signal

import pytest
from e2e_helpers import Daemons, Database, daemon_env, enqueue

from tests.daemon_process import KeepRunning
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


def test_sigterm_with_outcomes_it_cannot_write_exits_1_naming_the_jobs(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    """Before: exit 0 and no warning; the rows stayed running and the next daemon ran every job
    again without anyone being told."""
    env = daemon_env(base_env, database_url, DOCKO_SHUTDOWN_TIMEOUT="1")
    daemon = daemons.start(env)
    job_id = enqueue(env, "e2e_slow", {"seconds": 1})
    db.wait_for_run(job_id, 1, daemons=[daemon])
    # The table is locked before the handler finishes: its completion cannot be written.
    db.execute("BEGIN")
    try:
        db.execute("LOCK TABLE docko_jobs IN ACCESS EXCLUSIVE MODE")
        wait_until_blocking(
            lambda: db.runs(job_id)[0]["finished_at"],
            30,
            message="the handler to finish",
            watch=KeepRunning([daemon]),
        )
        daemon.send(signal.SIGTERM)
        status = daemon.wait_exit(timeout=40)
    finally:
        db.execute("ROLLBACK")

    assert status == 1, daemon.describe()
    [report] = [e for e in daemon.events() if e.get("event") == "outcomes_not_written"]
    assert report["job_ids"] == [str(job_id)]
    assert db.job(job_id)["state"] == "running"
