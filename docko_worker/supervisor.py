"""The supervisor: one fetcher, N coroutine workers, the heartbeat, and graceful shutdown.

The fetcher claims jobs for every free worker slot in one statement and hands them to the workers
through an in-memory ``Handoff``; it claims again at once while claims come back full and sleeps
(until woken by the waker, by the end of a retry's backoff, or ``poll_interval`` passes) only once
the queue is drained. Workers run a handler under the job's timeout and hand the outcome to the
completer without waiting for the database. The heartbeat extends the lease of every job this
process holds, in one statement.

Shutdown: stop claiming; hand back claimed jobs that have not started; let running jobs finish for
up to ``shutdown_timeout``; cancel the rest and hand their jobs back without spending the attempt;
write every pending outcome.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from .alarm import Alarm
from .completer import Completer
from .config import Config
from .errors import PermanentError
from .handoff import Handoff
from .job import Job
from .loop_monitor import LoopMonitor
from .registry import HandlerRegistry
from .retry import backoff_ceiling, next_retry_delay
from .settle import settle
from .store import JobStore

log = structlog.get_logger("docko_worker.supervisor")

# Most characters of an error message kept in ``last_error``.
MAX_ERROR_LENGTH = 4000
# Seconds the event loop may stand still before the running jobs are named in a warning.
LOOP_BLOCK_WARNING = 10.0
# Seconds shutdown waits for an in-flight claim (a database that stopped answering).
FETCHER_STOP_GRACE = 10.0
# Seconds shutdown waits for the heartbeat and maintenance sweeps to stop.
SIDE_TASK_STOP_GRACE = 5.0
# Seconds a cancelled handler gets to unwind before it is abandoned.
CANCEL_GRACE = 5.0


def make_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted pod gets a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def describe_error(exc: BaseException) -> str:
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


class _Execution:
    """One run of a handler; ``abandoned`` once it ignored its timeout's cancellation."""

    __slots__ = ("abandoned", "job")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.abandoned = False


@dataclass(slots=True)
class Counters:
    """What this process has done since it started (outcomes as handed to the completer)."""

    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0


