"""The operator's commands as users run them: list failures and read their errors, retry them,
cancel a job, pause and resume a queue, with scripts reading ``--json``; and the exit statuses
the README documents for ids that are malformed or name no job, and unknown states."""

from __future__ import annotations

import json
from dataclasses import fields
from uuid import UUID, uuid4

import pytest
from e2e_helpers import QUEUE, Daemons, Database, daemon_env, describe_result, enqueue, run_cli

from docko_worker import Job

pytestmark = pytest.mark.e2e


def cli(env: dict[str, str], *args: str, status: int = 0) -> str:
    result = run_cli(list(args), env)
    assert result.returncode == status, describe_result(result)
    if status:
        assert result.stdout == "", describe_result(result)
        assert len(result.stderr.strip().splitlines()) == 1, describe_result(result)
        assert "Traceback" not in result.stderr
        return result.stderr
    return result.stdout


def test_a_session_lists_failures_reads_their_errors_retries_cancels_and_pauses(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url)
    daemon = daemons.start(env)
    daemon.wait_for_event("supervisor_started")
    failing = enqueue(env, "e2e_fail", {"document": 1}, "--max-attempts", "2")
    db.wait_for_state(failing, "failed", daemons=[daemon])

    # List the failures, as a person and as a script.
    table = cli(env, "jobs", "list", "--state", "failed")
    header, row = table.splitlines()
    assert header.split()[:5] == ["ID", "QUEUE", "TYPE", "STATE", "ATTEMPT"]
    assert row.split()[:5] == [str(failing), QUEUE, "e2e_fail", "failed", "2/2"]
    (listed,) = json.loads(
        cli(env, "jobs", "list", "--state", "failed", "--queue", QUEUE, "--json")
    )
    assert set(listed) == {field.name for field in fields(Job) if field.repr}
    assert [(e["attempt"], e["error"]) for e in listed["errors"]] == [
        (1, "RuntimeError: e2e_fail failed on attempt 1"),
        (2, "RuntimeError: e2e_fail failed on attempt 2"),
    ]

    # Read one job's errors.
    shown = cli(env, "jobs", "show", str(failing))
    assert "RuntimeError: e2e_fail failed on attempt 1" in shown
    assert json.loads(cli(env, "jobs", "show", str(failing), "--json"))["id"] == str(failing)

    # Retry them: each runs again with one more attempt, and fails a third time.
    assert (
        cli(env, "jobs", "retry", "--all-failed", "--type", "e2e_fail") == "retried 1 failed job\n"
    )
    db.wait_for_run(failing, 3, daemons=[daemon])
    again = db.wait_for_state(failing, "failed", daemons=[daemon])
    assert (again["attempt"], again["max_attempts"]) == (3, 3)

    # Cancel a job that has not run yet.
    later = enqueue(env, "e2e_ok", {"document": 2}, "--delay", "3600")
    assert cli(env, "jobs", "cancel", str(later), "--reason", "not needed") == (
        f"{later} cancelled\n"
    )
    assert db.job(later)["last_error"] == "Cancelled: not needed"
    # Changed our mind: run it now after all. A finished job is not cancelled.
    assert cli(env, "jobs", "retry", str(later)).startswith(f"{later} retried")
    db.wait_for_state(later, "completed", daemons=[daemon])
    assert cli(env, "jobs", "cancel", str(later)) == f"{later} already completed: unchanged\n"

    # Pause the queue, see it paused, resume it: its jobs run again.
    assert cli(env, "queues", "pause", QUEUE).startswith(f"paused queue '{QUEUE}'")
    (queue_info,) = json.loads(cli(env, "queues", "--json"))
    assert queue_info == {
        "name": QUEUE,
        "paused": True,
        "counts": {"available": 0, "running": 0, "failed": 1, "cancelled": 0},
        "oldest_available_age": None,
    }
    assert "paused" in cli(env, "queues").splitlines()[1].split()
    cli(env, "queues", "resume", QUEUE)
    resumed = enqueue(env, "e2e_ok", {"document": 3})
    db.wait_for_state(resumed, "completed", daemons=[daemon])


def test_exit_statuses_for_bad_ids_missing_jobs_and_unknown_states(
    db: Database, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url)
    missing = str(uuid4())
    for action in ("show", "cancel", "retry"):
        assert "not a job id" in cli(env, "jobs", action, "not-a-uuid", status=2)
        assert f"no job {missing}" in cli(env, "jobs", action, missing, status=1)
    assert "unknown job state 'stuck'" in cli(env, "jobs", "list", "--state", "stuck", status=2)
    assert "not both or neither" in cli(env, "jobs", "retry", status=2)
    assert "--all-failed" in cli(env, "jobs", "retry", missing, "--queue", "q", status=2)

    # A malformed id among good ones: nothing is done.
    job = enqueue(env, "e2e_ok", {}, "--delay", "3600")
    cli(env, "jobs", "cancel", str(job), "0190-bad", status=2)
    assert db.job(job)["state"] == "available"
    # A missing id among good ones: the good ones are done, and the status says one was not.
    result = run_cli(["jobs", "cancel", str(job), missing], env)
    assert result.returncode == 1, describe_result(result)
    assert result.stdout == f"{job} cancelled\n"

    # A filter that matches nothing is not an error.
    assert cli(env, "jobs", "list", "--queue", "nothing-here") == "no jobs match\n"
    assert cli(env, "jobs", "list", "--queue", "nothing-here", "--json") == "[]\n"
    assert cli(env, "jobs", "retry", "--all-failed") == "retried 0 failed jobs\n"
    assert UUID(json.loads(cli(env, "jobs", "list", "--json"))[0]["id"]) == job
