"""Stopping the daemon mid-job: SIGTERM (graceful), a second signal (forced) and SIGKILL.

The handler ``e2e_slow`` records when each attempt starts and finishes, so the tests signal the
daemon only once the handler is really running, and can tell an interrupted run from a finished one.
"""

from __future__ import annotations

import signal

import pytest
from e2e_helpers import Daemons, Database, daemon_env, enqueue

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signal_hands_back_a_job_that_outlasts_the_shutdown_timeout(
    signum: signal.Signals,
    db: Database,
    daemons: Daemons,
    database_url: str,
    base_env: dict[str, str],
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_SHUTDOWN_TIMEOUT="1")
    daemon = daemons.start(env)
    job_id = enqueue(env, "e2e_slow", {"seconds": 30})
    db.wait_for_run(job_id, 1, daemons=[daemon])

    daemon.send(signum)

    assert daemon.wait_exit() == 0, daemon.describe()
    job = db.job(job_id)
    assert job["state"] == "available", daemon.describe()
    assert job["attempt"] == 0, "the interrupted attempt must not be spent"
    assert job["worker_id"] is None
    assert job["lease_expires_at"] is None
    [run] = db.runs(job_id)
    assert run["finished_at"] is None, "the handler was cancelled, not run to the end"
    assert "job_released" in daemon.event_names()


def test_sigterm_lets_a_job_finish_within_the_shutdown_timeout(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_SHUTDOWN_TIMEOUT="10")
    daemon = daemons.start(env)
    job_id = enqueue(env, "e2e_slow", {"seconds": 1})
    db.wait_for_run(job_id, 1, daemons=[daemon])

    daemon.send(signal.SIGTERM)

    assert daemon.wait_exit() == 0, daemon.describe()
    job = db.job(job_id)
    assert (job["state"], job["attempt"]) == ("completed", 1), daemon.describe()
    [run] = db.runs(job_id)
    assert run["finished_at"] is not None


def test_job_of_a_killed_daemon_is_rerun_by_another_after_its_lease_expires(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(
        base_env, database_url, DOCKO_VISIBILITY_TIMEOUT="2", DOCKO_RESCUE_INTERVAL="0.5"
    )
    first = daemons.start(env)
    job_id = enqueue(env, "e2e_slow", {"seconds": 60, "retry_seconds": 0})
    db.wait_for_run(job_id, 1, daemons=[first])

    first.send(signal.SIGKILL)
    assert first.wait_exit() == -signal.SIGKILL
    orphan = db.job(job_id)
    assert (orphan["state"], orphan["attempt"]) == ("running", 1)

    second = daemons.start(env)
    job = db.wait_for_state(job_id, "completed", daemons=[second])

    assert job["attempt"] == 2
    runs = db.runs(job_id)
    assert [(run["attempt"], run["pid"]) for run in runs] == [(1, first.pid), (2, second.pid)]
    assert runs[0]["finished_at"] is None
    assert runs[1]["finished_at"] is not None
    assert "job_lease_expired" in second.event_names()
    second.send(signal.SIGTERM)
    assert second.wait_exit() == 0, second.describe()


def test_second_signal_exits_at_once_and_leaves_the_job_to_its_lease(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_SHUTDOWN_TIMEOUT="120")
    daemon = daemons.start(env)
    job_id = enqueue(env, "e2e_slow", {"seconds": 120})
    db.wait_for_run(job_id, 1, daemons=[daemon])
    daemon.send(signal.SIGTERM)
    daemon.wait_for_event("shutdown_started")

    daemon.send(signal.SIGTERM)

    # The deadline is far below the shutdown timeout: only a forced exit meets it.
    status = daemon.wait_exit(timeout=20)
    assert status != 0, daemon.describe()
    job = db.job(job_id)
    assert (job["state"], job["attempt"]) == ("running", 1)
    assert job["worker_id"] is not None
    assert "forced_exit" in daemon.event_names()