class Supervisor:
    """Runs jobs from ``queues`` with ``config.worker_count`` concurrent workers."""

    def __init__(
        self,
        store: JobStore,
        registry: HandlerRegistry,
        config: Config,
        queues: list[str],
        *,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config
        self.queues = list(queues)
        self.worker_id = worker_id or make_worker_id()
        self.counters = Counters()
        self._job_types = registry.job_types
        # Per-job debug events cost even when filtered out; skip them unless asked for.
        self._debug = config.log_level == "debug"
        self._ready: Handoff[Job | None] = Handoff()
        self._held: dict[uuid.UUID, Job] = {}
        self._running: dict[int, Job] = {}
        self._holding = 0
        self._slot_free = asyncio.Event()
        self._wake = asyncio.Event()
        # Wakes the fetcher when a retry this daemon wrote falls due, not at the next poll.
        self._retries_due = Alarm(self._wake.set)
        self._stopping = False
        self._fetcher: asyncio.Task[None] | None = None
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._next_worker_index = 0
        self._side_tasks: list[asyncio.Task[None]] = []
        self._loop_monitor = LoopMonitor(
            min(LOOP_BLOCK_WARNING, config.visibility_timeout / 2), self.running_jobs
        )
        self.completer = Completer(
            store,
            batch_size=config.completion_batch_size,
            flush_interval=config.completion_flush_interval,
            delete_completed=config.completed_retention == 0,
            on_written=self._outcomes_written,
            on_retries_written=self._wake_when_due,
        )

    # Lifecycle

    def start(self, extra: list[Callable[[], Any]] | None = None) -> None:
        """Start the fetcher, the workers, the heartbeat and any ``extra`` coroutine factories."""
        log.info(
            "supervisor_started",
            worker_id=self.worker_id,
            queues=self.queues,
            job_types=self._job_types,
            worker_count=self.config.worker_count,
        )
        self.completer.start()
        self._loop_monitor.start()
        # The fetcher first: the first claim goes out before the workers take their first step.
        self._fetcher = asyncio.create_task(self._fetch(), name="docko-fetcher")
        for _ in range(self.config.worker_count):
            self._spawn_worker()
        self._side_tasks = [asyncio.create_task(self._heartbeat(), name="docko-heartbeat")]
        if self.config.health_file:
            self._side_tasks.append(
                asyncio.create_task(self._touch_health_file(), name="docko-health")
            )
        for factory in extra or []:
            self._side_tasks.append(
                asyncio.create_task(factory(), name=getattr(factory, "__qualname__", None))
            )

    def wake(self, queue_name: str = "") -> None:
        """Called by the waker: a job may be waiting in ``queue_name`` ('' means any)."""
        if not queue_name or queue_name in self.queues:
            self._wake.set()

    async def stop(self) -> None:
        """Graceful shutdown (see the module docstring); safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        log.info("shutdown_started", running=len(self._running), held=len(self._held))
        self._retries_due.cancel()
        self._wake.set()
        self._slot_free.set()
        if self._fetcher is not None:
            await self._stop_fetcher(self._fetcher)
        self._release_unstarted()
        for _ in self._workers:
            self._ready.put(None)
        await self._drain_workers()
        stuck = await settle(self._side_tasks, grace=SIDE_TASK_STOP_GRACE)
        if stuck:
            log.warning(
                "side_tasks_abandoned_at_shutdown", tasks=sorted(t.get_name() for t in stuck)
            )
        await self.completer.close()
        self._loop_monitor.stop()
        log.info(
            "shutdown_complete",
            completed=self.counters.completed,
            retried=self.counters.retried,
            failed=self.counters.failed,
            released=self.counters.released,
        )

    async def _stop_fetcher(self, fetcher: asyncio.Task[None]) -> None:
        """Let an in-flight claim finish; if the database does not answer, give up on it.

        A claim abandoned this way may have committed: its jobs return through their lease.
        """
        if await settle({fetcher}, grace=FETCHER_STOP_GRACE, cancel_first=False):
            log.warning("claim_abandoned_at_shutdown", waited=FETCHER_STOP_GRACE)

    def _release_unstarted(self) -> None:
        for job in self._ready.take_all():
            if job is not None:
                self._release(job)
                self._holding -= 1

    async def _drain_workers(self) -> None:
        if not self._workers:
            return
        timeout = self.config.shutdown_timeout
        _, still_running = await asyncio.wait(self._workers.values(), timeout=timeout)
        if not still_running:
            return
        log.warning(
            "shutdown_timeout_cancelling_jobs",
            jobs=[str(job.id) for job in self._running.values()],
            timeout=timeout,
        )
        for task in still_running:
            task.cancel()
        await asyncio.wait(still_running, timeout=CANCEL_GRACE)
        for index, job in list(self._running.items()):
            # A handler that swallows cancellation is abandoned; its job is handed back.
            log.error(
                "job_ignored_cancellation",
                job_id=str(job.id),
                job_type=job.job_type,
                attempt=job.attempt,
                worker=index,
            )
            self._release(job)
            del self._running[index]

    # Fetching

    async def _fetch(self) -> None:
        config = self.config
        failures = 0
        while not self._stopping:
            free = config.worker_count - self._holding
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            wanted = min(free, config.claim_batch_size)
            self._wake.clear()
            try:
                jobs = await self.store.claim_jobs(
                    queues=self.queues,
                    job_types=self._job_types,
                    limit=wanted,
                    worker_id=self.worker_id,
                    lease_seconds=config.visibility_timeout,
                )
                failures = 0
            except Exception as exc:
                failures += 1
                delay = backoff_ceiling(failures, 0.05, config.poll_interval)
                log.warning("claim_failed", error=describe_error(exc), retry_in=round(delay, 3))
                await self._sleep_until_woken(delay)
                continue
            if jobs:
                self._accept(jobs)
            if len(jobs) < wanted:
                await self._sleep_until_woken(config.poll_interval)

    def _accept(self, jobs: list[Job]) -> None:
        self.counters.claimed += len(jobs)
        self._holding += len(jobs)
        held, ready = self._held, self._ready
        for job in jobs:
            held[job.id] = job
            ready.put(job)

    async def _sleep_until_woken(self, seconds: float) -> None:
        if self._stopping or self._wake.is_set():
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    # Working

    async def _work(self, index: int) -> None:
        ready, completer = self._ready, self.completer
        while True:
            job = await ready.get()
            if job is None:
                return
            execution = _Execution(job)
            try:
                await self._execute(index, execution)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker_error", worker=index, job_id=str(job.id))
            finally:
                if not execution.abandoned:
                    self._holding -= 1
                    self._slot_free.set()
            if execution.abandoned:
                return  # a replacement worker has taken this slot
            if not completer.has_room:
                await completer.wait_for_room()

    async def _execute(self, index: int, execution: _Execution) -> None:
        job = execution.job
        registered = self.registry.get(job.job_type)
        if registered is None:  # the claim filters by type; kept for safety
            self._release(job)
            return
        timeout = registered.timeout or self.config.job_timeout
        self._running[index] = job
        timer: asyncio.Timeout | None = None
        watchdog: asyncio.TimerHandle | None = None
        error: BaseException | None = None
        try:
            if timeout is None:
                await registered.handler(job)
            else:
                watchdog = asyncio.get_running_loop().call_later(
                    timeout + CANCEL_GRACE, self._abandon, index, execution, timeout
                )
                async with asyncio.timeout(timeout) as timer:
                    await registered.handler(job)
        except asyncio.CancelledError:
            if not execution.abandoned:
                self._release(job)
            raise
        except (Exception, SystemExit) as exc:
            error = exc
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if self._running.get(index) is job:
                del self._running[index]
        if execution.abandoned:
            return  # its outcome was recorded when it was abandoned
        if error is None:
            self.counters.completed += 1
            self.completer.complete(job)
            if self._debug:
                log.debug(
                    "job_completed", job_id=str(job.id), job_type=job.job_type, attempt=job.attempt
                )
            return
        try:
            self._record_error(job, error, timeout, timer)
        finally:
            # The error's traceback holds this frame, which holds the error: a cycle that would
            # keep the handler's frames and what they held (a document's bytes) alive until the
            # cyclic garbage collector next ran.
            del error

    def _record_error(
        self, job: Job, error: BaseException, timeout: float | None, timer: asyncio.Timeout | None
    ) -> None:
        if isinstance(error, PermanentError):
            self._fail(job, describe_error(error), permanent=True)
        elif isinstance(error, TimeoutError) and timer is not None and timer.expired():
            self._failed_attempt(job, f"JobTimeout: handler ran longer than {timeout:g}s")
        elif self._cancelled_by_shutdown():
            # The handler turned our cancellation into another error: still a hand-back.
            self._release(job)
        else:
            self._failed_attempt(job, describe_error(error), error)

    def _abandon(self, index: int, execution: _Execution, timeout: float) -> None:
        """A handler ignored its timeout's cancellation: record the attempt and move on.

        The handler's coroutine keeps running detached (Python cannot stop it); its eventual
        result is ignored. A new worker takes its slot so capacity is not lost.
        """
        job = execution.job
        execution.abandoned = True
        if self._running.get(index) is job:
            del self._running[index]
        log.error(
            "job_ignored_cancellation",
            job_id=str(job.id),
            job_type=job.job_type,
            attempt=job.attempt,
            timeout=timeout,
        )
        self._failed_attempt(
            job, f"JobTimeout: handler ran longer than {timeout:g}s and ignored cancellation"
        )
        self._holding -= 1
        self._slot_free.set()
        # Shutdown does not wait for it; a new worker takes its slot.
        self._workers.pop(index, None)
        if not self._stopping:
            self._spawn_worker()

    def _spawn_worker(self) -> None:
        index = self._next_worker_index
        self._next_worker_index += 1
        self._workers[index] = asyncio.create_task(self._work(index), name=f"docko-worker-{index}")

    def _cancelled_by_shutdown(self) -> bool:
        task = asyncio.current_task()
        return self._stopping and task is not None and task.cancelling() > 0

    def _failed_attempt(self, job: Job, error: str, exc: BaseException | None = None) -> None:
        if job.is_last_attempt:
            self._fail(job, error, permanent=False, exc=exc)
            return
        config = self.config
        delay = next_retry_delay(job.attempt - 1, config.base_retry_delay, config.max_retry_delay)
        self.counters.retried += 1
        self.completer.retry(job, delay, error)
        log.warning(
            "job_retry_scheduled",
            job_id=str(job.id),
            job_type=job.job_type,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            retry_in=round(delay, 3),
            error=error,
            exc_info=exc,
        )

    def _fail(
        self, job: Job, error: str, *, permanent: bool, exc: BaseException | None = None
    ) -> None:
        self.counters.failed += 1
        self.completer.fail(job, error)
        log.error(
            "job_failed",
            job_id=str(job.id),
            job_type=job.job_type,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            permanent=permanent,
            error=error,
            exc_info=exc,
        )

    def _release(self, job: Job) -> None:
        self.counters.released += 1
        self.completer.release(job)
        log.info("job_released", job_id=str(job.id), job_type=job.job_type, attempt=job.attempt)

    def _wake_when_due(self, delays: list[float]) -> None:
        if self._stopping:
            return
        for delay in delays:
            self._retries_due.ring_in(delay)

    def _outcomes_written(self, jobs: list[Job]) -> None:
        held = self._held
        for job in jobs:
            current = held.get(job.id)
            if current is not None and current.attempt == job.attempt:
                del held[job.id]

    # Heartbeat and health

    async def _heartbeat(self) -> None:
        interval = self.config.effective_heartbeat_interval
        lease = self.config.visibility_timeout
        last = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            late = now - last - interval
            last = now
            if late > lease:
                log.warning("heartbeat_late_leases_at_risk", late_by=round(late, 1))
            await self.extend_leases()

    async def extend_leases(self) -> None:
        """Extend the lease of every job this process holds; log those it no longer holds."""
        jobs = list(self._held.values())
        if not jobs:
            return
        try:
            kept = await self.store.extend_leases(
                [j.id for j in jobs],
                [j.attempt for j in jobs],
                self.worker_id,
                self.config.visibility_timeout,
            )
        except Exception as exc:
            log.warning("heartbeat_failed", error=describe_error(exc), jobs=len(jobs))
            return
        for job in jobs:
            if job.id not in kept and self._held.get(job.id) is job:
                del self._held[job.id]
                log.warning(
                    "lease_lost", job_id=str(job.id), job_type=job.job_type, attempt=job.attempt
                )

    def running_jobs(self) -> list[dict[str, Any]]:
        """The jobs whose handlers are running now, for logs."""
        return [
            {"job_id": str(job.id), "job_type": job.job_type, "attempt": job.attempt}
            for job in list(self._running.values())
        ]

    async def _touch_health_file(self) -> None:
        assert self.config.health_file is not None
        path = Path(self.config.health_file)
        while True:
            try:
                await asyncio.to_thread(path.touch)
            except OSError as exc:
                log.warning("health_file_unwritable", path=str(path), error=describe_error(exc))
            await asyncio.sleep(min(5.0, self.config.poll_interval * 5))

    @property
    def idle(self) -> bool:
        """No job held: nothing claimed, running or awaiting its outcome write."""
        return not self._held and self._holding == 0 and self.completer.pending == 0
