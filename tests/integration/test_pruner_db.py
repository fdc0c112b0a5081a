"""Pruning finished jobs: ``Pruner.run_once`` deletes jobs past their retention and keeps the rest,
and ``completed_retention=0`` deletes a job's row as it completes."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from docko_worker import Config, Job, JobState, PermanentError, Queue
from docko_worker.maintenance import Pruner
from tests.integration.support import (
    count_jobs,
    running_queue,
    store_of,
    wait_for_state,
    wait_until,
)


async def finish(queue: Queue, state: JobState) -> UUID:
    job = await queue.enqueue("default", "ocr", {})
    [claimed] = await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=1, worker_id="w", lease_seconds=60
    )
    assert claimed.id == job.id
    if state is JobState.COMPLETED:
        assert await store_of(queue).complete_jobs([job.id], [1]) == {job.id}
    else:
        assert await store_of(queue).fail_jobs([job.id], [1], ["boom"]) == {job.id}
    return job.id


async def test_jobs_past_retention_are_pruned(
    queue: Queue, make_config: Callable[..., Config]
) -> None:
    completed = await finish(queue, JobState.COMPLETED)
    failed = await finish(queue, JobState.FAILED)
    available = await queue.enqueue("default", "other", {})
    pruner = Pruner(store_of(queue), make_config(completed_retention=0.05))

    async def completed_gone() -> bool:
        await pruner.run_once()
        return await queue.get_job(completed) is None

    await wait_until(completed_gone, timeout=5)
    assert await queue.get_job(failed) is not None  # failed_retention is a week
    assert await queue.get_job(available.id) is not None


async def test_failed_jobs_past_their_retention_are_pruned(
    queue: Queue, make_config: Callable[..., Config]
) -> None:
    failed = await finish(queue, JobState.FAILED)
    completed = await finish(queue, JobState.COMPLETED)
    pruner = Pruner(store_of(queue), make_config(failed_retention=0.05))

    async def failed_gone() -> bool:
        await pruner.run_once()
        return await queue.get_job(failed) is None

    await wait_until(failed_gone, timeout=5)
    assert await queue.get_job(completed) is not None


async def test_jobs_within_retention_are_kept(
    queue: Queue, make_config: Callable[..., Config]
) -> None:
    await finish(queue, JobState.COMPLETED)
    await finish(queue, JobState.FAILED)
    result = await Pruner(store_of(queue), make_config(completed_retention=3600)).run_once()
    assert result.deleted == 0
    assert await count_jobs(queue) == 2


async def test_prune_reports_how_many_it_deleted(
    queue: Queue, make_config: Callable[..., Config]
) -> None:
    for _ in range(3):
        await finish(queue, JobState.COMPLETED)
    pruner = Pruner(store_of(queue), make_config(completed_retention=0.05))
    deleted: list[int] = []

    async def all_deleted() -> bool:
        deleted.append((await pruner.run_once()).deleted)
        return await count_jobs(queue) == 0

    await wait_until(all_deleted, timeout=5)
    assert sum(deleted) == 3


async def test_zero_completed_retention_deletes_jobs_as_they_complete(
    make_config: Callable[..., Config],
) -> None:
    ran: list[UUID] = []

    async def handle(job: Job) -> None:
        ran.append(job.id)
        if job.payload.get("reject"):
            raise PermanentError("rejected")

    config = make_config(completed_retention=0)
    async with running_queue(config, {"ocr": handle}) as queue:
        rejected = await queue.enqueue("default", "ocr", {"reject": True})
        await wait_for_state(queue, rejected.id, JobState.FAILED)
        job = await queue.enqueue("default", "ocr", {"reject": False})

        async def deleted() -> bool:
            return await queue.get_job(job.id) is None

        await wait_until(deleted, timeout=10)
        assert await count_jobs(queue, state="completed") == 0
        # Failed jobs are kept for failed_retention.
        assert await count_jobs(queue, state="failed") == 1
    assert ran == [rejected.id, job.id]
