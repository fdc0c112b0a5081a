"""Commands run against a database whose schema is not installed say so, and what to run."""

from __future__ import annotations

import pytest

from tests.daemon_process import minimal_environ, run_cli


@pytest.mark.parametrize(
    "args", [["stats"], ["enqueue", "default", "ocr", "{}"], ["jobs", "list"]], ids=lambda a: a[0]
)
def test_a_command_before_migrate_names_the_fix(empty_database_url: str, args: list[str]) -> None:
    env = minimal_environ([])
    env.update(DOCKO_DATABASE_URL=empty_database_url, DOCKO_LOG_FORMAT="json")
    result = run_cli(args, env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "the schema is not installed" in line
    assert "docko-worker migrate" in line
