"""``metrics.Metrics``: what the per-job path counts, however its shortcuts group the jobs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from docko_worker.job import Job, JobState
from docko_worker.metrics import (
    COMPLETED,
    FAILED,
    LEASE_LOST,
    OUTCOMES,
    SECONDS_BUCKETS,
    Histogram,
    Metrics,
)

NOW = datetime.now(UTC)


def job(queue: str = "documents", job_type: str = "ocr", run_at: datetime = NOW) -> Job:
    # Strings built at run time, as a database driver returns them: equal, not identical.
    return Job(
        uuid4(), "".join(queue), "".join(job_type), {}, JobState.RUNNING, 1, 5, 0, run_at, NOW, NOW
    )


def test_histogram_buckets_are_upper_bounds_and_cumulative() -> None:
    histogram = Histogram([1.0, 10.0])
    for value in (0.5, 1.0, 1.5, 10.0, 11.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(1.0, 2), (10.0, 4), (float("inf"), 5)]
    assert histogram.total == 24.0


def test_waits_are_counted_per_job_whatever_the_grouping() -> None:
    metrics = Metrics()
    early = NOW - timedelta(hours=2)
    jobs = [
        job(run_at=NOW),
        job(run_at=NOW),
        job(job_type="thumbnail", run_at=NOW),
        job(run_at=early),
        job(run_at=NOW),
        job(queue="previews", run_at=NOW),
    ]
    metrics.claimed(jobs)

    ocr = metrics.series[("documents", "ocr")].wait
    assert sum(ocr.counts) == 4
    assert metrics.series[("documents", "thumbnail")].wait.counts != [0] * (
        len(SECONDS_BUCKETS) + 1
    )
    assert sum(metrics.series[("previews", "ocr")].wait.counts) == 1
    # The two-hour wait lands in the bucket up to 7200 s (or the next, the clock moving on).
    assert 7200 <= ocr.total < 7200 + 60
    assert ocr.cumulative()[SECONDS_BUCKETS.index(3600.0)][1] == 3


def test_outcomes_and_durations_follow_each_jobs_own_series() -> None:
    metrics = Metrics()
    metrics.prime(["documents"], ["ocr", "index"])
    started = time.monotonic()
    for item in (job(), job(job_type="index"), job(), job(queue="previews")):
        metrics.finished(item, COMPLETED, started)
    metrics.finished(job(), FAILED, None)  # never ran: no duration
    metrics.count(job(job_type="index"), LEASE_LOST)

    ocr = metrics.series[("documents", "ocr")]
    assert dict(zip(OUTCOMES, ocr.outcomes, strict=True)) == {
        **dict.fromkeys(OUTCOMES, 0),
        "completed": 2,
        "failed": 1,
    }
    assert sum(ocr.duration.counts) == 2
    index = metrics.series[("documents", "index")]
    assert (index.outcomes[COMPLETED], index.outcomes[LEASE_LOST]) == (1, 1)
    assert metrics.series[("previews", "ocr")].outcomes[COMPLETED] == 1


def test_claims_and_writes_count_their_sizes() -> None:
    metrics = Metrics()
    for size in (0, 5, 1000):
        metrics.claim(size)
    metrics.write(3)
    assert (sum(metrics.claims.counts), metrics.claims.total) == (3, 1005)
    assert metrics.claims.cumulative()[0] == (0.0, 1)
    assert (sum(metrics.writes.counts), metrics.writes.total) == (1, 3)
