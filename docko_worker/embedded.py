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
from an older pgserver release can never get in the way. When run as root, pgserver runs PostgreSQL
as a system user ``pgserver`` (creating it with ``useradd`` on first use) and makes every parent of
the data directory readable and traversable by others; under ``/tmp`` that changes nothing, whereas
under a checkout in ``/root`` it would open up the home directory.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import structlog

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

    def __init__(self, directory: Path, server: Any, started_in: float) -> None:
        self.directory = directory
        self.started_in = started_in
        self._server = server
        self.dsn: str = server.get_uri()

    def stop(self) -> None:
        """Stop the server and delete its directory; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.cleanup()
        except Exception as exc:
            # The data directory is kept: a server may still be using it.
            log.error(
                "embedded_postgres_stop_failed",
                directory=str(self.directory),
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        shutil.rmtree(self.directory, ignore_errors=True)

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
    try:
        server = pgserver.get_server(directory / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise DockoError(
            f"could not start the embedded PostgreSQL (pgserver): {type(exc).__name__}: {exc}"
        ) from exc
    return EmbeddedPostgres(directory, server, time.perf_counter() - began)
