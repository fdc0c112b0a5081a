"""The completer: writes job outcomes to the database in batches.

Workers hand it outcomes (completed, retry, failed, handed back, cancelled) without waiting; it
writes them with one statement per kind, flushing when ``completion_batch_size`` outcomes wait or
``completion_flush_interval`` has passed. Every write is guarded by the attempt the job was claimed
with; an outcome the database refuses (the lease was lost and the job moved on) is logged and
dropped. What was written, or refused, leaves the process's ``HeldJobs``.

A job whose handler completed it in its own transaction (``docko_worker.complete``, which marks
the ``Job``) still has its outcome written, under the same guard: if the handler's transaction
committed, the job is no longer running and the write is refused, which is expected and not
logged (``FlushResult.completed_in_transaction``); if it rolled back, the write lands.

One bad outcome never holds up the others. A write that fails for a reason of the moment (the
database gone, a lock timeout) is retried with backoff, keeping its outcomes: until it lands, their
jobs stay leased to this process, and if the process dies they run again after their lease. A write
that fails for a reason of its own rows is split, and each outcome written alone; one that still
fails is dropped with an error line, and its job runs again once its lease expires.

``close`` writes what is left, within a grace period, and returns the jobs whose outcomes it could
not write, so the daemon can say so and exit non-zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from .alarm import Alarm
from .db import is_transient
from .errors import describe_error
from .held import HeldJobs
from .job import Job, job_id_of
from .metrics import LEASE_LOST, WRITE_REJECTED, Metrics
from .retry import reconnect_delay
from .settle import settle
from .store import JobStore

log = structlog.get_logger("docko_worker.completer")


def _first_id(item: tuple[Job, Any] | tuple[Job, Any, Any]) -> UUID:
    return job_id_of(item[0])


@dataclass(slots=True)
class _Pending:
    completed: list[Job] = field(default_factory=list)
    retried: list[tuple[Job, float, str]] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    released: list[Job] = field(default_factory=list)
    cancelled: list[Job] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.completed)
            + len(self.retried)
            + len(self.failed)
            + len(self.released)
            + len(self.cancelled)
        )

    def jobs(self) -> list[Job]:
        return [
            *self.completed,
            *(job for job, _, _ in self.retried),
            *(job for job, _ in self.failed),
            *self.released,
            *self.cancelled,
        ]

    def take(self, size: int) -> _Pending:
        """Up to ``size`` outcomes of each kind, removed from this one."""
        batch = _Pending(
            self.completed[:size],
            self.retried[:size],
            self.failed[:size],
            self.released[:size],
            self.cancelled[:size],
        )
        del self.completed[:size]
        del self.retried[:size]
        del self.failed[:size]
        del self.released[:size]
        del self.cancelled[:size]
        return batch

    def sort_by_id(self) -> None:
        self.completed.sort(key=job_id_of)
        self.retried.sort(key=_first_id)
        self.failed.sort(key=_first_id)
        self.released.sort(key=job_id_of)
        self.cancelled.sort(key=job_id_of)

    def put_back(self, other: _Pending) -> None:
        """Return ``other``'s outcomes to the front of the line."""
        self.completed[:0] = other.completed
        self.retried[:0] = other.retried
        self.failed[:0] = other.failed
        self.released[:0] = other.released
        self.cancelled[:0] = other.cancelled

    def singles(self) -> list[_Pending]:
        """Each outcome as a batch of its own."""
        return [
            *(_Pending(completed=[job]) for job in self.completed),
            *(_Pending(retried=[item]) for item in self.retried),
            *(_Pending(failed=[item]) for item in self.failed),
            *(_Pending(released=[job]) for job in self.released),
            *(_Pending(cancelled=[job]) for job in self.cancelled),
        ]


@dataclass(slots=True)
class FlushResult:
    written: int = 0
    refused: int = 0
    rejected: int = 0
    # Refused because the handler's own transaction had completed the job.
    completed_in_transaction: int = 0


