"""structlog set-up: JSON lines for machines, colourless console lines for people.

Loggers below the configured level are no-ops (structlog's filtering bound logger), so per-job
debug events cost almost nothing in production.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _StderrLogger:
    """Writes rendered lines to stderr and never raises.

    A log line must not be able to stop the daemon: when stderr is a closed pipe (the reader
    went away) or a full disk, the line is dropped, and shutdown still hands jobs back.
    """

    def msg(self, message: str) -> None:
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


def _stderr_logger_factory(*_args: Any) -> _StderrLogger:
    return _STDERR_LOGGER


_STDERR_LOGGER = _StderrLogger()


class _QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that drops a record it cannot write instead of reporting it on stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def configure_logging(level: str = "info", log_format: str | None = None) -> None:
    """Configure structlog for the process; ``log_format`` None picks by whether stderr is a TTY.

    Records of the standard ``logging`` module (asyncpg's, a handler's) go through the same
    renderer, so stderr stays one format: JSON lines stay JSON lines.
    """
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Any]
    if log_format == "json":
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=False,
    )
    handler = _QuietStreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_LEVELS[level])
    # During a database outage asyncpg's pool logs a traceback for every reconnection attempt;
    # the daemon's own events (claim_failed, database_unavailable, ...) already say it.
    logging.getLogger("asyncpg.pool").setLevel(
        logging.DEBUG if level == "debug" else logging.CRITICAL
    )
