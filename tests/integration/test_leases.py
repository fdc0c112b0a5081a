"""Leases: a dead worker's job is rescued when its lease expires (or failed on its last attempt),
a worker that lost its lease cannot overwrite the new owner's outcome, and the heartbeat keeps a
long job's lease alive so it is never run twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import UUID

import pytest

from docko_worker import Config, Job, JobState, Queue
from docko_worker.maintenance import Rescuer
from docko_worker.store import JobStore
from tests.integration.support import (
    running_queue,
    store_of,
    supervisor_of,
    wait_for_state,
    wait_until,
)

DEAD_WORKER = "dead-host:1:00000000"


async def claim_one(store: JobStore, worker_id: str, lease_seconds: float) -> Job:
    jobs = await store.claim_jobs(
        queues=["default"],
        job_types=["ocr"],
        limit=1,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
    )
    assert len(jobs) == 1, f"expected one job to claim, got {len(jobs)}"
    return jobs[0]


async def rescue_when_expired(store: JobStore, config: Config, job_id: UUID) -> None:
    """Sweep until the job's (short) lease has expired and the rescuer has taken it back."""
    rescuer = Rescuer(store, config)

    async def rescued() -> bool:
        await rescuer.run_once()
        job = await store.get_job(job_id)
        assert job is not None
        return job.state is not JobState.RUNNING

    await wait_until(rescued, timeout=5, message=f"rescue of job {job_id}")


async def test_expired_lease_makes_the_job_available_again(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=3)
    await claim_one(store_of(queue), DEAD_WORKER, lease_seconds=0.1)
    rescuer = Rescuer(store_of(queue), queue.config)

    async def made_available() -> int:
        return (await rescuer.run_once()).made_available

    assert await wait_until(made_available, timeout=5) == 1
    rescued = await queue.get_job(job.id)
    assert rescued is not None
    assert rescued.state is JobState.AVAILABLE
    assert rescued.attempt == 1
    assert rescued.worker_id is None
    assert rescued.lease_expires_at is None
    assert rescued.last_error is not None
    assert "LeaseExpired" in rescued.last_error
    assert DEAD_WORKER in rescued.last_error
    # Nothing left to rescue: a second sweep does nothing.
    again = await rescuer.run_once()
    assert (again.made_available, again.failed) == (0, 0)


async def test_rescued_job_is_completed_by_a_live_worker_on_attempt_two(
    queue: Queue, make_config: Callable[..., Config]
) -> None:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=3)
    await claim_one(store_of(queue), DEAD_WORKER, lease_seconds=0.1)
    await rescue_when_expired(store_of(queue), queue.config, job.id)
    attempts: list[int] = []

    async def handle(job: Job) -> None:
        attempts.append(job.attempt)

    async with running_queue(make_config(), {"ocr": handle}) as live:
        completed = await wait_for_state(live, job.id, JobState.COMPLETED)
    assert attempts == [2]
    assert completed.attempt == 2


async def test_running_daemon_rescues_a_dead_workers_job_by_itself(
    queue: Queue, make_config: Callable[..., Config]
) -> None:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=3)
    await claim_one(store_of(queue), DEAD_WORKER, lease_seconds=0.3)

    async def handle(job: Job) -> None:
        return None

    async with running_queue(make_config(rescue_interval=0.1), {"ocr": handle}) as live:
        completed = await wait_for_state(live, job.id, JobState.COMPLETED)
    assert completed.attempt == 2


async def test_expired_lease_on_the_last_attempt_fails_the_job(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=1)
    await claim_one(store_of(queue), DEAD_WORKER, lease_seconds=0.1)
    rescuer = Rescuer(store_of(queue), queue.config)

    async def failed() -> int:
        return (await rescuer.run_once()).failed

    assert await wait_until(failed, timeout=5) == 1
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.state is JobState.FAILED
    assert stored.attempt == 1
    assert stored.finished_at is not None
    assert stored.last_error is not None
    assert "LeaseExpired" in stored.last_error
    assert "lease" in stored.last_error


