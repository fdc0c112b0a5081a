"""``HeldJobs``: every job this process holds, from its claim until its outcome is written.

A held job passes through three phases:

    claimed ──start──> running ──settle──> awaiting its write ──write/lease lost──> gone
       └──────────────settle (handed back, never run)──────┘

``add`` is the one place a job comes in and ``release`` the one place it leaves; ``settle`` marks
the end of its run (its worker slot is free again). The heartbeat extends the lease of every held
job, the fetcher claims only for free slots, and the completer releases what it wrote: each reads
or updates this object directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from .executor import Execution
    from .job import Job


class HeldJobs:
    """The jobs this process holds, and how many worker slots they occupy."""

    __slots__ = ("_awaiting_write", "_busy", "_leased", "_running", "slot_free")

    def __init__(self) -> None:
        # Claimed and not yet written: the heartbeat extends these leases.
        self._leased: dict[UUID, Job] = {}
        # Whose handler runs now, by job id.
        self._running: dict[UUID, Execution] = {}
        # Settled, their outcome handed to the completer and not yet written.
        self._awaiting_write: set[UUID] = set()
        # Claimed jobs whose run has not ended: the worker slots they occupy.
        self._busy = 0
        self.slot_free = asyncio.Event()

    def add(self, jobs: Iterable[Job]) -> None:
        """Jobs just claimed: each occupies a worker slot until it settles."""
        leased = self._leased
        count = 0
        for job in jobs:
            leased[job.id] = job
            count += 1
        self._busy += count

    def start(self, execution: Execution) -> None:
        self._running[execution.job.id] = execution

    def settle(self, job: Job) -> None:
        """The job's run is over (or it never ran): its outcome goes to the completer."""
        running = self._running
        execution = running.get(job.id)
        if execution is not None and execution.job is job:
            del running[job.id]
        self._awaiting_write.add(job.id)
        self._busy -= 1
        self.slot_free.set()

    def release(self, jobs: Iterable[Job]) -> None:
        """Forget jobs whose outcome was written, or whose lease this process lost."""
        leased, awaiting = self._leased, self._awaiting_write
        for job in jobs:
            current = leased.get(job.id)
            if current is not None and current.attempt == job.attempt:
                del leased[job.id]
                awaiting.discard(job.id)

    # Reading

    def leased(self) -> list[Job]:
        """Every held job, for the heartbeat."""
        return list(self._leased.values())

    def holds(self, job: Job) -> bool:
        """Whether this very attempt of ``job`` is still held."""
        current = self._leased.get(job.id)
        return current is not None and current.attempt == job.attempt

    def unstarted(self, job_id: UUID) -> Job | None:
        """The held job ``job_id`` if it waits for a worker: claimed, not running, not settled."""
        job = self._leased.get(job_id)
        if job is None or job_id in self._running or job_id in self._awaiting_write:
            return None
        return job

    def awaiting_write(self, job: Job) -> bool:
        """Whether ``job``'s outcome is with the completer (its write decides what happened)."""
        return job.id in self._awaiting_write and self.holds(job)

    def running(self) -> list[Execution]:
        return list(self._running.values())

    def execution(self, job_id: UUID) -> Execution | None:
        return self._running.get(job_id)

    def free_slots(self, capacity: int) -> int:
        return capacity - self._busy

    @property
    def busy(self) -> int:
        return self._busy

    def __len__(self) -> int:
        return len(self._leased)
