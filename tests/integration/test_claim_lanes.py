"""The claim reads lanes, a queue and a job type each. A daemon with few lanes locks each lane's
head as it reads it (``claim_jobs``); one with many reads the heads unlocked, merges them and
locks only what it takes (``claim_jobs_merged``). Both take the best priority first across every
lane, skip paused queues, and never hand one job to two claims."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import pytest

from docko_worker import Job, Queue
from docko_worker.store import LOCKED_LANES, JobStore
from tests.integration.support import store_of

# Queues that, with two job types, make more lanes than a claim locks while reading.
MANY_QUEUES = [f"q{n}" for n in range(LOCKED_LANES)]
FEW_QUEUES = ["q0"]
TYPES = ["ocr", "thumbnail"]


@pytest.fixture(params=["few lanes", "many lanes"])
def queues(request: pytest.FixtureRequest) -> list[str]:
    return FEW_QUEUES if request.param == "few lanes" else MANY_QUEUES


def test_the_two_lane_counts_take_the_two_statements() -> None:
    assert len(FEW_QUEUES) * len(TYPES) <= LOCKED_LANES < len(MANY_QUEUES) * len(TYPES)


async def _claim(store: JobStore, queues: list[str], limit: int, worker_id: str = "w") -> list[Job]:
    return await store.claim_jobs(
        queues=queues, job_types=TYPES, limit=limit, worker_id=worker_id, lease_seconds=60
    )


async def test_the_best_priorities_of_every_lane_come_first(
    queue: Queue, queues: list[str]
) -> None:
    expected: list[tuple[int, str, str]] = []
    for n, queue_name in enumerate(queues):
        for job_type in [*TYPES, "pdf"]:
            for priority in (5, -n, 3):
                await queue.enqueue(queue_name, job_type, {}, priority=priority)
                if job_type != "pdf":
                    expected.append((priority, queue_name, job_type))
    expected.sort(key=lambda item: item[0])
    limit = len(queues) * len(TYPES) + 1
    jobs = await _claim(store_of(queue), queues, limit)
    assert [job.priority for job in jobs] == [p for p, _, _ in expected[:limit]]
    assert all(job.job_type in TYPES for job in jobs)
    # Within one priority, the oldest first.
    rest = await _claim(store_of(queue), queues, 1000)
    assert len(jobs) + len(rest) == len(expected)
    assert [(job.priority, job.run_at) for job in rest] == sorted(
        (job.priority, job.run_at) for job in rest
    )


async def test_a_paused_queue_is_skipped(queue: Queue, queues: list[str]) -> None:
    for queue_name in queues:
        await queue.enqueue_many(queue_name, "ocr", [{}] * 3)
    await queue.pause(queues[0])
    jobs = await _claim(store_of(queue), queues, 1000)
    assert len(jobs) == 3 * (len(queues) - 1)
    assert queues[0] not in {job.queue_name for job in jobs}


async def test_concurrent_claims_are_disjoint_and_take_everything(
    queue: Queue, queues: list[str], database_url: str
) -> None:
    ids: list[UUID] = []
    for queue_name in queues:
        for job_type in TYPES:
            ids += await queue.enqueue_many(queue_name, job_type, [{}] * (600 // len(queues)))
    pools = [await asyncpg.create_pool(database_url, min_size=4, max_size=4) for _ in range(2)]
    claimed: list[Job] = []

    async def claim_until_empty(store: JobStore, worker_id: str) -> None:
        while jobs := await _claim(store, queues, 20, worker_id):
            claimed.extend(jobs)

    try:
        await asyncio.gather(
            *(
                claim_until_empty(JobStore(pool), f"pool{p}-claimer{c}")
                for p, pool in enumerate(pools)
                for c in range(6)
            )
        )
    finally:
        await asyncio.gather(*(pool.close() for pool in pools))
    claimed_ids = [job.id for job in claimed]
    assert len(claimed_ids) == len(set(claimed_ids)), "a job was claimed twice"
    assert set(claimed_ids) == set(ids)
    assert all(job.attempt == 1 for job in claimed)
