"""Start-up as operators meet it: configuration mistakes, a database that is not there, the logs.

Mistakes print one line naming the problem on stderr and exit 2, without a traceback. A database
that does not answer is waited for, not a crash loop. Logs are JSON lines when stderr is not a
terminal, and never show the database password.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from e2e_helpers import (
    PASSWORD,
    PASSWORD_ROLE,
    Daemons,
    Database,
    daemon_env,
    describe_result,
    enqueue,
    run_cli,
)

from tests.daemon_process import minimal_environ

pytestmark = pytest.mark.e2e

# Nothing listens on port 1: connections are refused at once.
UNANSWERED_DSN = f"postgresql://{PASSWORD_ROLE}:{PASSWORD}@127.0.0.1:1/docko"


def assert_usage_error(args: list[str], env: dict[str, str], *names: str) -> None:
    result = run_cli(args, env, timeout=20)
    assert result.returncode == 2, describe_result(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe_result(result)
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in lines[0], describe_result(result)
    assert PASSWORD not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "settings", "named"),
    [
        (["run"], {"DOCKO_WORKER_COUNT": "abc"}, "DOCKO_WORKER_COUNT"),
        (["run"], {"DOCKO_VISIBILITY_TIMEOUT": "-1"}, "DOCKO_VISIBILITY_TIMEOUT"),
        (["run"], {"DOCKO_LOG_FORMAT": "xml"}, "DOCKO_LOG_FORMAT"),
        (["run"], {"DOCKO_DATABASE_URL": None}, "DOCKO_DATABASE_URL"),
        (["run", "--bogus"], {}, "--bogus"),
        (["enqueue", "e2e", "e2e_ok", "{not json"], {}, "JSON"),
    ],
    ids=["worker-count", "visibility-timeout", "log-format", "no-database", "option", "payload"],
)
def test_mistake_is_one_line_and_exit_2(
    args: list[str], settings: dict[str, str | None], named: str, base_env: dict[str, str]
) -> None:
    # A database that is not there: a daemon that accepted the mistake would wait, not exit.
    env = daemon_env(base_env, UNANSWERED_DSN, **settings)
    assert_usage_error(args, env, named)


def test_entry_point_that_does_not_import_is_one_line_and_exit_2(
    handlers_path: Path, broken_handlers_path: Path
) -> None:
    env = daemon_env(minimal_environ([handlers_path, broken_handlers_path]), UNANSWERED_DSN)
    assert_usage_error(["run"], env, "e2e_broken")


def test_no_installed_handler_is_one_line_and_exit_2() -> None:
    env = daemon_env(minimal_environ([]), UNANSWERED_DSN)
    assert_usage_error(["run"], env, "docko_worker.handlers")


def test_daemon_waits_for_a_database_that_does_not_answer(
    daemons: Daemons, base_env: dict[str, str]
) -> None:
    daemon = daemons.start(daemon_env(base_env, UNANSWERED_DSN))

    retries = daemon.wait_for_event("database_unavailable", count=2)

    assert daemon.proc.poll() is None, daemon.describe()
    assert [record["attempt"] for record in retries[:2]] == [1, 2]
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()
    assert PASSWORD not in daemon.stderr() + daemon.stdout()
    assert f"{PASSWORD_ROLE}:***@" in retries[0]["dsn"]


CLIENT_COMMANDS = [["stats"], ["migrate"], ["enqueue", "e2e", "e2e_ok", "{}"]]


@pytest.mark.parametrize("args", CLIENT_COMMANDS, ids=lambda args: args[0])
def test_cli_command_on_a_database_that_does_not_answer_is_one_line(
    args: list[str], base_env: dict[str, str]
) -> None:
    result = run_cli(args, daemon_env(base_env, UNANSWERED_DSN))
    assert result.returncode != 0, describe_result(result)
    assert "Traceback" not in result.stderr, describe_result(result)
    assert len(result.stderr.splitlines()) == 1, describe_result(result)
    assert PASSWORD not in result.stderr + result.stdout


@pytest.mark.parametrize("args", [["run"], *CLIENT_COMMANDS], ids=lambda args: args[0])
def test_database_that_refuses_the_connection_is_exit_2(
    args: list[str], server_dsn: str, base_env: dict[str, str]
) -> None:
    missing = urlunsplit(urlsplit(server_dsn)._replace(path="/docko_e2e_no_such_database"))
    result = run_cli(args, daemon_env(base_env, missing))
    assert result.returncode == 2, describe_result(result)
    assert "Traceback" not in result.stderr, describe_result(result)
    # `run` may log its start first; the error is the last line.
    last = result.stderr.splitlines()[-1]
    assert last.startswith("docko-worker: error:"), describe_result(result)
    assert "docko_e2e_no_such_database" in last, describe_result(result)


def test_logs_are_json_lines_without_the_password(
    db: Database, daemons: Daemons, password_dsn: str, base_env: dict[str, str]
) -> None:
    # No DOCKO_LOG_FORMAT: stderr is a file, so the default must be JSON.
    env = daemon_env(
        base_env,
        password_dsn,
        DOCKO_LOG_FORMAT=None,
        DOCKO_LOG_LEVEL="debug",
        DOCKO_WORKERS="3",  # a typo for DOCKO_WORKER_COUNT: warned about, not fatal
    )
    daemon = daemons.start(env)
    ok_id = enqueue(env, "e2e_ok", {})
    failing_id = enqueue(env, "e2e_fail", {}, "--max-attempts", "1")
    db.wait_for_state(ok_id, "completed", daemons=[daemon])
    db.wait_for_state(failing_id, "failed", daemons=[daemon])
    stats = run_cli(["stats"], env)
    assert stats.returncode == 0, describe_result(stats)
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()

    stderr = daemon.stderr()
    assert PASSWORD not in stderr + daemon.stdout() + stats.stdout + stats.stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert {"event", "level", "timestamp"} <= record.keys(), line
    events = daemon.events()
    [starting] = [record for record in events if record["event"] == "daemon_starting"]
    assert f"{urlsplit(password_dsn).username}:***@" in starting["dsn"]
    assert "job_failed" in daemon.event_names()
    typos = [record for record in events if record["event"] == "unknown_setting_ignored"]
    assert [record["variable"] for record in typos] == ["DOCKO_WORKERS"]


def test_the_password_role_is_no_superuser(db: Database, password_dsn: str) -> None:
    """The tests' password role gets grants on its test database, never a role attribute."""
    rows = db.fetch(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles"
        " WHERE rolname = $1",
        urlsplit(password_dsn).username,
    )
    assert [dict(row) for row in rows] == [
        {"rolsuper": False, "rolcreatedb": False, "rolcreaterole": False, "rolbypassrls": False}
    ]
