"""The chaos operator: cancels and retries fired at random through the ``Queue`` API while the
fleet runs, each recorded in ``Faults`` for the checker (see ``chaos_checker.py``).

One task, one action at a time, so the actions are ordered: each is recorded with the time it was
sent and the job as the call returned it (a retry also with the job as read just before it).
What it does, each step a short random pause after the last:

- cancel a running job (picked from ``list_jobs(state="running")``);
- cancel any job of the run (picked from every id enqueued, or from the jobs it retried): most
  are available, scheduled or already finished, depending on when;
- retry a job that ended ``failed`` or ``cancelled``;
- once, ``bulk_after`` seconds in, ``cancel_jobs`` of a whole queue; the jobs it reached are read
  back (a cancel request stored with them) and recorded, each as found ``cancelled`` if it was
  cancelled at once (finished when the request was stored: it was waiting) or ``running``.

``stop`` ends the task after its current action, so no action is left half-recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

from chaos_checker import Cancel, Faults, Retry

from docko_worker import Job, JobState, Queue

REASON = "chaos operator"
# Jobs one look-up for candidates reads.
PAGE = 200


@dataclass
class Operator:
    queue: Queue
    faults: Faults
    rng: random.Random
    targets: list[UUID]
    counts: Counter[str] = field(default_factory=Counter)
    _retried: list[UUID] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, bulk_queue: str, bulk_after: float) -> None:
        """Act until ``stop``; ``cancel_jobs(queue_name=bulk_queue)`` once after ``bulk_after``
        seconds."""
        bulk_at = time.monotonic() + bulk_after
        while not self._stopping.is_set():
            await asyncio.sleep(self.rng.uniform(0.02, 0.2))
            if self._stopping.is_set():
                return
            if time.monotonic() >= bulk_at:
                await self.cancel_queue(bulk_queue)
                bulk_at = float("inf")
                continue
            roll = self.rng.random()
            if roll < 0.4:
                await self.cancel_running()
            elif roll < 0.55:
                await self.cancel_any()
            else:
                await self.retry_ended()

    def stop(self) -> None:
        self._stopping.set()

    async def cancel_running(self) -> None:
        running = await self.queue.list_jobs(state=JobState.RUNNING, limit=PAGE)
        if running:
            await self.cancel(self.rng.choice(running).id)

    async def cancel_any(self) -> None:
        pool = self._retried if self._retried and self.rng.random() < 0.3 else self.targets
        await self.cancel(self.rng.choice(pool))

    async def cancel(self, job_id: UUID) -> None:
        at = time.time()
        job = await self.queue.cancel(job_id, reason=REASON)
        assert job is not None, f"job {job_id} vanished"
        self.faults.cancels.append(Cancel(job.id, at, job.state.value, job.attempt))
        self.counts[f"cancel found {job.state.value}"] += 1

    async def retry_ended(self) -> None:
        ended = [
            job
            for state in (JobState.FAILED, JobState.CANCELLED)
            for job in await self.queue.list_jobs(state=state, limit=PAGE)
        ]
        if not ended:
            return
        seen = self.rng.choice(ended)
        at = time.time()
        job = await self.queue.retry(seen.id)
        assert job is not None, f"job {seen.id} vanished"
        self.faults.retries.append(
            Retry(
                job.id,
                at,
                seen_state=seen.state.value,
                seen_max_attempts=seen.max_attempts,
                seen_last_error=seen.last_error,
                seen_cancel_requested=seen.cancel_requested_at is not None,
                state=job.state.value,
                attempt=job.attempt,
                max_attempts=job.max_attempts,
            )
        )
        self._retried.append(job.id)
        self.counts[f"retry of a {seen.state.value} job"] += 1

    async def cancel_queue(self, queue_name: str) -> None:
        at = time.time()
        changed = await self.queue.cancel_jobs(queue_name=queue_name, reason=REASON)
        reached = [
            job
            for job in await self.queue.list_jobs(queue_name=queue_name, limit=10_000)
            if job.cancel_requested_at is not None
        ]
        for job in reached:
            self.faults.cancels.append(Cancel(job.id, at, _found(job), job.attempt))
        self.counts["bulk cancel: jobs changed"] += changed
        self.counts["bulk cancel: jobs found running"] += sum(
            _found(job) == "running" for job in reached
        )


def _found(job: Job) -> str:
    """How a bulk cancel found ``job``: ``cancelled`` at once (it was waiting), or ``running``."""
    if job.state is JobState.CANCELLED and job.finished_at == job.cancel_requested_at:
        return "cancelled"
    return "running"
