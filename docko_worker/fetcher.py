"""The fetcher: claims jobs for every free worker slot and hands them to the workers.

One claim statement takes up to ``min(free slots, claim_batch_size)`` jobs. The fetcher claims
again at once while claims come back full, and sleeps only once the queue is drained: until the
waker reports a new job, a retry this process wrote falls due (``retries_due``, an ``Alarm``
that calls ``wake``), or
``poll_interval`` passes. A claim that fails is retried with backoff; the first that succeeds
after failures calls ``on_recovered`` (the waker reconnects at once instead of at the end of its
own backoff).

A claimed job whose payload cannot be decoded is not handed to a worker: it fails alone, at once,
and the rest of its batch runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from .alarm import Alarm
from .config import Config
from .errors import describe_error
from .handoff import Handoff
from .held import HeldJobs
from .job import Job
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
        retries_due: Alarm,
        on_recovered: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._queues = list(queues)
        self._job_types = list(job_types)
        self._worker_id = worker_id
        self._held = held
        self._handoff = handoff
        self._recorder = recorder
        self._on_recovered = on_recovered
        self._metrics = metrics
        self._wake = asyncio.Event()
        # Rings (through ``wake``) when a retry this process wrote falls due.
        self._retries_due = retries_due
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Claim no more; ``run`` returns once an in-flight claim is done."""
        self._stopping = True
        self._retries_due.cancel()
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
            undecodable: list[tuple[Job, str]] = []
            try:
                jobs = await self._store.claim_jobs(
                    queues=self._queues,
                    job_types=self._job_types,
                    limit=wanted,
                    worker_id=self._worker_id,
                    lease_seconds=config.visibility_timeout,
                    undecodable=undecodable,
                )
            except Exception as exc:
                failures += 1
                if self._metrics is not None:
                    self._metrics.claim_failures += 1
                delay = backoff_ceiling(failures, 0.05, config.poll_interval)
                log.warning("claim_failed", error=describe_error(exc), retry_in=round(delay, 3))
                await self._sleep_until_woken(delay)
                continue
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
                await self._sleep_until_woken(config.poll_interval)

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

    async def _sleep_until_woken(self, seconds: float) -> None:
        if self._stopping or self._wake.is_set():
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
