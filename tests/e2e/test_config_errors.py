"""`run` refuses configuration it cannot use at once: one line naming the variable, exit 2.

Before anything runs: no connection is tried, nothing is retried, and the DSN (with its password)
is not repeated. Each case would otherwise have the daemon wait for a database forever (a DSN
asyncpg cannot use is reported by asyncpg as a connection error) or strand jobs (a lease in the
year 33715).
"""

from __future__ import annotations

import pytest
from e2e_helpers import daemon_env, describe_result, run_cli

pytestmark = pytest.mark.e2e

SECRET = "Secr3t-pw"
# Nothing listens on port 1: a daemon that accepted its configuration would wait, not exit.
UNANSWERED = f"postgresql://alice:{SECRET}@127.0.0.1:1/documents"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"DOCKO_DATABASE_URL": f"host=127.0.0.1 port=1 password={SECRET}"}, "DOCKO_DATABASE_URL"),
        ({"DOCKO_DATABASE_URL": "127.0.0.1:1/documents"}, "DOCKO_DATABASE_URL"),
        ({"DOCKO_DATABASE_URL": None, "DATABASE_URL": f"password={SECRET}"}, "DATABASE_URL"),
        (
            {"DOCKO_DATABASE_URL": f"postgresql://u:12/{SECRET}@127.0.0.1:1/db"},
            "DOCKO_DATABASE_URL",
        ),
        ({"DOCKO_VISIBILITY_TIMEOUT": "1e12"}, "DOCKO_VISIBILITY_TIMEOUT"),
        ({"DOCKO_POLL_INTERVAL": "inf"}, "DOCKO_POLL_INTERVAL"),
        ({"DOCKO_COMPLETION_FLUSH_INTERVAL": "30"}, "DOCKO_COMPLETION_FLUSH_INTERVAL"),
        ({"DOCKO_FAILED_RETENTION": "nan"}, "DOCKO_FAILED_RETENTION"),
    ],
    ids=[
        "keyword-dsn",
        "no-scheme",
        "keyword-database-url",
        "slash-in-password",
        "huge-lease",
        "inf-poll",
        "long-flush",
        "nan-retention",
    ],
)
def test_run_refuses_unusable_configuration_at_once(
    settings: dict[str, str | None], named: str, base_env: dict[str, str]
) -> None:
    result = run_cli(["run"], daemon_env(base_env, UNANSWERED, **settings), timeout=20)
    assert result.returncode == 2, describe_result(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe_result(result)
    assert lines[0].startswith(f"docko-worker: error: invalid configuration: {named}: ")
    assert SECRET not in result.stderr + result.stdout
