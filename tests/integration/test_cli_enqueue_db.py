"""``docko-worker enqueue``: refusals are one line and exit 2 with nothing written; ``--run-at``;
JSON lines from standard input with ``-``.

The command runs as users run it, a subprocess of the virtual environment's script with only the
test's settings, against this test's database.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from docko_worker.payloads import MAX_PAYLOAD_DEPTH
from tests.daemon_process import CLI, CLI_TIMEOUT, minimal_environ

QUEUE = "cli"
TYPE = "cli_type"


def cli_env(database_url: str) -> dict[str, str]:
    env = minimal_environ([])
    env.update(DOCKO_DATABASE_URL=database_url, DOCKO_LOG_FORMAT="json")
    return env


def enqueue(database_url: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    command = [CLI, "enqueue", QUEUE, TYPE, *args]
    result = subprocess.run(
        command,
        env=cli_env(database_url),
        input=stdin,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return subprocess.CompletedProcess(
        command,
        result.returncode,
        result.stdout.decode("utf-8", errors="replace"),
        result.stderr.decode("utf-8", errors="replace"),
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def assert_usage_error(result: subprocess.CompletedProcess[str], *mentions: str) -> str:
    """Exit 2, one line on stderr naming ``mentions``, nothing on stdout; returns the line."""
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    for mention in mentions:
        assert mention in lines[0], describe(result)
    assert result.stdout == "", describe(result)
    return lines[0]


async def stored(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, payload::text AS payload, priority, run_at FROM docko_jobs ORDER BY id"
    )


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


REFUSED_ARGUMENTS: dict[str, tuple[list[str], list[str]]] = {
    "delay 3e11": (["{}", "--delay", "3e11"], ["delay", "100 years"]),
    "delay nan": (["{}", "--delay", "nan"], ["delay"]),
    "delay negative": (["{}", "--delay", "-5"], ["delay"]),
    "JSON 5,000 deep": ([deep_json(5000)], ["JSON argument", "nested too deeply"]),
    "JSON past the depth limit": ([deep_json(MAX_PAYLOAD_DEPTH + 1)], ["nested"]),
    "an integer of 5,000 digits": (['{"n": ' + "9" * 5000 + "}"], ["4300 digits"]),
    "NaN": (['{"n": NaN}'], ["JSON"]),
    "priority 2**31": (["{}", "--priority", str(2**31)], ["priority", "2147483647"]),
    "max attempts 2**31": (["{}", "--max-attempts", str(2**31)], ["max_attempts"]),
    "max attempts 0": (["{}", "--max-attempts", "0"], ["max_attempts"]),
    "run-at without an offset": (["{}", "--run-at", "2030-01-01T08:00:00"], ["UTC offset"]),
    "run-at that is not a time": (["{}", "--run-at", "tomorrow"], ["ISO 8601"]),
    "run-at in year 9999": (["{}", "--run-at", "9999-12-31T00:00:00Z"], ["run_at", "100 years"]),
    "ids without stdin": (["{}", "--ids"], ["--ids"]),
    "dedupe key with stdin": (["-", "--dedupe-key", "k"], ["--dedupe-key"]),
}


@pytest.mark.parametrize("case", list(REFUSED_ARGUMENTS))
async def test_refused_arguments_are_one_line_exit_2_and_write_nothing(
    case: str, database_url: str, db: asyncpg.Connection
) -> None:
    args, mentions = REFUSED_ARGUMENTS[case]
    assert_usage_error(enqueue(database_url, *args), *mentions)
    assert await stored(db) == []


async def test_run_at_with_an_offset_schedules_the_job(
    database_url: str, db: asyncpg.Connection
) -> None:
    result = enqueue(database_url, '{"n": 1}', "--run-at", "2030-01-31T08:00:00+01:00")
    assert result.returncode == 0, describe(result)
    [row] = await stored(db)
    assert str(row["id"]) == result.stdout.strip()
    assert row["run_at"] == datetime(2030, 1, 31, 7, 0, tzinfo=UTC)


async def test_json_lines_from_stdin_are_enqueued_in_order(
    database_url: str, db: asyncpg.Connection
) -> None:
    count = 12_000  # three calls of enqueue_many
    lines = [json.dumps({"n": n, "text": "naïve"}) for n in range(count)]
    lines[5] = "  "  # blank lines are skipped
    text = "\n".join(lines) + "\n\n"

    result = enqueue(database_url, "-", "--ids", "--priority", "3", stdin=text.encode())

    assert result.returncode == 0, describe(result)
    ids = [UUID(line) for line in result.stdout.splitlines()]
    assert len(ids) == count - 1
    rows = {row["id"]: row for row in await stored(db)}
    assert [json.loads(rows[job_id]["payload"])["n"] for job_id in ids] == [
        n for n in range(count) if n != 5
    ]
    assert {row["priority"] for row in rows.values()} == {3}


async def test_json_lines_print_their_count_and_take_a_delay(
    database_url: str, db: asyncpg.Connection
) -> None:
    result = enqueue(database_url, "-", "--delay", "600", stdin=b'{"a": 1}\n[2]\n"three"\n')
    assert (result.returncode, result.stdout) == (0, "3\n"), describe(result)
    rows = await stored(db)
    assert sorted(row["payload"] for row in rows) == ['"three"', "[2]", '{"a":1}']
    assert all(row["run_at"] > datetime.now(UTC) for row in rows)


BAD_LINES: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{not json", "not valid JSON"),
    "not UTF-8": (b'{"s": "\xff\xfe"}', "not UTF-8"),
    "NaN": (b'{"x": NaN}', "not JSON-serializable"),
    "too deep": (deep_json(MAX_PAYLOAD_DEPTH + 1).encode(), "nested"),
    "5,000 deep": (deep_json(5000).encode(), "nested too deeply"),
    "lone surrogate": (b'{"s": "\\ud800"}', "surrogate"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
async def test_a_bad_line_is_named_and_nothing_is_written(
    case: str, database_url: str, db: asyncpg.Connection
) -> None:
    bad, mentions = BAD_LINES[case]
    lines = [b'{"n": %d}' % n for n in range(7000)]
    lines[6500] = bad  # in the second call of enqueue_many: the first one's rows roll back
    result = enqueue(database_url, "-", stdin=b"\n".join(lines) + b"\n")
    assert_usage_error(result, "line 6501 of stdin", mentions)
    assert await stored(db) == []
