"""What the daemon counts for its metrics: plain numbers, kept cheap on the per-job path.

The recorder, the fetcher, the completer and the heartbeat add to a ``Metrics`` with dict and
list operations only: no prometheus_client call per job (its ``labels().inc()`` costs several
times more than the rest of a no-op job's bookkeeping). ``exposition.py`` turns these numbers
into Prometheus metric families when ``/metrics`` is scraped. Histograms keep one count per
bucket (found with ``bisect``) and a sum; the buckets are made cumulative only at scrape time.

Labels stay bounded: a job's queue and type (the queues a daemon serves, the types it has
handlers for) and the outcome; never a job id or a payload.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job

# What became of a job, as the ``outcome`` label of ``docko_jobs_total`` spells it; the
# constants below index ``Series.outcomes``. ``lease_lost`` and ``write_rejected`` count
# outcomes this daemon reached but could not write: the job runs again, here or elsewhere.
OUTCOMES = (
    "completed",
    "retried",
    "failed",
    "cancelled",
    "released",
    "lease_lost",
    "write_rejected",
)
COMPLETED, RETRIED, FAILED, CANCELLED, RELEASED, LEASE_LOST, WRITE_REJECTED = range(len(OUTCOMES))

# Seconds, from a millisecond to four hours: handler durations and waits before a claim.
SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
)
# Jobs per claim statement, outcomes per write statement (0: a claim that found nothing).
BATCH_BUCKETS = (0.0, 1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0)


class Histogram:
    """Counts per bucket (the last one is ``+Inf``) and the sum of the observed values."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def counts_any(self) -> bool:
        """Whether anything was observed."""
        return any(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or below it)`` per bucket, ``inf`` last."""
        running = 0
        result: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


class Series:
    """Everything counted for one (queue, job type)."""

    __slots__ = ("duration", "outcomes", "wait")

    def __init__(self) -> None:
        self.outcomes = [0] * len(OUTCOMES)
        self.duration = Histogram(SECONDS_BUCKETS)
        self.wait = Histogram(SECONDS_BUCKETS)


class Metrics:
    """The daemon's tallies since it started; read by ``exposition.DaemonCollector``."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        # The (queue, job type) of the last finished job and its series: jobs come in runs of
        # one type, and a string comparison costs less than building and hashing a key.
        self._last_queue = ""
        self._last_type = ""
        self._last_series: Series | None = None
        self.claims = Histogram(BATCH_BUCKETS)
        self.claim_failures = 0
        self.writes = Histogram(BATCH_BUCKETS)
        self.write_failures = 0

    def prime(self, queues: Iterable[str], job_types: Iterable[str]) -> None:
        """Start every (queue, job type) this daemon serves at zero, so that a counter's first
        increase shows in ``rate()`` instead of appearing as a new series."""
        types = list(job_types)
        for queue in queues:
            for job_type in types:
                self.series.setdefault((queue, job_type), Series())

    def _series(self, job: Job) -> Series:
        key = (job.queue_name, job.job_type)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        return series

    def claimed(self, jobs: Iterable[Job]) -> None:
        """Jobs just claimed: how long each waited after it fell due (its ``run_at``).

        Consecutive jobs of one queue and type sharing one ``run_at`` object (a claim's rows
        share the datetime of equal timestamps, as a bulk enqueue's jobs have) are counted
        together, their wait computed once."""
        now = time.time()
        first: Job | None = None
        count = 0
        for job in jobs:
            if (
                first is not None
                and job.run_at is first.run_at
                and job.job_type == first.job_type
                and job.queue_name == first.queue_name
            ):
                count += 1
                continue
            if first is not None:
                self._waited(first, now, count)
            first, count = job, 1
        if first is not None:
            self._waited(first, now, count)

    def _waited(self, job: Job, now: float, count: int) -> None:
        wait = now - job.run_at.timestamp()
        wait = wait if wait > 0 else 0.0
        histogram = self._series(job).wait
        histogram.counts[bisect_left(histogram.bounds, wait)] += count
        histogram.total += wait * count

    def finished(self, job: Job, outcome: int, started: float | None) -> None:
        """A job's run ended with ``outcome``; its handler started at ``started`` (monotonic)."""
        series = self._last_series
        if series is None or job.job_type != self._last_type or job.queue_name != self._last_queue:
            series = self._last_series = self._series(job)
            self._last_queue, self._last_type = job.queue_name, job.job_type
        series.outcomes[outcome] += 1
        if started is not None:
            # Histogram.observe, inlined: this runs for every job.
            duration = time.monotonic() - started
            histogram = series.duration
            histogram.counts[bisect_left(histogram.bounds, duration)] += 1
            histogram.total += duration

    def count(self, job: Job, outcome: int) -> None:
        """An outcome that is not the end of a run (``LEASE_LOST``, ``WRITE_REJECTED``)."""
        self._series(job).outcomes[outcome] += 1

    def claim(self, size: int) -> None:
        self.claims.observe(size)

    def write(self, size: int) -> None:
        """One lease-guarded outcome statement that carried ``size`` outcomes."""
        self.writes.observe(size)
