"""The servers the chaos tests start: PostgreSQL clusters of their own, and PgBouncer.

A cluster is made by ``initdb`` or, as a streaming standby of a running one, by
``pg_basebackup -R`` (the failover test promotes it). PostgreSQL's programs and PgBouncer refuse
to run as root, so when the suite runs as root they run as the ``postgres`` OS user (the switch
happens in the child before ``exec``, so the process the fixture holds is the server itself), in
temporary directories that user owns.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


def os_user(cwd: Path) -> dict[str, object]:
    """``subprocess`` options that run a server as the ``postgres`` OS user when we are root
    (initdb, postgres and pgbouncer refuse root); the switch happens in the child before exec, so
    the process we hold is the server itself and our signals reach it."""
    if os.geteuid() != 0:
        return {"cwd": cwd}
    return {"cwd": cwd, "user": OS_USER, "group": OS_USER, "extra_groups": []}


def owned_temp_dir(prefix: str) -> Path:
    """A temporary directory the server's OS user owns (outside root-only pytest dirs)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, OS_USER, OS_USER)
    return path


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answers on port {port} after {timeout:g}s")
        time.sleep(0.05)


@dataclass
class OwnCluster:
    """A PostgreSQL cluster of the suite's own, which tests may stop and start."""

    directory: Path
    port: int
    # Extra server settings given on the command line at every start (never copied to a standby).
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> None:
        result = subprocess.run(
            [str(PG_BIN / program), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            **os_user(self.directory),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}"
                f"\n{result.stderr}\n{self.tail_log()}"
            )

    def _pg_ctl(self, *args: str, timeout: float = 60.0) -> None:
        self._run("pg_ctl", "-D", str(self.data), *args, timeout=timeout)

    def initdb(self) -> None:
        """A new, empty cluster in ``data`` (trust authentication, replication allowed)."""
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"),
            timeout=120,
        )

    def standby(self, directory: Path, port: int) -> OwnCluster:
        """A streaming standby of this running cluster, by ``pg_basebackup -R`` into ``directory``
        (not started). Settings of this cluster's command line are not copied."""
        standby = OwnCluster(directory, port)
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D", str(standby.data)),
            *("-R", "-X", "stream", "--checkpoint=fast", "--no-sync"),
            timeout=120,
        )
        return standby

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c fsync=off -c full_page_writes=off"
        )
        for name, value in self.settings.items():
            options += f" -c {shlex.quote(f'{name}={value}')}"
        self._pg_ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def promote(self) -> None:
        """Make this standby a primary; returns once it accepts writes."""
        self._pg_ctl("-w", "-t", "60", "promote")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def tail_log(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "--- server log:\n" + "\n".join(text.splitlines()[-lines:])


def pgbouncer_binary(path: str | None = None, fallback: Path = Path("/usr/sbin/pgbouncer")) -> str:
    """The pgbouncer executable on ``path`` (default ``$PATH``) or at ``fallback`` (Debian puts it
    in /usr/sbin, which a non-root ``$PATH`` may lack); the test fails saying what to install
    when it is missing.

    The suite never installs anything itself: ``.ci/run`` installs PgBouncer before the tests.
    """
    found = shutil.which("pgbouncer", path=path) or (str(fallback) if fallback.exists() else None)
    if found is None:
        pytest.fail(
            "pgbouncer is not installed, and the PgBouncer test needs it: install PgBouncer "
            "(Debian/Ubuntu: sudo apt-get install pgbouncer; .ci/run does this) and run again"
        )
    return found


@dataclass
class PgBouncer:
    port: int
    version: str
    directory: Path

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return (self.directory / "pgbouncer.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
