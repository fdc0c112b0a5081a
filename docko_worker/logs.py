"""structlog set-up: JSON lines for machines, colourless console lines for people.

``configure_logging`` is public: the CLI calls it, and so does an application that embeds
``Queue`` and wants docko's events (and the standard ``logging`` module's records) rendered the
same way, on stderr or on a stream of its choice. Loggers below the configured level are no-ops
(structlog's filtering bound logger), so per-job debug events cost almost nothing in production.

A traceback never shows frame locals (a local ``config`` or ``dsn`` would print the database
password): the console renderer gets an exception formatter without them, whichever of rich or
plain tracebacks is installed; the JSON renderer formats tracebacks plainly.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _StreamLogger:
    """Writes rendered lines to a stream (stderr by default, looked up per line) and never raises.

    A log line must not be able to stop the daemon: when stderr is a closed pipe (the reader
    went away) or a full disk, the line is dropped, and shutdown still hands jobs back.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


class _QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that drops a record it cannot write instead of reporting it on stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _exception_formatter() -> Any:
    """Tracebacks for the console renderer, never with frame locals (they may hold secrets)."""
    if getattr(structlog.dev, "rich", None) is not None:  # structlog found rich installed
        return structlog.dev.RichTracebackFormatter(show_locals=False)
    return structlog.dev.plain_traceback


def configure_logging(
    level: str = "info", log_format: str | None = None, *, stream: TextIO | None = None
) -> None:
    """Configure structlog, and the root logger of ``logging``, for the process.

    ``level``: ``debug``, ``info``, ``warning`` or ``error``. ``log_format``: ``json`` (one JSON
    object per line) or ``console``; None picks console when the stream is a terminal, JSON
    otherwise. ``stream``: where lines go, stderr by default (looked up at each line, so a
    replaced ``sys.stderr`` is honoured); never stdout unless asked, which may be a program's
    data channel.

    Records of the standard ``logging`` module (asyncpg's, a handler's) go through the same
    renderer, so the stream stays one format: JSON lines stay JSON lines. This replaces the root
    logger's handlers: an application with its own ``logging`` set-up may prefer to leave docko's
    events to structlog's defaults instead.
    """
    if level not in _LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}, not {level!r}")
    if log_format not in (None, "json", "console"):
        raise ValueError(f"log format must be json or console, not {log_format!r}")
    if log_format is None:
        log_format = "console" if (stream or sys.stderr).isatty() else "json"
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
        renderer = [
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_exception_formatter())
        ]
    logger = _StreamLogger(stream)
    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_args: logger,
        cache_logger_on_first_use=False,
    )
    handler = _QuietStreamHandler(stream or sys.stderr)
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
