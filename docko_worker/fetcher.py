"""The fetcher: claims jobs for every free worker slot and hands them to the workers.

One claim statement takes up to ``min(free slots, claim_batch_size)`` jobs. The fetcher claims
again at once while claims come back full, and sleeps only once the queue is drained: until the
waker reports a new job, a retry this process wrote or a delayed job the waker announced falls
due (``jobs_due``, an ``Alarm`` that calls ``wake``), or
``poll_interval`` passes. A claim that fails is retried with backoff; the first that succeeds
after failures calls ``on_recovered`` (the waker reconnects at once instead of at the end of its
own backoff).

A job enqueued with a due time in the future is announced in its notification: the fetcher sets
the alarm for that moment (by the host's clock). At start, when the LISTEN connection comes back
(announcements may have been missed) and when an alarm finds nothing due (the host's clock ahead
of the database's), it looks up, by the database's clock, when the next job of its queues is due.

A claimed job whose payload cannot be decoded is not handed to a worker: it fails alone, at once,
and the rest of its batch runs.

Each claim reads the lanes (queue x job type) from where their claimable jobs begin, as far as
``Lanes`` knows; a claim after an alarm or a poll, and one every ``FULL_CLAIM_INTERVAL``
seconds, reads every lane from its start (see lanes.py for why and when).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog

from .alarm import Alarm
from .config import Config
from .errors import describe_error
from .handoff import Handoff
from .held import HeldJobs
from .job import Job
from .lanes import FULL_CLAIM_INTERVAL, Lanes
from .metrics import Metrics
from .outcome import Outcome, OutcomeKind
from .recorder import Recorder
from .retry import backoff_ceiling
from .store import JobStore

log = structlog.get_logger("docko_worker.fetcher")

# Seconds shutdown waits for an in-flight claim (a database that stopped answering).
STOP_GRACE = 10.0


class Fetcher:
    """Claims jobs of ``queues`` and ``job_types`` into ``handoff`` while worker slots are free."""

    def __init__(
        self,
        store: JobStore,
        config: Config,
        *,
        queues: Sequence[str],
        job_types: Sequence[str],
        worker_id: str,
        held: HeldJobs,
        handoff: Handoff[Job | None],
        recorder: Recorder,
        jobs_due: Alarm,
        on_recovered: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._queues = list(queues)
        self._job_types = list(job_types)
        # Notifications tell where new jobs arrive, so without LISTEN every claim reads each
        # lane from its start.
        self._lanes = Lanes(self._queues, self._job_types, cursors=config.listen)
        # The next claim reads every lane from its start (at start, after a poll).
        self._from_start = True
        self._next_full_claim = 0.0
        # Set once the first claim has returned (or failed): parts that open connections of
        # their own wait for it, so the first claim does not share the start with them.
        self.first_claim_done = asyncio.Event()
        self._worker_id = worker_id
        self._held = held
        self._handoff = handoff
        self._recorder = recorder
        self._on_recovered = on_recovered
        self._metrics = metrics
        self._wake = asyncio.Event()
        # Rings (through ``wake``) when a retry this process wrote falls due.
        self._jobs_due = jobs_due
        self._stopping = False
        # Look up when the next waiting job falls due, after the next claim: at start, and
        # whenever notifications may have been missed (the LISTEN connection came back).
        self._look_ahead = True
        # The alarm rang: a claim that then finds nothing due looks the due time up again.
        self._alarm_rang = False

    def wake(self) -> None:
        self._wake.set()

    def alarm_rang(self) -> None:
        """``jobs_due``'s callback: a retry or an announced job should be due now."""
        self._alarm_rang = True
        self._wake.set()

    def look_ahead(self) -> None:
        """Notifications may have been missed: find the next due time after the next claim,
        which reads every lane from its start."""
        self._look_ahead = True
        self._lanes.restart()
        self._wake.set()

    def notice(self, queue: str, *, priority: int | None, run_at: float | None) -> None:
        """New jobs in ``queue``, the best of ``priority`` due from ``run_at`` (see lanes.py)."""
        self._lanes.notice(queue, priority=priority, due=run_at)

    def wake_at(self, epoch_seconds: float) -> None:
        """Wake when a job announced as due at ``epoch_seconds`` falls due."""
        if not self._stopping:
            self._jobs_due.ring_in(epoch_seconds - time.time())

    def stop(self) -> None:
        """Claim no more; ``run`` returns once an in-flight claim is done."""
        self._stopping = True
        self._jobs_due.cancel()
        self._wake.set()
        self._held.slot_free.set()

    async def run(self) -> None:
        config, held = self._config, self._held
        failures = 0
        while not self._stopping:
            free = held.free_slots(config.worker_count)
            if free <= 0:
                held.slot_free.clear()
                await held.slot_free.wait()
                continue
            wanted = min(free, config.claim_batch_size)
            self._wake.clear()
            rang, self._alarm_rang = self._alarm_rang, False
            undecodable: list[tuple[Job, str]] = []
            from_start = rang or self._from_start or time.monotonic() >= self._next_full_claim
            try:
                jobs = await self._store.claim_jobs(
                    lanes=self._lanes.bounds(from_start=from_start),
                    limit=wanted,
                    worker_id=self._worker_id,
                    lease_seconds=config.visibility_timeout,
                    undecodable=undecodable,
                )
            except Exception as exc:
                self.first_claim_done.set()
                failures += 1
                if self._metrics is not None:
                    self._metrics.claim_failures += 1
                delay = backoff_ceiling(failures, 0.05, config.poll_interval)
                log.warning("claim_failed", error=describe_error(exc), retry_in=round(delay, 3))
                self._alarm_rang = self._alarm_rang or rang
                await self._sleep_until_woken(delay)
                continue
            self.first_claim_done.set()
            if from_start:
                self._from_start = False
                self._next_full_claim = time.monotonic() + FULL_CLAIM_INTERVAL
            self._lanes.advance(jobs)
            self._lanes.advance(job for job, _ in undecodable)
            if failures:
                failures = 0
                if self._on_recovered is not None:
                    self._on_recovered()
            if self._metrics is not None:
                self._metrics.claim(len(jobs) + len(undecodable))
            if jobs:
                self.accept(jobs)
            if undecodable:
                self._fail_undecodable(undecodable)
            if len(jobs) + len(undecodable) < wanted:
                if self._look_ahead or (rang and not jobs and not undecodable):
                    # Nothing was due when the alarm said so: the host's clock is ahead of the
                    # database's, or the due time came from a missed announcement.
                    await self._set_alarm_for_next_due()
                if not await self._sleep_until_woken(config.poll_interval):
                    self._from_start = True  # polled: whatever no notification announced

    async def _set_alarm_for_next_due(self) -> None:
        try:
            seconds = await self._store.next_due_in(self._queues, self._job_types)
        except Exception as exc:
            log.warning("next_due_lookup_failed", error=describe_error(exc))
            return
        self._look_ahead = False
        if seconds is not None and not self._stopping:
            self._jobs_due.ring_in(seconds)

    def accept(self, jobs: list[Job]) -> None:
        """Hand claimed jobs to the workers."""
        self._recorder.claimed(jobs)
        put = self._handoff.put
        for job in jobs:
            put(job)

    def _fail_undecodable(self, undecodable: list[tuple[Job, str]]) -> None:
        self._recorder.claimed([job for job, _ in undecodable])
        for job, error in undecodable:
            self._recorder.record(
                job,
                Outcome(
                    OutcomeKind.FAILED,
                    f"PayloadError: the payload cannot be decoded: {error}",
                    permanent=True,
                ),
            )

    async def _sleep_until_woken(self, seconds: float) -> bool:
        """Sleep until woken (True) or for ``seconds`` (False)."""
        if self._stopping or self._wake.is_set():
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True
