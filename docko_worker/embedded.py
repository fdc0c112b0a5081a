"""The embedded PostgreSQL server that ``docko-worker demo`` starts when no database is configured.

It comes from ``pgserver`` (the ``embedded`` extra), which ships PostgreSQL binaries.
``start_embedded_postgres`` runs ``initdb`` and starts a server in a new temporary directory,
``$TMPDIR/docko-demo-XXXXXXXX/pgdata`` (about half a second). The server listens on a Unix socket
in that directory and on no TCP port, so it never clashes with a server already running on the
machine. ``EmbeddedPostgres.stop`` (or leaving its ``with`` block, including on Ctrl-C) stops the
server and deletes the directory; pgserver's own ``atexit`` hook is the fallback should the process
exit some other way. Only SIGKILL leaves a server behind, in a directory named ``docko-demo-*``.

Why a temporary directory and not ``./.docko-demo`` under the working directory: each run starts
from an empty cluster wherever it is run from, nothing is left in the checkout, and a data directory
from an older pgserver release can never get in the way.

When run as root, PostgreSQL runs as a system user ``pgserver``: an existing one is reused as it
is; otherwise it is created first without a login shell or home directory and removed again when
the server stops, and the parent directories pgserver opens up to other users get their modes back
(``embedded_user.py``). ``EmbeddedPostgres.system_user`` says which, for the demo's output. An
``atexit`` hook stops the server and undoes this should the process exit without ``stop``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import structlog

from .embedded_user import DirectoryModes, SystemUser, prepare_system_user
from .errors import DockoError

log = structlog.get_logger("docko_worker.embedded")

MISSING_MESSAGE = (
    "no database: set DOCKO_DATABASE_URL, or install the 'embedded' extra "
    "(pip install 'docko-worker[embedded]') to run an embedded PostgreSQL"
)


def _import_pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI, root);
            # pgserver then falls back to a directory under /tmp, which is fine.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pgserver
    except ImportError:
        raise DockoError(MISSING_MESSAGE) from None
    return pgserver


class EmbeddedPostgres:
    """A running embedded server; ``dsn`` reaches its ``postgres`` database as superuser."""

    def __init__(
        self,
        directory: Path,
        server: Any,
        started_in: float,
        system_user: SystemUser | None = None,
        modes: DirectoryModes | None = None,
    ) -> None:
        self.directory = directory
        self.started_in = started_in
        #: The system user PostgreSQL runs as when started by root (None otherwise).
        self.system_user = system_user
        #: What could not be undone at ``stop`` (a user still in use, say), for the output.
        self.left_behind: list[str] = []
        self._server = server
        self._modes = modes
        self.dsn: str = server.get_uri()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the server, delete its directory and undo what root's start changed; safe to call
        twice."""
        server, self._server = self._server, None
        if server is None:
            return
        atexit.unregister(self.stop)
        try:
            server.cleanup()
        except Exception as exc:
            # The data directory (and the user running the server) is kept: it may still run.
            log.error(
                "embedded_postgres_stop_failed",
                directory=str(self.directory),
                error=f"{type(exc).__name__}: {exc}",
            )
            self.left_behind.append(f"the data directory {self.directory}")
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        self.left_behind += _undo(self.system_user, self._modes)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_embedded_postgres(parent: str | Path | None = None) -> EmbeddedPostgres:
    """Start a fresh server in a new temporary directory (under ``parent`` if given).

    Raises ``DockoError`` with one line when pgserver is not installed or the server will not start
    (pgserver logs the server's own log on stderr in that case).
    """
    pgserver = _import_pgserver()
    directory = Path(tempfile.mkdtemp(prefix="docko-demo-", dir=parent))
    began = time.perf_counter()
    system_user: SystemUser | None = None
    modes: DirectoryModes | None = None
    try:
        system_user = prepare_system_user()
        if system_user is not None:
            modes = DirectoryModes.record(
                [directory / "pgdata", Path(str(pgserver.__file__)).parent / "pginstall" / "bin"],
                new_dirs=[Path(pgserver.PostgresServer.lock_path).parent],
            )
        server = pgserver.get_server(directory / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(directory, ignore_errors=True)
        _undo(system_user, modes)
        raise DockoError(
            f"could not start the embedded PostgreSQL (pgserver): {type(exc).__name__}: {exc}"
        ) from exc
    return EmbeddedPostgres(directory, server, time.perf_counter() - began, system_user, modes)


def _undo(system_user: SystemUser | None, modes: DirectoryModes | None) -> list[str]:
    """Remove the system user this process created and put directory modes back; returns what
    was left behind (each also logged)."""
    left: list[str] = []
    if modes is not None:
        left += modes.restore()
    if system_user is not None:
        try:
            system_user.remove()
        except OSError as exc:
            left.append(f"the system user {system_user.name!r} ({exc})")
    for item in left:
        log.error("embedded_postgres_left_behind", what=item)
    return left
