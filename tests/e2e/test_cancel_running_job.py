"""``docko-worker jobs cancel`` on a job a daemon is running: the handler is cancelled within
moments (a control notification), and the job ends ``cancelled``, not retried."""

from __future__ import annotations

import pytest
from e2e_helpers import Daemons, Database, daemon_env, enqueue

from tests.daemon_process import KeepRunning, run_cli
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


def test_jobs_cancel_stops_a_running_handler(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url)
    daemon = daemons.start(env)
    daemon.wait_for_event("listen_connected")
    job_id = enqueue(env, "e2e_slow", {"seconds": 60})
    db.wait_for_run(job_id, 1, daemons=[daemon])

    result = run_cli(["jobs", "cancel", str(job_id), "--reason", "scanned the wrong box"], env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(": asked to stop\n"), result.stdout
    job = wait_until_blocking(
        lambda: (row := db.job(job_id))["state"] == "cancelled" and row,
        30,
        message="the job to end cancelled",
        watch=KeepRunning([daemon]),
    )
    assert job["last_error"] == "Cancelled: scanned the wrong box"
    assert job["attempt"] == 1
    [run] = db.runs(job_id)
    assert run["finished_at"] is None, "the handler was cancelled, not run to its end"
    assert "job_cancelled" in daemon.event_names()
