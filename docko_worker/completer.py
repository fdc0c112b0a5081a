"""The completer: writes job outcomes to the database in batches.

Workers hand it outcomes (completed, retry, failed, released) without waiting; it writes them with
one statement per kind, flushing when ``completion_batch_size`` outcomes wait or
``completion_flush_interval`` has passed. Every write is guarded by the attempt the job was claimed
with; an outcome the database refuses (the lease was lost and the job moved on) is logged and
dropped. A write that fails (database gone) is retried with backoff, keeping the outcomes: until it
lands, the jobs stay leased to this worker, and if the worker dies they run again after their lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from .job import Job
from .retry import reconnect_delay
from .settle import settle
from .store import JobStore

log = structlog.get_logger("docko_worker.completer")


@dataclass(slots=True)
class _Pending:
    completed: list[Job] = field(default_factory=list)
    retried: list[tuple[Job, float, str]] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    released: list[Job] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.completed) + len(self.retried) + len(self.failed) + len(self.released)


@dataclass(slots=True)
class FlushResult:
    written: int = 0
    refused: int = 0


class Completer:
    """Buffers outcomes and writes them in batches; ``close`` flushes what is left."""

    def __init__(
        self,
        store: JobStore,
        *,
        batch_size: int,
        flush_interval: float,
        delete_completed: bool,
        on_written: Callable[[list[Job]], None],
        on_retries_written: Callable[[list[float]], None] | None = None,
        max_pending_batches: int = 8,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._delete_completed = delete_completed
        self._on_written = on_written
        self._on_retries_written = on_retries_written
        self._max_pending = batch_size * max_pending_batches
        self._pending = _Pending()
        self._has_work = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.totals = FlushResult()

    # Recording outcomes: synchronous, so a worker never waits on the database for them.

    def complete(self, job: Job) -> None:
        self._pending.completed.append(job)
        self._added()

    def retry(self, job: Job, delay: float, error: str) -> None:
        self._pending.retried.append((job, delay, error))
        self._added()

    def fail(self, job: Job, error: str) -> None:
        self._pending.failed.append((job, error))
        self._added()

    def release(self, job: Job) -> None:
        self._pending.released.append(job)
        self._added()

    def _added(self) -> None:
        self._has_work.set()
        if len(self._pending) >= self._max_pending:
            self._has_room.clear()

    @property
    def has_room(self) -> bool:
        """False while too many outcomes are unwritten (see ``wait_for_room``)."""
        return self._has_room.is_set()

    async def wait_for_room(self) -> None:
        """Back-pressure: wait while too many outcomes are unwritten."""
        await self._has_room.wait()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="docko-completer")

    async def close(self, grace: float = 30.0) -> None:
        """Stop the loop and write every outcome still pending, giving up after ``grace`` seconds.

        Outcomes not written by then are lost to this process only: their jobs are still leased
        to it and run again once the lease expires.
        """
        self._closing = True
        self._has_work.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="docko-completer")
        task, self._task = self._task, None
        if await settle({task}, grace=grace, cancel_first=False):
            log.error("outcomes_not_written", outcomes=len(self._pending), grace=grace)

    async def _run(self) -> None:
        while True:
            await self._has_work.wait()
            if not self._closing and len(self._pending) < self._batch_size:
                # Let more outcomes gather; cheap when jobs are fast, negligible when slow.
                await asyncio.sleep(self._flush_interval)
            self._has_work.clear()
            await self._flush_all()
            if self._closing and not len(self._pending):
                return

    async def _flush_all(self) -> None:
        failures = 0
        while len(self._pending):
            batch = self._take_batch()
            while True:
                try:
                    result = await self._write(batch)
                    break
                except Exception as exc:
                    failures += 1
                    delay = reconnect_delay(failures, 0.1, 10.0)
                    log.warning(
                        "outcome_write_failed",
                        error=f"{type(exc).__name__}: {exc}",
                        outcomes=len(batch),
                        retry_in=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
            self.totals.written += result.written
            self.totals.refused += result.refused
            if len(self._pending) < self._max_pending:
                self._has_room.set()

    def _take_batch(self) -> _Pending:
        pending, size = self._pending, self._batch_size
        batch = _Pending(
            completed=pending.completed[:size],
            retried=pending.retried[:size],
            failed=pending.failed[:size],
            released=pending.released[:size],
        )
        del pending.completed[:size]
        del pending.retried[:size]
        del pending.failed[:size]
        del pending.released[:size]
        return batch

    async def _write(self, batch: _Pending) -> FlushResult:
        result = FlushResult()
        store = self._store
        if batch.completed:
            jobs = batch.completed
            done = await store.complete_jobs(
                [j.id for j in jobs], [j.attempt for j in jobs], delete=self._delete_completed
            )
            self._account(result, "completed", jobs, done)
        if batch.retried:
            jobs = [j for j, _, _ in batch.retried]
            done = await store.retry_jobs(
                [j.id for j in jobs],
                [j.attempt for j in jobs],
                [delay for _, delay, _ in batch.retried],
                [error for _, _, error in batch.retried],
            )
            self._account(result, "retried", jobs, done)
            if self._on_retries_written is not None and done:
                # Each landed retry is due its delay after now, at the latest.
                delays = [delay for job, delay, _ in batch.retried if job.id in done]
                _report(self._on_retries_written, delays)
        if batch.failed:
            jobs = [j for j, _ in batch.failed]
            done = await store.fail_jobs(
                [j.id for j in jobs], [j.attempt for j in jobs], [e for _, e in batch.failed]
            )
            self._account(result, "failed", jobs, done)
        if batch.released:
            jobs = batch.released
            done = await store.release_jobs([j.id for j in jobs], [j.attempt for j in jobs])
            self._account(result, "released", jobs, done)
        return result

    def _account(self, result: FlushResult, outcome: str, jobs: list[Job], done: set[UUID]) -> None:
        result.written += len(done)
        if len(done) != len(jobs):
            for job in jobs:
                if job.id not in done:
                    result.refused += 1
                    log.warning(
                        "outcome_refused_lease_lost",
                        job_id=str(job.id),
                        job_type=job.job_type,
                        attempt=job.attempt,
                        outcome=outcome,
                    )
        _report(self._on_written, jobs)


def _report(callback: Callable[[list[Any]], None], items: list[Any]) -> None:
    """Tell the supervisor what was written. Its failure is logged, never taken for a failed
    write: retrying a write that landed would only be refused, again and again."""
    try:
        callback(items)
    except Exception:
        log.exception("outcome_callback_failed", callback=getattr(callback, "__qualname__", None))
