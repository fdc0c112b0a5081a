"""The queue sampler: one cheap statement every few seconds, for the gauges and for readiness.

Each sample (``sample_queues``) reads, per served queue, its available and running jobs (each
counted up to ``COUNT_CAP``, so a backlog of millions costs no more than one of ten thousand), the
age of its oldest due job, and the schema's version. The last sample feeds the ``docko_queue_*``
gauges; whether it succeeded, and whether the schema holds every migration this daemon knows,
feed ``/readyz``. A failed sample is logged once, when the database stops answering, and once
when it answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from .errors import describe_error
from .migrations import available_migrations
from .store import JobStore, QueueSample

log = structlog.get_logger("docko_worker.sampler")

# Jobs counted per queue and state at most: the gauges read this number beyond it.
COUNT_CAP = 10_000
# Distinct priorities the oldest-due search visits per queue at most.
PRIORITIES_CAP = 1_000
# Seconds a sample may take at the least before it counts as failed.
MIN_SAMPLE_TIMEOUT = 5.0


class QueueSampler:
    """Samples ``queues`` every ``interval`` seconds; ``samples`` holds the last success."""

    def __init__(self, store: JobStore, queues: Sequence[str], interval: float) -> None:
        self._store = store
        self._queues = list(queues)
        self._interval = interval
        self._timeout = max(interval, MIN_SAMPLE_TIMEOUT)
        self.expected_schema = max((m.version for m in available_migrations()), default=0)
        self.samples: list[QueueSample] = []
        # time.monotonic() of the last successful sample; None before the first.
        self.sampled_at: float | None = None
        self.schema_version: int | None = None
        self.connected = False
        self.attempted = False
        self.failures = 0

    @property
    def schema_current(self) -> bool:
        return self.schema_version is not None and self.schema_version >= self.expected_schema

    async def run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._interval)

    async def run_once(self) -> bool:
        """Take one sample; whether it succeeded."""
        try:
            async with asyncio.timeout(self._timeout):
                samples = await self._store.sample_queues(self._queues, COUNT_CAP, PRIORITIES_CAP)
        except Exception as exc:
            self.failures += 1
            if self.connected or not self.attempted:
                log.warning("queue_sample_failed", error=describe_error(exc))
            self.connected = False
            self.attempted = True
            return False
        if self.attempted and not self.connected:
            log.info("queue_sample_recovered")
        self.samples = samples
        self.sampled_at = time.monotonic()
        self.schema_version = samples[0].schema_version if samples else None
        self.connected = True
        self.attempted = True
        return True
