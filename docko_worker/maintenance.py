"""Maintenance run by every daemon: reclaiming expired leases and pruning finished jobs.

Each service has a ``run_once`` that does one sweep and returns what it did (tests call it
directly) and a ``run`` loop that sweeps at its interval with jitter, so a fleet started together
does not sweep in lockstep. Sweeps lock rows with SKIP LOCKED, so any number of daemons may run
them at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from .config import Config
from .db import is_transient
from .errors import describe_error
from .store import JobStore

log = structlog.get_logger("docko_worker.maintenance")

SWEEP_BATCH = 1000


async def _every(interval: float, sweep: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))
        try:
            await sweep()
        except Exception as exc:
            if is_transient(exc):
                # An outage the rest of the daemon reports too: one line, no traceback.
                log.warning("maintenance_failed", service=name, error=describe_error(exc))
            else:
                log.exception("maintenance_failed", service=name)


@dataclass(slots=True)
class RescueResult:
    made_available: int = 0
    failed: int = 0


class Rescuer:
    """Makes running jobs whose lease expired claimable again, or failed on their last attempt."""

    def __init__(self, store: JobStore, config: Config) -> None:
        self.store = store
        self.config = config

    async def run_once(self) -> RescueResult:
        result = RescueResult()
        while True:
            rows = await self.store.rescue_expired_jobs(SWEEP_BATCH)
            for row in rows:
                if row["state"] == "failed":
                    result.failed += 1
                else:
                    result.made_available += 1
                log.warning(
                    "job_lease_expired",
                    job_id=str(row["id"]),
                    job_type=row["job_type"],
                    queue=row["queue_name"],
                    attempt=row["attempt"],
                    now=row["state"],
                )
            if len(rows) < SWEEP_BATCH:
                return result

    async def run(self) -> None:
        await _every(self.config.rescue_interval, self.run_once, "rescuer")


@dataclass(slots=True)
class PruneResult:
    deleted: int = 0


class Pruner:
    """Deletes completed, failed and cancelled jobs kept past their retention."""

    def __init__(self, store: JobStore, config: Config) -> None:
        self.store = store
        self.config = config

    async def run_once(self) -> PruneResult:
        result = PruneResult()
        config = self.config
        for state, retention in (
            ("completed", config.completed_retention),
            ("failed", config.failed_retention),
            ("cancelled", config.failed_retention),
        ):
            while True:
                deleted = await self.store.prune_finished_jobs(state, retention, SWEEP_BATCH)
                result.deleted += deleted
                if deleted < SWEEP_BATCH:
                    break
        if result.deleted:
            log.info("jobs_pruned", deleted=result.deleted)
        return result

    async def run(self) -> None:
        await _every(self.config.prune_interval, self.run_once, "pruner")