async def test_unexpired_lease_is_not_rescued(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim_one(store_of(queue), "live-worker", lease_seconds=60)
    result = await Rescuer(store_of(queue), queue.config).run_once()
    assert (result.made_available, result.failed) == (0, 0)
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.state is JobState.RUNNING


StaleWrite = Callable[[JobStore, UUID, int], Awaitable[set[UUID]]]


async def write_complete(store: JobStore, job_id: UUID, attempt: int) -> set[UUID]:
    return await store.complete_jobs([job_id], [attempt])


async def write_complete_and_delete(store: JobStore, job_id: UUID, attempt: int) -> set[UUID]:
    return await store.complete_jobs([job_id], [attempt], delete=True)


async def write_retry(store: JobStore, job_id: UUID, attempt: int) -> set[UUID]:
    return await store.retry_jobs([job_id], [attempt], [0.0], [f"retry from attempt {attempt}"])


async def write_fail(store: JobStore, job_id: UUID, attempt: int) -> set[UUID]:
    return await store.fail_jobs([job_id], [attempt], [f"fail from attempt {attempt}"])


async def write_release(store: JobStore, job_id: UUID, attempt: int) -> set[UUID]:
    return await store.release_jobs([job_id], [attempt])


@pytest.mark.parametrize(
    ("write", "after"),
    [
        (write_complete, (JobState.COMPLETED, 2)),
        (write_complete_and_delete, None),
        (write_retry, (JobState.AVAILABLE, 2)),
        (write_fail, (JobState.FAILED, 2)),
        (write_release, (JobState.AVAILABLE, 1)),
    ],
    ids=["complete", "complete-delete", "retry", "fail", "release"],
)
async def test_stale_worker_outcome_is_ignored_and_new_owner_outcome_lands(
    queue: Queue, write: StaleWrite, after: tuple[JobState, int] | None
) -> None:
    store = store_of(queue)
    job = await queue.enqueue("default", "ocr", {}, max_attempts=5)
    first = await claim_one(store, "worker-a", lease_seconds=0.1)
    assert first.attempt == 1
    await rescue_when_expired(store, queue.config, job.id)
    second = await claim_one(store, "worker-b", lease_seconds=60)
    assert (second.id, second.attempt, second.worker_id) == (job.id, 2, "worker-b")

    # Worker A comes back from a long pause and reports, with the attempt it was claimed with.
    assert await write(store, job.id, 1) == set()
    assert await store.extend_leases([job.id], [1], "worker-a", 60) == {}
    unchanged = await queue.get_job(job.id)
    assert unchanged is not None
    assert unchanged.state is JobState.RUNNING
    assert unchanged.attempt == 2
    assert unchanged.worker_id == "worker-b"
    assert unchanged.lease_expires_at == second.lease_expires_at
    assert "from attempt 1" not in (unchanged.last_error or "")

    # Worker B's outcome lands.
    assert await write(store, job.id, 2) == {job.id}
    final = await queue.get_job(job.id)
    if after is None:
        assert final is None
        return
    assert final is not None
    assert (final.state, final.attempt) == after
    # ... once: writing it again changes nothing.
    assert await write(store, job.id, 2) == set()


async def test_outcome_for_a_job_that_is_not_running_is_ignored(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {})
    # attempt 0 matches the row, but it was never claimed: no outcome may land.
    assert await store_of(queue).complete_jobs([job.id], [0]) == set()
    assert await store_of(queue).fail_jobs([job.id], [0], ["x"]) == set()
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.state is JobState.AVAILABLE


async def test_batched_outcomes_report_only_the_jobs_they_changed(queue: Queue) -> None:
    ids = await queue.enqueue_many("default", "ocr", [{}, {}, {}])
    claimed = await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=3, worker_id="w", lease_seconds=60
    )
    assert {job.id for job in claimed} == set(ids)
    attempts = [1, 7, 1]  # the middle one is stale
    assert await store_of(queue).complete_jobs(ids, attempts) == {ids[0], ids[2]}
    middle = await queue.get_job(ids[1])
    assert middle is not None
    assert middle.state is JobState.RUNNING


async def test_extend_leases_pushes_the_lease_for_its_owner_only(queue: Queue) -> None:
    store = store_of(queue)
    job = await queue.enqueue("default", "ocr", {})
    claimed = await claim_one(store, "owner", lease_seconds=2)
    assert claimed.lease_expires_at is not None

    assert await store.extend_leases([job.id], [1], "someone-else", 600) == {}
    assert await store.extend_leases([job.id], [2], "owner", 600) == {}
    untouched = await queue.get_job(job.id)
    assert untouched is not None
    assert untouched.lease_expires_at == claimed.lease_expires_at

    assert await store.extend_leases([job.id], [1], "owner", 600) == {job.id: False}
    extended = await queue.get_job(job.id)
    assert extended is not None
    assert extended.lease_expires_at is not None
    assert extended.lease_expires_at > claimed.lease_expires_at + timedelta(seconds=500)
    assert extended.state is JobState.RUNNING
    assert extended.attempt == 1

    assert await store.complete_jobs([job.id], [1]) == {job.id}
    assert await store.extend_leases([job.id], [1], "owner", 600) == {}


async def test_heartbeat_keeps_a_long_job_from_being_reclaimed(
    make_config: Callable[..., Config],
) -> None:
    attempts: list[int] = []

    async def long_job(job: Job) -> None:
        attempts.append(job.attempt)
        await asyncio.sleep(3)  # three times the lease

    config = make_config(visibility_timeout=1.0, heartbeat_interval=0.2, rescue_interval=0.1)
    async with running_queue(config, {"ocr": long_job}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        completed = await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=15)
    assert attempts == [1]
    assert completed.attempt == 1
    assert completed.last_error is None


async def test_daemon_that_lost_its_lease_does_not_overwrite_the_new_owner(
    make_config: Callable[..., Config],
) -> None:
    started = asyncio.Event()
    gate = asyncio.Event()

    async def paused(job: Job) -> None:
        started.set()
        await gate.wait()

    # One worker, busy with the paused handler: the daemon cannot claim the rescued job itself
    # before the other worker does.
    async with running_queue(make_config(worker_count=1), {"ocr": paused}) as queue:
        supervisor = supervisor_of(queue)
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        # The daemon stalls past its lease (as after a long GC pause or network partition): the
        # job is rescued and claimed by another worker while the first handler still runs.
        await queue.pool.execute(
            "UPDATE docko_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
            job.id,
        )
        await rescue_when_expired(store_of(queue), queue.config, job.id)
        other = await store_of(queue).claim_jobs(
            queues=["default"], job_types=["ocr"], limit=1, worker_id="other", lease_seconds=60
        )
        assert [j.attempt for j in other] == [2]

        gate.set()
        await wait_until(lambda: supervisor.completer.totals.refused == 1, timeout=5)
        current = await queue.get_job(job.id)

    assert current is not None
    assert current.state is JobState.RUNNING
    assert current.attempt == 2
    assert current.worker_id == "other"