class Completer:
    """Buffers outcomes and writes them in batches; ``close`` flushes what is left."""

    def __init__(
        self,
        store: JobStore,
        held: HeldJobs,
        *,
        batch_size: int,
        flush_interval: float,
        delete_completed: bool,
        jobs_due: Alarm | None = None,
        max_pending_batches: int = 8,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._held = held
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._delete_completed = delete_completed
        self._jobs_due = jobs_due
        self._max_pending = batch_size * max_pending_batches
        self._metrics = metrics
        self._pending = _Pending()
        # Taken for writing and not yet written (or put back).
        self._in_flight = _Pending()
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

    def cancel(self, job: Job) -> None:
        """Its handler was stopped on an operator's request: the job ends ``cancelled``."""
        self._pending.cancelled.append(job)
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
        """Outcomes not yet written, those being written included."""
        return len(self._pending) + len(self._in_flight)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="docko-completer")

    async def close(self, grace: float = 30.0) -> list[Job]:
        """Stop the loop and write every outcome still pending, giving up after ``grace`` seconds.

        Returns the jobs whose outcomes were not written: they are still leased to this process
        and run again once the lease expires.
        """
        self._closing = True
        self._has_work.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="docko-completer")
        task, self._task = self._task, None
        await settle({task}, grace=grace, cancel_first=False)
        return self._in_flight.jobs() + self._pending.jobs()

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
            self._in_flight = batch = self._pending.take(self._batch_size)
            result = FlushResult()
            try:
                await self._write(batch, result)
            except Exception as exc:
                if not is_transient(exc):
                    await self._write_one_by_one(batch, exc, result)
                else:
                    failures += 1
                    if self._metrics is not None:
                        self._metrics.write_failures += 1
                    self._pending.put_back(batch)
                    self._in_flight = _Pending()
                    delay = reconnect_delay(failures, 0.1, 10.0)
                    log.warning(
                        "outcome_write_failed",
                        error=describe_error(exc),
                        outcomes=len(batch),
                        retry_in=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
                    continue
            self._in_flight = _Pending()
            self.totals.written += result.written
            self.totals.refused += result.refused
            self.totals.rejected += result.rejected
            self.totals.completed_in_transaction += result.completed_in_transaction
            if len(self._pending) < self._max_pending:
                self._has_room.set()

    async def _write_one_by_one(
        self, batch: _Pending, first_error: Exception, result: FlushResult
    ) -> None:
        """Isolate the outcomes the database will not take from those it will."""
        log.warning(
            "outcome_batch_rejected_writing_one_by_one",
            error=describe_error(first_error),
            outcomes=len(batch),
        )
        singles = batch.singles()
        for index, single in enumerate(singles):
            try:
                await self._write(single, result)
            except Exception as exc:
                if is_transient(exc):
                    # The connection went: the rest go back in line, whole.
                    for rest in reversed(singles[index:]):
                        self._pending.put_back(rest)
                    return
                job = single.jobs()[0]
                result.rejected += 1
                if self._metrics is not None:
                    self._metrics.count(job, WRITE_REJECTED)
                self._held.release([job])
                log.error(
                    "outcome_write_rejected",
                    job_id=str(job.id),
                    job_type=job.job_type,
                    attempt=job.attempt,
                    error=describe_error(exc),
                    note="the job runs again once its lease expires",
                )

    async def _write(self, batch: _Pending, result: FlushResult) -> None:
        """Write ``batch``, one statement per kind; each kind leaves the batch once written, so
        after an error the batch holds only what is still to write.

        Each statement locks its rows in id order, as the heartbeat's does: two statements of one
        daemon that lock the same rows in different orders deadlock (PostgreSQL then cancels one).
        """
        batch.sort_by_id()
        store = self._store
        if batch.completed:
            jobs = batch.completed
            await self._guarded(
                result,
                "completed",
                jobs,
                store.complete_jobs(
                    [j.id for j in jobs], [j.attempt for j in jobs], delete=self._delete_completed
                ),
            )
            batch.completed = []
        if batch.retried:
            jobs = [j for j, _, _ in batch.retried]
            done = await self._guarded(
                result,
                "retried",
                jobs,
                store.retry_jobs(
                    [j.id for j in jobs],
                    [j.attempt for j in jobs],
                    [delay for _, delay, _ in batch.retried],
                    [error for _, _, error in batch.retried],
                ),
            )
            if self._jobs_due is not None:
                # Each landed retry is due its delay after now, at the latest.
                for job, delay, _ in batch.retried:
                    if job.id in done:
                        self._jobs_due.ring_in(delay)
            batch.retried = []
        if batch.failed:
            jobs = [j for j, _ in batch.failed]
            await self._guarded(
                result,
                "failed",
                jobs,
                store.fail_jobs(
                    [j.id for j in jobs], [j.attempt for j in jobs], [e for _, e in batch.failed]
                ),
            )
            batch.failed = []
        if batch.released:
            jobs = batch.released
            await self._guarded(
                result,
                "released",
                jobs,
                store.release_jobs([j.id for j in jobs], [j.attempt for j in jobs]),
            )
            batch.released = []
        if batch.cancelled:
            jobs = batch.cancelled
            await self._guarded(
                result,
                "cancelled",
                jobs,
                store.cancel_running_jobs(
                    [j.id for j in jobs], [j.attempt for j in jobs], [None] * len(jobs)
                ),
            )
            batch.cancelled = []

    async def _guarded(
        self, result: FlushResult, outcome: str, jobs: list[Job], write: Awaitable[set[UUID]]
    ) -> set[UUID]:
        """Run one lease-guarded write; account for and release its jobs."""
        done = await write
        result.written += len(done)
        metrics = self._metrics
        if metrics is not None:
            metrics.write(len(jobs))
        if len(done) != len(jobs):
            for job in jobs:
                if job.id in done:
                    continue
                if job.completed_in_transaction:
                    result.completed_in_transaction += 1
                else:
                    result.refused += 1
                    if metrics is not None:
                        metrics.count(job, LEASE_LOST)
                    log.warning(
                        "outcome_refused_lease_lost",
                        job_id=str(job.id),
                        job_type=job.job_type,
                        attempt=job.attempt,
                        outcome=outcome,
                    )
        self._held.release(jobs)
        return done
