"""Maintenance run by every daemon: reclaiming expired leases, pruning finished jobs, and a watch
for jobs of types the daemon has no handler for.

Each service has a ``run_once`` that does one sweep and returns what it did (tests call it
directly) and a ``run`` loop that sweeps at its interval with jitter, so a fleet started together
does not sweep in lockstep. Sweeps lock rows with SKIP LOCKED, so any number of daemons may run
them at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
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
    cancelled: int = 0


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
                elif row["state"] == "cancelled":  # an operator had asked it to stop
                    result.cancelled += 1
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


# Seconds a due job of a type this daemon lacks waits before it is worth a warning.
UNKNOWN_TYPE_WAIT = 60.0
# Seconds between two warnings about the same queue and type.
UNKNOWN_TYPE_WARN_EVERY = 3600.0
UNKNOWN_TYPE_SAMPLE = 1000


class UnknownTypeWatch:
    """Warns, once an hour per queue and type, of due jobs no handler of this daemon can take.

    A rolling deploy or a missing handler package leaves such jobs waiting: correct (another
    daemon may know the type), but worth saying when they have waited a minute. It finds the
    types queued in each served queue (one index probe per type) and counts up to
    ``UNKNOWN_TYPE_SAMPLE`` due jobs of each type it lacks.
    """

    def __init__(self, store: JobStore, queues: Sequence[str], job_types: Sequence[str]) -> None:
        self.store = store
        self.queues = list(queues)
        self.job_types = list(job_types)
        self._warned: dict[tuple[str, str], float] = {}

    async def run_once(self) -> list[tuple[str, str]]:
        """Look once; returns the (queue, job type) pairs warned about."""
        rows = await self.store.waiting_unknown_types(
            self.queues, self.job_types, UNKNOWN_TYPE_WAIT, UNKNOWN_TYPE_SAMPLE
        )
        now = time.monotonic()
        warned = []
        for queue_name, job_type, waiting, oldest in rows:
            last = self._warned.get((queue_name, job_type))
            if last is not None and now - last < UNKNOWN_TYPE_WARN_EVERY:
                continue
            self._warned[(queue_name, job_type)] = now
            warned.append((queue_name, job_type))
            log.warning(
                "jobs_waiting_for_unknown_type",
                queue=queue_name,
                job_type=job_type,
                waiting=waiting if waiting < UNKNOWN_TYPE_SAMPLE else f"{UNKNOWN_TYPE_SAMPLE}+",
                oldest_wait=round(oldest),
                handled_here=self.job_types,
                note="no handler in this daemon; unless another daemon has one, they wait",
            )
        return warned

    async def run(self) -> None:
        await _every(UNKNOWN_TYPE_WAIT, self.run_once, "unknown_type_watch")
