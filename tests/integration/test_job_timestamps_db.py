"""Job timestamps read back exactly as asyncpg's own timestamptz decoding reads them, on every
path that builds jobs from rows (``get_job`` and the claim)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from docko_worker import Job, Queue
from tests.integration.support import store_of

TIMESTAMP_COLUMNS = ("run_at", "created_at", "updated_at", "lease_expires_at", "finished_at")

# Past and future dates, with microseconds at both ends of the range and in between.
MOMENTS = [
    "1900-03-01 00:00:00.000001+00",
    "1969-12-31 23:59:59.999999+00",
    "2001-09-09 01:46:40.5+00",
    "2026-11-28 23:01:17.965243+00",
    "2038-01-19 03:14:07.999999+00",
    "2105-12-31 23:59:59.999999+00",
]
PAST = MOMENTS[:4]


async def native(db: asyncpg.Connection, job_id: object) -> tuple[datetime | None, ...]:
    row = await db.fetchrow(
        f"SELECT {', '.join(TIMESTAMP_COLUMNS)} FROM docko_jobs WHERE id = $1", job_id
    )
    assert row is not None
    return tuple(row)


def timestamps(job: Job) -> tuple[datetime | None, ...]:
    return tuple(getattr(job, column) for column in TIMESTAMP_COLUMNS)


@pytest.mark.parametrize("moment", MOMENTS)
async def test_get_job_reads_timestamps_as_asyncpg_does(
    queue: Queue, db: asyncpg.Connection, moment: str
) -> None:
    job = await queue.enqueue("documents", "ocr", {})
    await db.execute(
        "UPDATE docko_jobs SET run_at = $2::text::timestamptz, created_at = $2::text::timestamptz,"
        " updated_at = $2::text::timestamptz - interval '1 microsecond',"
        " lease_expires_at = $2::text::timestamptz + interval '1 microsecond',"
        " finished_at = $2::text::timestamptz WHERE id = $1",
        job.id,
        moment,
    )
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert timestamps(stored) == await native(db, job.id)
    assert stored.run_at.tzinfo is UTC


async def test_claimed_jobs_read_timestamps_as_asyncpg_does(
    queue: Queue, db: asyncpg.Connection
) -> None:
    jobs = await queue.enqueue_many("documents", "ocr", [{} for _ in PAST])
    for job_id, moment in zip(jobs, PAST, strict=True):
        await db.execute(
            "UPDATE docko_jobs SET run_at = $2::text::timestamptz WHERE id = $1", job_id, moment
        )
    claimed = await store_of(queue).claim_jobs(
        queues=["documents"], job_types=["ocr"], limit=10, worker_id="w", lease_seconds=30
    )
    assert sorted(job.id for job in claimed) == sorted(jobs)
    for job in claimed:
        assert timestamps(job) == await native(db, job.id)
        assert job.lease_expires_at is not None and job.finished_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("infinity", datetime.max.replace(tzinfo=UTC)),
        ("-infinity", datetime.min.replace(tzinfo=UTC)),
    ],
)
async def test_an_infinite_run_at_reads_as_the_extreme_datetime_in_utc(
    queue: Queue, db: asyncpg.Connection, value: str, expected: datetime
) -> None:
    job = await queue.enqueue("documents", "ocr", {})
    await db.execute(
        "UPDATE docko_jobs SET run_at = $2::text::timestamptz WHERE id = $1", job.id, value
    )
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.run_at == expected
    assert stored.run_at.replace(tzinfo=None) == (await native(db, job.id))[0]
