"""Periodic jobs as operators meet them: declared by an installed package's entry point.

The e2e handler package declares a periodic job when the daemon's environment asks for one (see
``handler_pkg/docko_e2e_handlers/schedules.py``). A daemon enqueues its slots, due at each slot;
``docko-worker periodic`` shows the schedule with its next and last slot and the last job; an
invalid expression or time zone stops ``run`` with one line naming the schedule, exit 2.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from e2e_helpers import (
    JOB_TIMEOUT,
    Daemons,
    Database,
    daemon_env,
    describe_result,
    run_cli,
)
from test_startup import UNANSWERED_DSN, assert_usage_error

from tests.daemon_process import KeepRunning
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"E2E_PERIODIC_CRON": "0 25 * * *"}, "bad cron expression '0 25 * * *'"),
        (
            {"E2E_PERIODIC_CRON": "0 2 * * *", "E2E_PERIODIC_TIMEZONE": "Europe/Atlantis"},
            "unknown time zone 'Europe/Atlantis'",
        ),
        ({"E2E_PERIODIC_EVERY": "0.25"}, "every must be at least 1 second"),
    ],
    ids=["expression", "time-zone", "interval"],
)
def test_an_invalid_schedule_stops_run_with_one_line_naming_it(
    settings: dict[str, str], named: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, UNANSWERED_DSN, **settings)
    assert_usage_error(["run"], env, "'e2e-periodic'", named)


def test_a_daemon_enqueues_the_slots_and_the_cli_shows_them(
    daemons: Daemons, db: Database, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, E2E_PERIODIC_EVERY="1")
    daemon = daemons.start(env)

    def two_periodic_jobs_done() -> list[object] | None:
        rows = db.fetch(
            "SELECT id, run_at FROM docko_jobs WHERE payload::text = '{\"periodic\":true}'"
            " AND state = 'completed' ORDER BY run_at"
        )
        return rows if len(rows) >= 2 else None

    rows = wait_until_blocking(
        two_periodic_jobs_done,
        JOB_TIMEOUT,
        message="two periodic jobs completed",
        watch=KeepRunning([daemon]),
    )
    # Each job is due at its slot: whole seconds, one second apart.
    first, second = rows[0]["run_at"], rows[1]["run_at"]
    assert first.microsecond == 0 and second - first == timedelta(seconds=1)

    shown = run_cli(["periodic", "--json"], env)
    assert shown.returncode == 0, describe_result(shown)
    [schedule] = json.loads(shown.stdout)
    assert set(schedule) >= {"name", "schedule", "timezone", "next_slot", "last_slot"}
    assert (schedule["name"], schedule["schedule"], schedule["timezone"]) == (
        "e2e-periodic",
        "@every 1s",
        "UTC",
    )
    last_slot = datetime.fromisoformat(schedule["last_slot"])
    assert datetime.fromisoformat(schedule["next_slot"]) > last_slot >= second
    [job] = db.fetch("SELECT run_at FROM docko_jobs WHERE id = $1", UUID(schedule["last_job_id"]))
    assert job["run_at"] == last_slot

    table = run_cli(["periodic"], env)
    assert table.returncode == 0, describe_result(table)
    header, line = table.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "SCHEDULE", "TIMEZONE"]
    assert line.startswith("e2e-periodic  @every 1s  UTC")

    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()
    assert "periodic_registered" in daemon.event_names()
