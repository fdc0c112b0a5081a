"""``HandlerThreads``: the bounded pool of threads that runs plain-``def`` handlers.

A sync handler never runs on the event loop: ``run`` hands it to one of at most ``size`` threads
and awaits its end, so the heartbeat, claims and outcome writes go on while it blocks. A job waits
for a free thread when all are taken; that wait is part of its run, timeout included.

A thread cannot be stopped. When the run's awaiting coroutine is cancelled (the job's timeout, a
shutdown past ``shutdown_timeout``, a cancellation), ``run`` raises at once, so the executor
records the outcome as it would for an async handler, and the thread is abandoned: logged
(``sync_handler_abandoned``), left to finish on its own, its result ignored, and counted as taking
a slot of the pool until it ends (``sync_handler_abandoned_ended``). The threads are daemon
threads: the process exits without waiting for them.

The handler runs in a copy of the caller's context variables, as ``asyncio.to_thread`` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from .job import Job

log = structlog.get_logger("docko_worker.threads")


class _Call:
    __slots__ = ("abandoned", "context", "future", "handler", "job", "loop", "started")

    def __init__(
        self,
        handler: Callable[[Job], object],
        job: Job,
        future: asyncio.Future[None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.handler = handler
        self.job = job
        self.future = future
        self.loop = loop
        self.context = contextvars.copy_context()
        self.abandoned = False
        self.started = time.monotonic()


class HandlerThreads:
    """Runs sync handlers on at most ``size`` daemon threads, started as they are needed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = asyncio.Semaphore(size)
        self._work: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # Calls handed to the threads and not ended yet, abandoned ones included.
        self._in_flight: dict[int, _Call] = {}

    async def run(self, handler: Callable[[Job], object], job: Job) -> None:
        """Run ``handler(job)`` in a thread; return or raise as it did."""
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        call = _Call(handler, job, loop.create_future(), loop)
        self._in_flight[id(call)] = call
        if len(self._in_flight) > len(self._threads):
            self._start_thread()
        self._work.put(call)
        try:
            await call.future
        except asyncio.CancelledError:
            if id(call) in self._in_flight:
                call.abandoned = True
                log.warning(
                    "sync_handler_abandoned",
                    job_id=str(job.id),
                    job_type=job.job_type,
                    attempt=job.attempt,
                    threads_abandoned=self.abandoned,
                    thread_pool_size=self.size,
                    note="a thread cannot be stopped: it runs on, its result ignored",
                )
            raise

    @property
    def abandoned(self) -> int:
        """Threads still running handlers whose runs were given up on."""
        return sum(1 for call in self._in_flight.values() if call.abandoned)

    def _start_thread(self) -> None:
        index = len(self._threads)
        thread = threading.Thread(target=self._serve, name=f"docko-handler-{index}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while (call := self._work.get()) is not None:
            error: BaseException | None = None
            try:
                result = call.context.run(call.handler, call.job)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()
                    raise TypeError(
                        "a plain-def handler returned an awaitable: declare it async def"
                    )
            except StopIteration as exc:  # a Future cannot carry it (asyncio does the same)
                error = RuntimeError(f"handler raised StopIteration: {exc!r}")
            except BaseException as exc:  # every way a handler ends is an outcome
                error = exc
            try:
                call.loop.call_soon_threadsafe(self._ended, call, error)
            except RuntimeError:  # the event loop is closed: the daemon is exiting
                return
            del call, error

    def _ended(self, call: _Call, error: BaseException | None) -> None:
        """On the event loop: the thread is free again."""
        del self._in_flight[id(call)]
        self._slots.release()
        if call.abandoned:
            job = call.job
            log.info(
                "sync_handler_abandoned_ended",
                job_id=str(job.id),
                job_type=job.job_type,
                attempt=job.attempt,
                ran_for=round(time.monotonic() - call.started, 3),
            )
        elif not call.future.done():
            if error is None:
                call.future.set_result(None)
            else:
                call.future.set_exception(error)

    def close(self) -> None:
        """Let idle threads end; those still running a handler end with it (or the process)."""
        still_running = [call.job for call in self._in_flight.values()]
        if still_running:
            log.warning(
                "sync_handlers_still_running_at_exit",
                jobs=[str(job.id) for job in still_running],
                note="their threads end with the process",
            )
        for _ in self._threads:
            self._work.put(None)
        self._threads.clear()
