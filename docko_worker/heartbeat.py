"""The heartbeat: extends the lease of every job this process holds, in one statement.

It runs every ``heartbeat_interval`` (a third of the visibility timeout by default), so only a dead,
frozen or disconnected process lets a lease expire. A job whose lease the statement did not extend
is no longer this process's: ``lease_lost`` is logged and the job released, unless its outcome was
already with the completer, whose guarded write then says what happened (a completion that landed
between the heartbeat's snapshot and its statement is not a lost lease), and unless its handler
completed it in its own transaction (``docko_worker.complete``), which ends the lease too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from uuid import UUID

import structlog

from .config import Config
from .errors import describe_error
from .held import HeldJobs
from .job import job_id_of
from .metrics import LEASE_LOST, Metrics
from .store import JobStore

log = structlog.get_logger("docko_worker.heartbeat")


class Heartbeat:
    """Keeps the leases of ``held`` jobs alive while this process holds them."""

    def __init__(
        self,
        store: JobStore,
        config: Config,
        held: HeldJobs,
        worker_id: str,
        *,
        on_cancel_requested: Callable[[UUID], object] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._held = held
        self._worker_id = worker_id
        self._on_cancel_requested = on_cancel_requested
        self._metrics = metrics

    async def run(self) -> None:
        interval = self._config.effective_heartbeat_interval
        lease = self._config.visibility_timeout
        last = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            late = now - last - interval
            last = now
            if late > lease:
                log.warning("heartbeat_late_leases_at_risk", late_by=round(late, 1))
            await self.run_once()

    async def run_once(self) -> int:
        """Extend every held lease; returns how many were lost."""
        held = self._held
        # In id order, as the completer's writes lock theirs: no deadlock between the two.
        jobs = sorted(held.leased(), key=job_id_of)
        if not jobs:
            return 0
        try:
            kept = await self._store.extend_leases(
                [j.id for j in jobs],
                [j.attempt for j in jobs],
                self._worker_id,
                self._config.visibility_timeout,
            )
        except Exception as exc:
            log.warning("heartbeat_failed", error=describe_error(exc), jobs=len(jobs))
            return 0
        lost = [
            job
            for job in jobs
            if job.id not in kept
            and held.holds(job)
            and not held.awaiting_write(job)
            and not job.completed_in_transaction
        ]
        for job in lost:
            log.warning(
                "lease_lost", job_id=str(job.id), job_type=job.job_type, attempt=job.attempt
            )
            if self._metrics is not None:
                self._metrics.count(job, LEASE_LOST)
        held.release(lost)
        if self._on_cancel_requested is not None:
            # The fallback for a control notification missed (LISTEN down, or poll-only mode).
            for job_id, cancel_requested in kept.items():
                if cancel_requested:
                    self._on_cancel_requested(job_id)
        return len(lost)
