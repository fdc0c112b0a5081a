"""``docko-worker healthcheck``: a stale file is never called healthy, whatever ``--max-age`` says.

``--max-age`` must be a finite number of seconds above zero: NaN compares false with every age
and infinity exceeds none, so either would pass a daemon that stopped long ago.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from docko_worker.cli import EXIT_USAGE, main
from docko_worker.health import check_health_file, check_max_age

NOT_AGES = ["nan", "inf", "-inf", "-1", "0", "1e400", "soon"]


@pytest.fixture
def stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A health file last touched an hour ago, named by ``DOCKO_HEALTH_FILE``."""
    path = tmp_path / "healthy"
    path.touch()
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    monkeypatch.setenv("DOCKO_HEALTH_FILE", str(path))
    return path


@pytest.mark.parametrize("max_age", NOT_AGES)
def test_a_max_age_that_is_not_a_positive_finite_number_is_a_usage_error(
    max_age: str, stale_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["healthcheck", "--max-age", max_age]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert "--max-age" in line


def test_a_stale_file_is_unhealthy(stale_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["healthcheck", "--max-age", "60"]) == 1
    assert capsys.readouterr().out.startswith("unhealthy")
    assert main(["healthcheck", "--max-age", "7200"]) == 0
    assert capsys.readouterr().out.startswith("healthy")


@pytest.mark.parametrize("max_age", [float("nan"), float("inf"), -1.0, 0.0])
def test_check_health_file_refuses_a_max_age_that_is_no_bound(
    max_age: float, stale_file: Path
) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        check_health_file(str(stale_file), max_age)
    with pytest.raises(ValueError, match="positive number of seconds"):
        check_max_age(max_age)
