"""Claims under concurrency: many workers on two pools never run one job twice, and concurrent
``JobStore.claim_jobs`` calls from separate pools return disjoint sets."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from uuid import UUID

import asyncpg

from docko_worker import Config, Job, JobState, Queue
from docko_worker.store import JobStore
from tests.integration.support import count_jobs, running_queue, store_of, wait_until

JOBS = 2000


async def test_two_daemons_run_every_job_exactly_once(
    make_config: Callable[..., Config],
) -> None:
    runs: list[tuple[UUID, str | None, int]] = []

    async def record(job: Job) -> None:
        runs.append((job.id, job.worker_id, job.attempt))
        await asyncio.sleep(0)

    config = make_config(worker_count=20, poll_interval=0.1)
    async with (
        running_queue(config, {"noop": record}) as first,
        running_queue(config, {"noop": record}) as second,
    ):
        ids = await first.enqueue_many("default", "noop", [{"n": n} for n in range(JOBS)])

        async def all_completed() -> bool:
            return await count_jobs(first, state="completed") == JOBS

        await wait_until(all_completed, timeout=30, interval=0.05)
        assert first.worker_id is not None and second.worker_id is not None
        worker_ids = {first.worker_id, second.worker_id}

    runs_per_job = Counter(job_id for job_id, _, _ in runs)
    twice = [job_id for job_id, count in runs_per_job.items() if count > 1]
    assert not twice, f"{len(twice)} jobs ran more than once"
    assert set(runs_per_job) == set(ids)
    assert all(attempt == 1 for _, _, attempt in runs)
    ran_by = Counter(worker_id for _, worker_id, _ in runs)
    assert set(ran_by) == worker_ids, f"both daemons should share the work, got {ran_by}"


async def test_concurrent_claims_from_two_pools_are_disjoint(
    queue: Queue, database_url: str
) -> None:
    ids = await queue.enqueue_many("default", "ocr", [{"n": n} for n in range(1000)])
    pools = [await asyncpg.create_pool(database_url, min_size=5, max_size=5) for _ in range(2)]
    claims: dict[str, list[Job]] = {}

    async def claim_until_empty(store: JobStore, worker_id: str) -> None:
        claimed = claims.setdefault(worker_id, [])
        while True:
            jobs = await store.claim_jobs(
                queues=["default"],
                job_types=["ocr"],
                limit=25,
                worker_id=worker_id,
                lease_seconds=60,
            )
            if not jobs:
                return
            claimed.extend(jobs)

    try:
        await asyncio.gather(
            *(
                claim_until_empty(JobStore(pool), f"pool{p}-claimer{c}")
                for p, pool in enumerate(pools)
                for c in range(8)
            )
        )
    finally:
        await asyncio.gather(*(pool.close() for pool in pools))

    claimed_ids = [job.id for jobs in claims.values() for job in jobs]
    assert len(claimed_ids) == len(set(claimed_ids)), "a job was claimed twice"
    assert set(claimed_ids) == set(ids)
    for worker_id, jobs in claims.items():
        for job in jobs:
            assert job.worker_id == worker_id
            assert job.state is JobState.RUNNING
            assert job.attempt == 1
            assert job.lease_expires_at is not None
    assert sum(1 for jobs in claims.values() if jobs) > 1, "claims did not overlap at all"
    assert await count_jobs(queue, state="running") == 1000


async def test_claim_respects_limit_queues_and_types(queue: Queue) -> None:
    await queue.enqueue_many("default", "ocr", [{}] * 5)
    await queue.enqueue_many("other", "ocr", [{}] * 5)
    await queue.enqueue_many("default", "thumbnail", [{}] * 5)
    jobs = await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=3, worker_id="w", lease_seconds=60
    )
    assert len(jobs) == 3
    assert {(job.queue_name, job.job_type) for job in jobs} == {("default", "ocr")}
    both = await store_of(queue).claim_jobs(
        queues=["default", "other"], job_types=["ocr"], limit=100, worker_id="w", lease_seconds=60
    )
    assert len(both) == 7
    assert {job.queue_name for job in both} == {"default", "other"}
    assert await count_jobs(queue, state="available", job_type="thumbnail") == 5


async def test_claims_racing_hand_backs_never_hold_a_job_twice(
    queue: Queue, database_url: str
) -> None:
    """Jobs handed back while other claims are in flight: a claim may lock a row version newer
    than its snapshot, which it must then leave alone rather than claim twice or lose."""
    ids = await queue.enqueue_many("default", "ocr", [{"n": n} for n in range(200)])
    pool = await asyncpg.create_pool(database_url, min_size=6, max_size=6)
    store = JobStore(pool)
    holder: dict[UUID, str] = {}
    claims = hand_backs = 0
    stop = asyncio.Event()

    async def claimer(name: str) -> None:
        nonlocal claims
        while not stop.is_set():
            jobs = await store.claim_jobs(
                queues=["default"], job_types=["ocr"], limit=10, worker_id=name, lease_seconds=60
            )
            for job in jobs:
                assert job.id not in holder, (
                    f"{job.id} claimed by {name} while {holder[job.id]} held it"
                )
                assert job.attempt == 1  # every hand-back gave its attempt back
                holder[job.id] = name
            claims += len(jobs)
            await asyncio.sleep(0)

    async def hand_back() -> None:
        nonlocal hand_backs
        while not stop.is_set():
            held = list(holder)[:5]
            for job_id in held:
                del holder[job_id]  # before the write: a claim may return it as soon as it lands
            if held:
                released = await store.release_jobs(held, [1] * len(held))
                assert released == set(held)
                hand_backs += len(held)
            await asyncio.sleep(0)

    async def stop_soon() -> None:
        await asyncio.sleep(2)
        stop.set()

    try:
        await asyncio.gather(
            stop_soon(), *(claimer(f"claimer{n}") for n in range(4)), hand_back(), hand_back()
        )
        await store.release_jobs(list(holder), [1] * len(holder))
    finally:
        await pool.close()

    assert claims > 200 and hand_backs > 200, (claims, hand_backs)
    assert await count_jobs(queue, state="available") == len(ids)
