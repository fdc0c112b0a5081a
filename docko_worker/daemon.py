"""The daemon process: its event loop, signals, start-up, garbage-collector tuning and exit.

``run_async`` is the one event-loop runner of the package (uvloop where available), shared by the
daemon and the demo. ``run_daemon`` waits for the database, migrates, serves until SIGTERM or
SIGINT, stops gracefully, and returns the exit status: 0, or 1 when outcomes could not be written
at shutdown (their jobs run again after their lease; the log names them). A second signal exits at
once.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import structlog

from .config import Config, redact_dsn
from .job import Job
from .periodic import Periodic
from .pool import wait_for_pool
from .queue import Queue
from .registry import HandlerRegistry

log = structlog.get_logger("docko_worker.daemon")

_T = TypeVar("_T")

# Exit status when some outcomes could not be written at shutdown.
EXIT_OUTCOMES_NOT_WRITTEN = 1

# The daemon's young-generation collection threshold (Python's default is 700).
GC_GEN0_THRESHOLD = 10_000


def run_async(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run the coroutine ``factory`` makes on a new event loop (uvloop where available)."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is unavailable on some platforms; asyncio's loop works too
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(factory())


_early_signals: list[int] = []


def _remember_signal(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


def remember_early_signals() -> None:
    """Until the event loop takes over, a SIGTERM is remembered instead of killing the process."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _remember_signal)


def tune_garbage_collector() -> None:
    """Cheaper cyclic garbage collection for the daemon process, once start-up is done.

    Start-up's objects (modules, classes, configuration, handlers) live as long as the process:
    frozen, they are no longer traversed by every full collection. A claim batch allocates and
    frees thousands of objects, and at the default threshold each swing set off a collection;
    at 10,000 young objects a collection comes every few batches. Measured on a 20,000-job
    burn-down: 60 ms of collections become about 15. The jobs' own objects are freed by reference
    counting; a failed handler leaves no cycle behind (see ``Workers._work``).
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def run_daemon(
    config: Config, registry: HandlerRegistry, periodics: Sequence[Periodic] = ()
) -> int:
    """The daemon: wait for the database, migrate, serve until a signal, stop gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1:
            log.info("stop_requested", signal=name, shutdown_timeout=config.shutdown_timeout)
            stop.set()
        else:
            # Jobs still running return through their lease.
            log.warning("forced_exit", signal=name)
            os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    for early in _early_signals:
        on_signal(early)

    log.info(
        "daemon_starting",
        dsn=redact_dsn(config.database_url),
        queues=config.queues,
        job_types=registry.job_types,
        worker_count=config.worker_count,
    )
    pool = await wait_for_pool(config, stop, generic_plans=True)
    if pool is None:
        log.info("daemon_stopped_before_start")
        return 0
    queue = Queue(pool, config, registry=registry, owns_pool=True)
    for periodic in periodics:
        queue.register_periodic(periodic)
    unwritten: list[Job] = []
    try:
        if config.auto_migrate:
            applied = await queue.migrate()
            if applied:
                log.info("migrations_applied", versions=[m.version for m in applied])
        tune_garbage_collector()
        await queue.start()
        await stop.wait()
        unwritten = await queue.stop()
    finally:
        await queue.close()
    await _exit_past_stuck_handlers(EXIT_OUTCOMES_NOT_WRITTEN if unwritten else 0)
    if unwritten:
        log.error("daemon_stopped_with_unwritten_outcomes", outcomes=len(unwritten))
        return EXIT_OUTCOMES_NOT_WRITTEN
    log.info("daemon_stopped")
    return 0


async def _exit_past_stuck_handlers(status: int, grace: float = 5.0) -> None:
    """Cancel what is left; if a handler ignores that too, exit without waiting for it.

    Its job was already recorded (timeout) or handed back (shutdown), so nothing is lost, but
    asyncio would otherwise wait for the task forever when the loop closes.
    """
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    if not leftovers:
        return
    _, stuck = await asyncio.wait(leftovers, timeout=grace)
    if stuck:
        log.error("exiting_past_stuck_handlers", tasks=sorted(task.get_name() for task in stuck))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
