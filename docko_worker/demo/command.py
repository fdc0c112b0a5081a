"""The ``docko-worker demo`` command: arguments, logging, the server, the event loop, the output.

This module owns the command around a demo session: it checks the arguments, sets up quiet logging
for the run, uses the configured server or starts an embedded one (``embedded.py``), runs the
session on an event loop that SIGTERM stops as Ctrl-C does, and prints the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

from ..config import Config, load_config, redact_dsn
from ..daemon import run_async
from ..errors import DockoError
from ..logs import configure_logging
from .database import DEMO_DATABASE
from .display import Display, quiet_simulated_failures
from .report import format_summary
from .session import DemoArguments, run_session
from .workload import SIMULATED_ERRORS

_T = TypeVar("_T")

DEFAULT_WORKERS = 50


def _run(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T | None:
    """Run ``main`` on the daemon's event loop; SIGTERM stops it as Ctrl-C does (returns None)."""

    async def guarded() -> _T:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main()

    try:
        result = run_async(guarded)
    except asyncio.CancelledError:
        return None
    return result


def check_arguments(jobs: int, workers: int, failure_rate: float) -> None:
    if jobs < 1:
        raise DockoError(f"--jobs must be at least 1, got {jobs}")
    if workers < 1:
        raise DockoError(f"--workers must be at least 1, got {workers}")
    if not 0.0 <= failure_rate <= 1.0:
        raise DockoError(f"--failure-rate must be between 0 and 1, got {failure_rate:g}")


def run_demo(*, jobs: int, workers: int | None, failure_rate: float) -> int:
    """Run the demo (see the package docstring); returns the exit status."""
    args = DemoArguments(jobs, DEFAULT_WORKERS if workers is None else workers, failure_rate)
    check_arguments(args.jobs, args.workers, args.failure_rate)
    base = load_config()
    display = Display(sys.stdout)
    saved_logging = structlog.get_config()
    configure_logging("warning", base.log_format)
    structlog.configure(
        processors=[
            quiet_simulated_failures(display, SIMULATED_ERRORS),
            *structlog.get_config()["processors"],
        ]
    )
    try:
        display.say(
            f"docko-worker demo: {args.jobs} jobs, {args.workers} workers, "
            f"{args.failure_rate:.0%} of attempts fail"
        )
        if base.database_url:
            return _demo_and_summary(args, base, base.database_url, display, embedded=False)
        from ..embedded import start_embedded_postgres

        display.say("DOCKO_DATABASE_URL is not set: starting an embedded PostgreSQL (pgserver)")
        with start_embedded_postgres() as server:
            display.say(
                f"embedded PostgreSQL ready in {server.started_in:.1f} s "
                f"(data in {server.directory}, deleted at exit)"
            )
            if server.system_user is not None:
                display.say(server.system_user.describe())
            status = _demo_and_summary(args, base, server.dsn, display, embedded=True)
        display.say(f"embedded PostgreSQL stopped, {server.directory} deleted")
        for item in server.left_behind:
            display.say(f"left behind: {item}")
        return status
    except KeyboardInterrupt:
        display.end_progress()
        display.say("demo interrupted")
        raise
    finally:
        display.end_progress()
        structlog.configure(**saved_logging)


def _program() -> str:
    """The command to run docko-worker again, as this one was (``.venv/bin/docko-worker``)."""
    invoked = sys.argv[0]
    if os.path.basename(invoked) == "docko-worker" and os.path.isfile(invoked):
        relative = os.path.relpath(invoked)
        if not relative.startswith(".."):
            return relative
    return "docko-worker"


def _demo_and_summary(
    args: DemoArguments, base: Config, server_dsn: str, display: Display, *, embedded: bool
) -> int:
    result = _run(lambda: run_session(args, base, server_dsn, display))
    if result is None:
        display.end_progress()
        display.say("demo interrupted")
        return 128 + signal.SIGTERM
    outcome, demo_dsn = result
    display.say(format_summary(outcome))
    if not embedded:
        display.say(
            f"  {'kept':<13} the jobs stay in {DEMO_DATABASE} until the next demo; to see them:\n"
            f"{'':16}DOCKO_DATABASE_URL='{redact_dsn(demo_dsn)}' {_program()} stats"
        )
    display.say()
    return 0
