"""The chaos layer's servers: a missing PgBouncer fails the test saying what to install.

The suite never installs system packages (``.ci/run`` does, saying so): no process is started.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from chaos_servers import pgbouncer_binary

pytestmark = pytest.mark.chaos


def test_missing_pgbouncer_fails_saying_what_to_install_and_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", record)
    monkeypatch.setattr(subprocess, "Popen", record)
    with pytest.raises(pytest.fail.Exception) as failure:
        pgbouncer_binary(path=str(tmp_path), fallback=tmp_path / "pgbouncer")
    assert "apt-get install pgbouncer" in str(failure.value)
    assert started == []


def test_pgbouncer_is_found_on_the_path(tmp_path: Path) -> None:
    binary = tmp_path / "pgbouncer"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert pgbouncer_binary(path=str(tmp_path), fallback=tmp_path / "missing") == str(binary)
