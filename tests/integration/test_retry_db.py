"""An operator's retry of failed and cancelled jobs, one or in bulk, and each job's history of
errors: written where an attempt fails, kept across retries, bounded, untouched by success."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from docko_worker import Config, DockoError, Job, JobState, Queue
from docko_worker.store import JobStore
from tests.integration.operator_support import after_commit_of
from tests.integration.support import running_queue, store_of, wait_for_state

WORKER = "host:1:w"


async def claim(store: JobStore, count: int = 1, queue_name: str = "default") -> list[Job]:
    jobs = await store.claim_jobs(
        queues=[queue_name], job_types=["ocr"], limit=count, worker_id=WORKER, lease_seconds=60
    )
    assert len(jobs) == count
    return jobs


async def stored(queue: Queue, job_id: UUID) -> Job:
    job = await queue.get_job(job_id)
    assert job is not None
    return job


async def failed_job(queue: Queue, *, attempts: int = 2, dedupe_key: str | None = None) -> Job:
    """A job that failed every one of its ``attempts``."""
    job = await queue.enqueue("default", "ocr", {}, max_attempts=attempts, dedupe_key=dedupe_key)
    for attempt in range(1, attempts + 1):
        await claim(store_of(queue))
        if attempt < attempts:
            await store_of(queue).retry_jobs(
                [job.id], [attempt], [0.0], [f"Boom: attempt {attempt}"]
            )
        else:
            await store_of(queue).fail_jobs([job.id], [attempt], [f"Boom: attempt {attempt}"])
    return await stored(queue, job.id)


async def test_a_failed_job_runs_again_with_one_more_attempt_and_its_history(
    queue: Queue, notifications: asyncio.Queue[str]
) -> None:
    job = await failed_job(queue, attempts=2)
    assert (job.state, job.attempt, job.max_attempts) == (JobState.FAILED, 2, 2)
    while not notifications.empty():
        notifications.get_nowait()

    retried = await queue.retry(job.id)
    assert retried is not None
    assert (retried.state, retried.attempt, retried.max_attempts) == (JobState.AVAILABLE, 2, 3)
    assert retried.finished_at is None
    assert retried.run_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert retried.last_error == "Boom: attempt 2"
    assert [(e.attempt, e.error) for e in retried.errors] == [
        (1, "Boom: attempt 1"),
        (2, "Boom: attempt 2"),
    ]
    assert await asyncio.wait_for(notifications.get(), timeout=5) == "default"
    # The attempt keeps counting.
    (again,) = await claim(store_of(queue))
    assert again.attempt == 3


async def test_a_cancelled_job_runs_again_with_its_cancel_request_cleared(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    await queue.cancel(job.id, reason="oops")
    await store_of(queue).release_jobs([job.id], [1])
    assert (await stored(queue, job.id)).state is JobState.CANCELLED

    retried = await queue.retry(str(job.id))
    assert retried is not None
    assert retried.state is JobState.AVAILABLE
    assert (retried.cancel_requested_at, retried.cancel_reason) == (None, None)
    assert retried.max_attempts == 5  # attempts were left: none added
    (again,) = await claim(store_of(queue))
    assert await store_of(queue).complete_jobs([again.id], [again.attempt]) == {job.id}


@pytest.mark.parametrize("state", ["available", "running", "completed"])
async def test_a_job_in_another_state_is_returned_unchanged(queue: Queue, state: str) -> None:
    job = await queue.enqueue("default", "ocr", {})
    if state != "available":
        await claim(store_of(queue))
    if state == "completed":
        await store_of(queue).complete_jobs([job.id], [1])
    before = await stored(queue, job.id)
    assert await queue.retry(job.id) == before


async def test_no_such_job_is_none_and_a_malformed_id_is_a_docko_error(queue: Queue) -> None:
    assert await queue.retry(uuid4()) is None
    with pytest.raises(DockoError, match="not a job id"):
        await queue.retry("0190-not-a-uuid")


async def test_a_retry_whose_dedupe_key_is_held_names_the_holder_and_changes_nothing(
    queue: Queue,
) -> None:
    job = await failed_job(queue, attempts=1, dedupe_key="doc-7")
    holder = await queue.enqueue("default", "ocr", {}, dedupe_key="doc-7")
    assert holder.id != job.id
    with pytest.raises(DockoError, match=f"held by unfinished job {holder.id}"):
        await queue.retry(job.id)
    assert await stored(queue, job.id) == job
    # Once the holder is finished, the retry goes through.
    await queue.cancel(holder.id)
    retried = await queue.retry(job.id)
    assert retried is not None and retried.state is JobState.AVAILABLE


async def test_two_operators_retrying_one_job_at_once_change_it_once(
    queue: Queue, config: Config
) -> None:
    job = await failed_job(queue, attempts=1)
    async with await Queue.connect(config) as other:
        results = await asyncio.gather(*(q.retry(job.id) for q in (queue, other, queue, other)))
    assert all(result is not None and result.state is JobState.AVAILABLE for result in results)
    after = await stored(queue, job.id)
    assert (after.attempt, after.max_attempts) == (1, 2)
    assert len(await claim(store_of(queue))) == 1


async def test_retry_jobs_retries_the_matching_failed_jobs(queue: Queue) -> None:
    matching = [await failed_job(queue, attempts=1) for _ in range(3)]
    other_type = await queue.enqueue("default", "thumb", {}, max_attempts=1)
    await store_of(queue).claim_jobs(
        queues=["default"], job_types=["thumb"], limit=1, worker_id=WORKER, lease_seconds=60
    )
    await store_of(queue).fail_jobs([other_type.id], [1], ["x"])

    assert await queue.retry_jobs(job_type="ocr") == 3
    for job in matching:
        assert (await stored(queue, job.id)).state is JobState.AVAILABLE
    assert (await stored(queue, other_type.id)).state is JobState.FAILED
    assert await queue.retry_jobs(queue_name="no-such-queue") == 0


async def test_retry_jobs_of_cancelled_jobs(queue: Queue) -> None:
    ids = await queue.enqueue_many("default", "ocr", [{}, {}])
    for job_id in ids:
        await queue.cancel(job_id)
    assert await queue.retry_jobs() == 0
    assert await queue.retry_jobs(state="cancelled") == 2


@pytest.mark.parametrize("state", ["running", "available", "completed", "bogus"])
async def test_retry_jobs_refuses_a_state_that_cannot_be_retried(queue: Queue, state: str) -> None:
    with pytest.raises(DockoError, match=r"failed or cancelled|unknown job state"):
        await queue.retry_jobs(state=state)


async def test_retry_jobs_retries_one_of_two_failed_jobs_sharing_a_dedupe_key(
    queue: Queue,
) -> None:
    first = await failed_job(queue, attempts=1, dedupe_key="doc-9")
    second = await failed_job(queue, attempts=1, dedupe_key="doc-9")
    plain = await failed_job(queue, attempts=1)
    assert await queue.retry_jobs() == 2
    states = {(await stored(queue, j.id)).state for j in (first, second)}
    assert states == {JobState.AVAILABLE, JobState.FAILED}
    assert (await stored(queue, plain.id)).state is JobState.AVAILABLE


async def test_a_bulk_retry_racing_an_enqueue_of_the_same_key_loses_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await failed_job(queue, attempts=1, dedupe_key="doc-3")

    # An enqueue of the key, not yet committed, when the retry checks the key is free.
    async def enqueue_the_key(store: JobStore) -> None:
        await store.enqueue_job(
            queue_name="default",
            job_type="ocr",
            payload_json="{}",
            priority=0,
            max_attempts=5,
            run_at=None,
            delay=0.0,
            dedupe_key="doc-3",
        )

    assert await after_commit_of(db, enqueue_the_key, queue.retry_jobs()) == 0
    assert (await stored(queue, job.id)).state is JobState.FAILED


# The errors history


async def test_each_failed_attempt_joins_the_history_and_a_success_adds_nothing(
    make_config: Callable[..., Config],
) -> None:
    async def flaky(job: Job) -> None:
        if job.attempt < 3:
            raise ValueError(f"page {job.attempt} unreadable")

    async with running_queue(make_config(), {"ocr": flaky}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=5)
        done = await wait_for_state(queue, job.id, JobState.COMPLETED)
    assert [(e.attempt, e.error) for e in done.errors] == [
        (1, "ValueError: page 1 unreadable"),
        (2, "ValueError: page 2 unreadable"),
    ]
    assert done.errors[0].at <= done.errors[1].at <= datetime.now(UTC) + timedelta(seconds=5)
    assert all(e.at.tzinfo is not None for e in done.errors)


async def test_a_job_that_succeeds_first_time_has_no_history(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    await store_of(queue).complete_jobs([job.id], [1])
    assert (await stored(queue, job.id)).errors == []
    assert await db.fetchval("SELECT errors FROM docko_jobs WHERE id = $1", job.id) is None


async def test_the_history_keeps_the_last_twenty_and_cuts_long_errors(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=30)
    for attempt in range(1, 26):
        await claim(store_of(queue))
        error = f"attempt {attempt}: " + "x" * (5000 if attempt == 25 else 10)
        await store_of(queue).retry_jobs([job.id], [attempt], [0.0], [error])
    kept = (await stored(queue, job.id)).errors
    assert [e.attempt for e in kept] == list(range(6, 26))
    assert len(kept[-1].error) == 4000
    assert (await stored(queue, job.id)).last_error == "attempt 25: " + "x" * 5000
