"""``Workers``: N coroutine workers that take claimed jobs from the hand-off and run them.

Each worker takes a job, runs it through the ``Executor`` and gives its ``Outcome`` to the
``Recorder``, then takes the next; it waits only when the completer has too many outcomes unwritten
(back-pressure). A worker whose handler was abandoned ends with it, and a new worker takes its
slot, so capacity is never lost to a stuck handler.

``stop``: jobs claimed but not started are handed back at once; running jobs get
``shutdown_timeout`` seconds to finish; then their handlers are cancelled, and a handler that
ignores that too is abandoned after ``CANCEL_GRACE``. Either way its job is handed back without
spending the attempt. A plain-``def`` handler's thread cannot be cancelled: its job is handed back
at the deadline and the thread abandoned (it ends with the process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import structlog

from .completer import Completer
from .executor import CANCEL_GRACE, Execution, Executor
from .handoff import Handoff
from .held import HeldJobs
from .job import Job
from .middleware import Middleware
from .outcome import HANDED_BACK, Interruption, Outcome, RetryPolicy
from .recorder import Recorder
from .registry import HandlerRegistry
from .threads import HandlerThreads

log = structlog.get_logger("docko_worker.worker")


class Workers:
    """Runs the jobs put into ``handoff`` with ``count`` concurrent workers."""

    def __init__(
        self,
        count: int,
        *,
        handoff: Handoff[Job | None],
        held: HeldJobs,
        registry: HandlerRegistry,
        recorder: Recorder,
        completer: Completer,
        policy: RetryPolicy,
        default_timeout: float | None,
        thread_pool_size: int,
        cancel_grace: float = CANCEL_GRACE,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self._count = count
        self._handoff = handoff
        self._held = held
        self._registry = registry
        self._recorder = recorder
        self._completer = completer
        self._cancel_grace = cancel_grace
        self._threads = HandlerThreads(thread_pool_size)
        self._executor = Executor(
            policy=policy,
            default_timeout=default_timeout,
            on_abandoned=self._abandoned,
            threads=self._threads,
            cancel_grace=cancel_grace,
            middleware=middleware,
        )
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._next_index = 0
        self._stopping = False
        # Cancel requests for jobs held here whose handler has not started yet: the attempt
        # asked about, and the reason.
        self._cancel_when_started: dict[UUID, tuple[int, str | None]] = {}

    def start(self) -> None:
        for _ in range(self._count):
            self._spawn()

    def _spawn(self) -> None:
        index = self._next_index
        self._next_index += 1
        self._tasks[index] = asyncio.create_task(self._work(index), name=f"docko-worker-{index}")

    async def _work(self, index: int) -> None:
        handoff, held, recorder, completer = (
            self._handoff,
            self._held,
            self._recorder,
            self._completer,
        )
        registry, executor = self._registry, self._executor
        task = asyncio.current_task()
        assert task is not None
        while True:
            job = await handoff.get()
            if job is None:
                return
            registered = registry.get(job.job_type)
            if registered is None:  # the claim filters by type; kept for safety
                recorder.record(job, HANDED_BACK)
                continue
            execution = Execution(job, task)
            held.start(execution)
            if self._cancel_when_started:
                pending = self._cancel_when_started.pop(job.id, None)
                if pending is not None and pending[0] == job.attempt:
                    executor.cancel(execution, pending[1])
            try:
                outcome = await executor.run(execution, registered)
            except Exception:  # a fault of the daemon's own, not the handler's
                log.exception("worker_error", worker=index, job_id=str(job.id))
                outcome = HANDED_BACK
            if outcome is None:
                self._tasks.pop(index, None)
                return  # abandoned: a new worker has taken this slot
            recorder.record(job, outcome, execution.error, execution.started)
            # The error's traceback holds the executor's frame, which holds the execution: a
            # cycle that would keep the handler's frames, and what they held (a document's
            # bytes), alive until the cyclic garbage collector next ran.
            execution.error = None
            if execution.interruption is Interruption.SHUTDOWN:
                return
            if not completer.has_room:
                await completer.wait_for_room()

    def _abandoned(self, execution: Execution, outcome: Outcome) -> None:
        job = execution.job
        log.error(
            "job_ignored_cancellation",
            job_id=str(job.id),
            job_type=job.job_type,
            attempt=job.attempt,
            interruption=execution.interruption.value if execution.interruption else "timeout",
        )
        self._recorder.record(job, outcome)
        for index, task in list(self._tasks.items()):
            if task is execution.task:
                del self._tasks[index]
        if not self._stopping:
            self._spawn()

    # Interruptions

    def cancel(self, job_id: UUID, reason: str | None = None) -> bool:
        """An operator cancelled ``job_id``: stop its handler, now if it runs here, or as soon as
        it starts if this process holds it unstarted. False when this process does not hold it."""
        execution = self._held.execution(job_id)
        if execution is not None:
            self._executor.cancel(execution, reason)
            return True
        # Only a job waiting for a worker: one whose run is over (its outcome not yet written)
        # is decided by that write, and a request kept for it would cancel its next attempt
        # after an operator's retry.
        waiting = self._held.unstarted(job_id)
        if waiting is not None:
            self._cancel_when_started[job_id] = (waiting.attempt, reason)
            return True
        return False

    async def stop(self, shutdown_timeout: float) -> None:
        """Graceful shutdown: see the module docstring."""
        self._stopping = True
        try:
            await self._stop(shutdown_timeout)
        finally:
            self._threads.close()

    async def _stop(self, shutdown_timeout: float) -> None:
        for job in self._handoff.take_all():
            if job is not None:
                self._recorder.record(job, HANDED_BACK)
        for _ in self._tasks:
            self._handoff.put(None)
        if not self._tasks:
            return
        _, still_running = await asyncio.wait(self._tasks.values(), timeout=shutdown_timeout)
        if not still_running:
            return
        running = self._held.running()
        log.warning(
            "shutdown_timeout_cancelling_jobs",
            jobs=[str(execution.job.id) for execution in running],
            timeout=shutdown_timeout,
        )
        for execution in running:
            self._executor.stop_for_shutdown(execution)
        for task in still_running:
            if not task.cancelling():
                task.cancel()
        await asyncio.wait(still_running, timeout=self._cancel_grace)
        for execution in self._held.running():
            # A handler that swallows cancellation is abandoned; its job is handed back.
            self._executor.abandon(execution, HANDED_BACK)

    def running_jobs(self) -> list[dict[str, object]]:
        """The jobs whose handlers are running now, for logs."""
        return [
            {"job_id": str(e.job.id), "job_type": e.job.job_type, "attempt": e.job.attempt}
            for e in self._held.running()
        ]
