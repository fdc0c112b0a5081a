"""The daemon as users run it: jobs enqueued with the CLI are run by entry-point handlers.

Each test starts ``docko-worker run`` as a subprocess configured only by environment variables,
drives it with the other CLI commands, and checks the outcome in the database.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import (
    QUEUE,
    START_TIMEOUT,
    Daemons,
    Database,
    daemon_env,
    describe_result,
    enqueue,
    run_cli,
)

from tests.daemon_process import KeepRunning
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


def test_enqueued_job_is_completed_by_its_entry_point_handler(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url)
    daemon = daemons.start(env)
    daemon.wait_for_event("supervisor_started")
    unknown_id = enqueue(env, "e2e_not_installed", {"document": 0})

    job_id = enqueue(env, "e2e_ok", {"document": 1})

    job = db.wait_for_state(job_id, "completed", daemons=[daemon])
    assert job["attempt"] == 1
    assert job["finished_at"] is not None
    runs = db.runs(job_id)
    assert [(run["attempt"], run["pid"]) for run in runs] == [(1, daemon.pid)]
    assert runs[0]["finished_at"] is not None
    # A job type this daemon has no handler for waits for a daemon that has one.
    unknown = db.job(unknown_id)
    assert (unknown["state"], unknown["attempt"]) == ("available", 0)

    stats = run_cli(["stats", "--json"], env)
    assert stats.returncode == 0, describe_result(stats)
    assert {"queue": QUEUE, "job_type": "e2e_ok", "state": "completed", "jobs": 1} in json.loads(
        stats.stdout
    )
    table = run_cli(["stats"], env)
    assert table.returncode == 0, describe_result(table)
    assert [QUEUE, "e2e_ok", "completed", "1"] in [
        line.split() for line in table.stdout.splitlines()
    ]

    migrated = run_cli(["migrate"], env)
    assert migrated.returncode == 0, describe_result(migrated)
    assert "up to date" in migrated.stdout
    checked = run_cli(["migrate", "--check"], env)
    assert checked.returncode == 0, describe_result(checked)
    assert "up to date" in checked.stdout

    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()
    assert "daemon_stopped" in daemon.event_names()


def test_failing_job_is_retried_then_failed_with_its_error(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url)
    daemon = daemons.start(env)

    job_id = enqueue(env, "e2e_fail", {}, "--max-attempts", "3")

    job = db.wait_for_state(job_id, "failed", daemons=[daemon])
    assert job["attempt"] == 3
    assert "e2e_fail failed on attempt 3" in job["last_error"]
    assert [run["attempt"] for run in db.runs(job_id)] == [1, 2, 3]
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()


def test_healthcheck_follows_the_daemon(
    daemons: Daemons, database_url: str, base_env: dict[str, str], tmp_path: Path
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_HEALTH_FILE=str(tmp_path / "healthy"))
    before = run_cli(["healthcheck"], env)
    assert before.returncode == 1, describe_result(before)

    daemon = daemons.start(env)

    wait_until_blocking(
        lambda: run_cli(["healthcheck"], env).returncode == 0,
        START_TIMEOUT,
        message="healthcheck to pass",
        watch=KeepRunning([daemon]),
    )
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()
    stale = run_cli(["healthcheck", "--max-age", "0.001"], env)
    assert stale.returncode == 1, describe_result(stale)
    assert stale.stdout.startswith("unhealthy"), describe_result(stale)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["migrate", "--help"],
        ["enqueue", "--help"],
        ["stats", "--help"],
        ["healthcheck", "--help"],
        ["demo", "--help"],
    ],
    ids=lambda args: " ".join(args),
)
def test_help_exits_zero(args: list[str], base_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "docko_worker", *args],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, describe_result(result)
    assert result.stdout.startswith("usage: docko-worker"), describe_result(result)
    assert result.stderr == ""
