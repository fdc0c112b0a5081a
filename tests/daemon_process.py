"""``docko-worker`` processes for the e2e and chaos layers, and the environment they run with.

A ``DaemonProcess`` is started from the virtual environment's script with exactly the environment a
test passes (process basics, ``PYTHONPATH`` naming the installed handler packages, the test's
``DOCKO_*`` settings; never a variable of the caller's); stdout and stderr go to files, so a chatty
daemon never blocks on a full pipe and a killed daemon's last words are kept. A ``Fleet`` holds the
daemons of one test and kills whatever still runs at teardown; it and ``KeepRunning`` are the
``Watch`` (``tests/waiting.py``) a test hands to its waits, so a daemon that dies meanwhile fails
the test at once. Each layer subclasses ``DaemonProcess`` with its own waits (blocking in e2e,
async in chaos), all built on ``tests/waiting.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import pytest

CLI = str(Path(sys.executable).with_name("docko-worker"))
# Generous: a working command needs a fraction of it, a slow machine is not a failure.
CLI_TIMEOUT = 60.0

_KEPT_ENVIRON = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def minimal_environ(python_path: Sequence[Path]) -> dict[str, str]:
    """Process basics from ``os.environ`` and ``PYTHONPATH``; no ``DOCKO_*`` setting at all."""
    env = {key: value for key, value in os.environ.items() if key in _KEPT_ENVIRON}
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in python_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def with_settings(
    base: Mapping[str, str],
    defaults: Mapping[str, str],
    database_url: str | None,
    settings: Mapping[str, str | None],
) -> dict[str, str]:
    """``base`` plus ``defaults``, ``DOCKO_DATABASE_URL`` (unless None) and ``settings`` (a None
    value removes the variable)."""
    env = {**base, **defaults}
    if database_url is not None:
        env["DOCKO_DATABASE_URL"] = database_url
    for key, value in settings.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``docko-worker *args`` to completion with exactly ``env``, capturing its output."""
    try:
        return subprocess.run(
            [CLI, *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"docko-worker {' '.join(args)} did not exit within {timeout:g}s: {exc}")


class DaemonProcess:
    """A ``docko-worker`` process whose stdout and stderr go to files."""

    #: Stderr lines ``describe`` shows, and the most characters of each (None: whole lines).
    describe_tail = 60
    describe_width: int | None = None

    def __init__(self, proc: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.proc = proc
        self.stdout_path = stdout
        self.stderr_path = stderr
        # The first signal the test sent (a later SIGKILL replaces it), and when.
        self.signalled: signal.Signals | None = None
        self.signalled_at: float | None = None
        # Set by tests of a daemon that is meant to exit by itself (bad configuration).
        self.exit_expected = False

    @classmethod
    def launch(cls, directory: Path, index: int, env: Mapping[str, str], *args: str) -> Self:
        """Start ``docko-worker run`` (or ``docko-worker *args``) with exactly ``env``; its
        output goes to ``daemon<index>.stdout`` and ``.stderr`` in ``directory``."""
        stdout = directory / f"daemon{index}.stdout"
        stderr = directory / f"daemon{index}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                [CLI, *(args or ("run",))],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        return cls(proc, stdout, stderr)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr so far (other lines are skipped)."""
        found: list[dict[str, Any]] = []
        for line in self.stderr().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def event_names(self) -> list[str]:
        return [str(record.get("event")) for record in self.events()]

    def event_count(self, event: str) -> int:
        return sum(1 for record in self.events() if record.get("event") == event)

    def send(self, signum: signal.Signals) -> None:
        """Send ``signum`` (if still running) and remember it: a signalled exit is expected."""
        if self.signalled is None or signum == signal.SIGKILL:
            self.signalled, self.signalled_at = signum, time.time()
        if self.alive():
            self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def describe(self, tail: int | None = None) -> str:
        width = self.describe_width
        lines = self.stderr().splitlines()[-(tail or self.describe_tail) :]
        if width is not None:
            lines = [line[:width] for line in lines]
        return (
            f"--- daemon pid {self.pid}, exit status {self.proc.poll()}; "
            f"last {len(lines)} stderr lines:\n" + "\n".join(lines)
        )


D = TypeVar("D", bound=DaemonProcess)


class Fleet(Generic[D]):
    """The daemons of one test; whatever is still running at teardown is killed.

    As a ``Watch``, a daemon that exited without being signalled (``send``) or marked
    ``exit_expected`` fails the test.
    """

    def __init__(self, directory: Path, kind: type[D]) -> None:
        self._directory = directory
        self._kind = kind
        self.started: list[D] = []

    def start(self, env: Mapping[str, str], *args: str) -> D:
        """Start ``docko-worker run`` (or ``docko-worker *args``) with exactly ``env``."""
        daemon = self._kind.launch(self._directory, len(self.started), env, *args)
        self.started.append(daemon)
        return daemon

    @property
    def running(self) -> list[D]:
        return [daemon for daemon in self.started if daemon.alive()]

    def check(self, what: str = "") -> None:
        """Fail if a daemon exited that the test did not signal."""
        for daemon in self.started:
            if not daemon.alive() and daemon.signalled is None and not daemon.exit_expected:
                waiting = f" while waiting for {what}" if what else ""
                pytest.fail(f"daemon exited on its own{waiting}\n{daemon.describe()}")

    def kill_all(self) -> None:
        for daemon in self.started:
            daemon.kill()

    def events(self) -> list[dict[str, Any]]:
        return [record for daemon in self.started for record in daemon.events()]

    def describe(self, tail: int | None = None) -> str:
        return "\n".join(daemon.describe(tail) for daemon in self.started)

    def all_output(self) -> str:
        return "\n".join(daemon.stdout() + "\n" + daemon.stderr() for daemon in self.started)


class KeepRunning:
    """A ``Watch`` of daemons that must all keep running while the test waits."""

    def __init__(self, daemons: Iterable[DaemonProcess]) -> None:
        self._daemons = list(daemons)

    def check(self, what: str = "") -> None:
        for daemon in self._daemons:
            if not daemon.alive():
                pytest.fail(f"daemon exited while waiting for {what}\n{daemon.describe()}")

    def describe(self) -> str:
        return "\n".join(daemon.describe() for daemon in self._daemons)
