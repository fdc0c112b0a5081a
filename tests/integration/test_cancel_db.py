"""Cancelling jobs, decided in the database: an available job at once, a running one by request
(a control notification to its holder, then whichever outcome write or lease sweep comes next
ends it cancelled, except a completion, which stands), a finished one never; races between a
cancel and a claim or a completion each end one defined way."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from docko_worker import DockoError, Job, JobState, Queue
from docko_worker.maintenance import Rescuer
from docko_worker.store import JobStore
from tests.integration.operator_support import after_commit_of
from tests.integration.support import store_of

WORKER = "host:1:holder"


async def claim(store: JobStore, queue_name: str = "default", worker: str = WORKER) -> Job:
    jobs = await store.claim_jobs(
        queues=[queue_name], job_types=["ocr"], limit=1, worker_id=worker, lease_seconds=60
    )
    assert len(jobs) == 1
    return jobs[0]


async def stored(queue: Queue, job_id: UUID) -> Job:
    job = await queue.get_job(job_id)
    assert job is not None
    return job


async def next_notification(received: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(received.get(), timeout=5)


async def test_an_available_job_is_cancelled_at_once_and_never_runs(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {})
    cancelled = await queue.cancel(job.id)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.last_error == "Cancelled"
    assert cancelled.finished_at is not None
    assert cancelled.cancel_requested_at is not None
    assert (
        await store_of(queue).claim_jobs(
            queues=["default"], job_types=["ocr"], limit=10, worker_id=WORKER, lease_seconds=60
        )
        == []
    )
    assert (await stored(queue, job.id)).state is JobState.CANCELLED


async def test_a_scheduled_job_is_cancelled_with_its_reason(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {}, delay=3600)
    cancelled = await queue.cancel(str(job.id), reason="duplicate upload")
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.last_error == "Cancelled: duplicate upload"
    assert cancelled.cancel_reason == "duplicate upload"


async def test_a_running_job_is_asked_to_stop_and_its_holder_is_told(
    queue: Queue, control: asyncio.Queue[dict[str, Any]]
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    asked = await queue.cancel(job.id, reason='he said "stop"')
    assert asked is not None
    assert asked.state is JobState.RUNNING
    assert asked.cancel_requested_at is not None
    assert asked.cancel_reason == 'he said "stop"'
    assert asked.finished_at is None
    assert await next_notification(control) == {"cancel": str(job.id), "worker_id": WORKER}
    # The heartbeat sees the request too (the fallback when the notification is missed).
    assert await store_of(queue).extend_leases([job.id], [1], WORKER, 60) == {job.id: True}


async def test_a_second_cancel_keeps_the_first_request_and_tells_the_holder_again(
    queue: Queue, control: asyncio.Queue[dict[str, Any]]
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    first = await queue.cancel(job.id, reason="first")
    second = await queue.cancel(job.id, reason="second")
    assert first is not None and second is not None
    assert second.cancel_requested_at == first.cancel_requested_at
    assert second.cancel_reason == "first"
    assert [await next_notification(control) for _ in range(2)] == [
        {"cancel": str(job.id), "worker_id": WORKER}
    ] * 2


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_a_finished_job_is_returned_unchanged(queue: Queue, outcome: str) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    if outcome == "completed":
        await store_of(queue).complete_jobs([job.id], [1])
    else:
        await store_of(queue).fail_jobs([job.id], [1], ["ValueError: boom"])
    before = await stored(queue, job.id)
    after = await queue.cancel(job.id)
    assert after == before
    assert after is not None and after.cancel_requested_at is None


async def test_no_such_job_is_none_and_a_malformed_id_is_a_docko_error(queue: Queue) -> None:
    assert await queue.cancel(uuid4()) is None
    for bad in ("not-a-uuid", "", "1234", 42):
        with pytest.raises(DockoError, match="not a job id"):
            await queue.cancel(bad)  # type: ignore[arg-type]


async def test_a_cancelled_job_frees_its_dedupe_key(queue: Queue) -> None:
    first = await queue.enqueue("default", "ocr", {}, dedupe_key="doc-42")
    assert (await queue.enqueue("default", "ocr", {}, dedupe_key="doc-42")).id == first.id
    await queue.cancel(first.id)
    second = await queue.enqueue("default", "ocr", {}, dedupe_key="doc-42")
    assert second.id != first.id
    assert second.state is JobState.AVAILABLE


# The outcome writes of a job asked to stop (the daemon's side of the race, at the SQL level).


async def asked_to_stop(queue: Queue, reason: str | None = "operator") -> Job:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=5)
    await claim(store_of(queue))
    await queue.cancel(job.id, reason=reason)
    return job


async def test_a_retry_of_a_job_asked_to_stop_ends_it_cancelled(queue: Queue) -> None:
    job = await asked_to_stop(queue)
    assert await store_of(queue).retry_jobs([job.id], [1], [0.0], ["ValueError: boom"]) == {job.id}
    ended = await stored(queue, job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.last_error == "Cancelled: operator"
    assert ended.finished_at is not None
    assert ended.attempt == 1
    assert [(e.attempt, e.error) for e in ended.errors] == [(1, "ValueError: boom")]


async def test_a_failure_of_a_job_asked_to_stop_ends_it_cancelled(queue: Queue) -> None:
    job = await asked_to_stop(queue, reason=None)
    assert await store_of(queue).fail_jobs([job.id], [1], ["PermanentError: bad"]) == {job.id}
    ended = await stored(queue, job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.last_error == "Cancelled"
    assert [e.error for e in ended.errors] == ["PermanentError: bad"]


async def test_a_hand_back_of_a_job_asked_to_stop_ends_it_cancelled_its_attempt_spent(
    queue: Queue,
) -> None:
    job = await asked_to_stop(queue)
    assert await store_of(queue).release_jobs([job.id], [1]) == {job.id}
    ended = await stored(queue, job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.attempt == 1
    assert ended.last_error == "Cancelled: operator"


@pytest.mark.parametrize("delete", [False, True], ids=["kept", "deleted"])
async def test_a_completion_of_a_job_asked_to_stop_stands(queue: Queue, delete: bool) -> None:
    job = await asked_to_stop(queue)
    assert await store_of(queue).complete_jobs([job.id], [1], delete=delete) == {job.id}
    ended = await queue.get_job(job.id)
    if delete:
        assert ended is None
        return
    assert ended is not None
    assert ended.state is JobState.COMPLETED
    assert ended.errors == []


async def test_the_daemon_ends_a_handler_it_cancelled_on_request(queue: Queue) -> None:
    job = await asked_to_stop(queue)
    # A stale attempt changes nothing, as for every outcome write.
    assert await store_of(queue).cancel_running_jobs([job.id], [2], [None]) == set()
    assert await store_of(queue).cancel_running_jobs([job.id], [1], [None]) == {job.id}
    ended = await stored(queue, job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.last_error == "Cancelled: operator"
    assert ended.finished_at is not None
    assert ended.errors == []
    assert await store_of(queue).cancel_running_jobs([job.id], [1], [None]) == set()


async def test_a_cancelled_handler_may_leave_its_error_in_the_history(queue: Queue) -> None:
    job = await asked_to_stop(queue)
    await store_of(queue).cancel_running_jobs(
        [job.id], [1], ["CancelledError: cancelled on request"]
    )
    ended = await stored(queue, job.id)
    assert [e.error for e in ended.errors] == ["CancelledError: cancelled on request"]


async def test_a_job_asked_to_stop_whose_daemon_died_ends_cancelled_at_lease_expiry(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await asked_to_stop(queue)
    other = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue), worker="host:2:other")
    await db.execute("UPDATE docko_jobs SET lease_expires_at = now() - interval '1 second'")
    rescued = {row["id"]: row["state"] for row in await store_of(queue).rescue_expired_jobs(10)}
    assert rescued == {job.id: "cancelled", other.id: "available"}
    ended = await stored(queue, job.id)
    assert ended.state is JobState.CANCELLED
    assert ended.last_error == "Cancelled: operator"
    assert ended.finished_at is not None
    assert [e.error for e in ended.errors] == [
        f"LeaseExpired: the lease of worker {WORKER} expired during attempt 1"
    ]


# Races: each side waits for the other's row lock, and sees its committed result.


async def test_a_cancel_waiting_on_a_claim_asks_the_new_holder_to_stop(
    queue: Queue, db: asyncpg.Connection, control: asyncio.Queue[dict[str, Any]]
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    asked = await after_commit_of(
        db, lambda store: claim(store, worker="host:3:late"), queue.cancel(job.id)
    )
    assert asked is not None
    assert (asked.state, asked.worker_id) == (JobState.RUNNING, "host:3:late")
    assert await next_notification(control) == {"cancel": str(job.id), "worker_id": "host:3:late"}


async def test_a_cancel_waiting_on_a_completion_leaves_the_job_completed(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    after = await after_commit_of(
        db, lambda store: store.complete_jobs([job.id], [1]), queue.cancel(job.id)
    )
    assert after is not None
    assert after.state is JobState.COMPLETED
    assert after.cancel_requested_at is None


async def test_a_completion_waiting_on_a_cancel_request_still_completes(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    completing = store_of(queue).complete_jobs([job.id], [1])
    assert await after_commit_of(db, lambda store: store.cancel_jobs([job.id], "late"), completing)
    assert (await stored(queue, job.id)).state is JobState.COMPLETED


async def test_a_retry_write_waiting_on_a_cancel_request_ends_the_job_cancelled(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await queue.enqueue("default", "ocr", {})
    await claim(store_of(queue))
    retrying = store_of(queue).retry_jobs([job.id], [1], [0.0], ["boom"])
    assert await after_commit_of(db, lambda store: store.cancel_jobs([job.id], "late"), retrying)
    assert (await stored(queue, job.id)).state is JobState.CANCELLED


# Bulk


async def test_cancel_jobs_cancels_the_matching_available_and_running_jobs(
    queue: Queue, control: asyncio.Queue[dict[str, Any]]
) -> None:
    waiting = await queue.enqueue_many("default", "ocr", [{}, {}, {}])
    running = await queue.enqueue("default", "ocr", {}, priority=-1)
    await claim(store_of(queue))
    other_type = await queue.enqueue("default", "thumb", {})
    other_queue = await queue.enqueue("emails", "ocr", {})
    done = await queue.enqueue("default", "ocr", {}, priority=-2)
    await claim(store_of(queue))
    await store_of(queue).complete_jobs([done.id], [1])

    assert await queue.cancel_jobs(queue_name="default", job_type="ocr", reason="incident") == 4
    for job_id in waiting:
        assert (await stored(queue, job_id)).last_error == "Cancelled: incident"
    assert (await stored(queue, running.id)).cancel_reason == "incident"
    assert await next_notification(control) == {"cancel": str(running.id), "worker_id": WORKER}
    for untouched in (other_type.id, other_queue.id):
        assert (await stored(queue, untouched)).state is JobState.AVAILABLE
    assert (await stored(queue, done.id)).state is JobState.COMPLETED
    assert await queue.cancel_jobs(queue_name="nothing-here") == 0


async def test_cancel_jobs_works_through_more_jobs_than_a_page(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("docko_worker.operations.BULK_BATCH", 7)
    await queue.enqueue_many("default", "ocr", [{}] * 30)
    assert await queue.cancel_jobs() == 30
    assert await queue.list_jobs(state="available") == []


async def test_the_rescuer_counts_a_job_it_ended_cancelled_as_cancelled(
    queue: Queue, db: asyncpg.Connection
) -> None:
    await asked_to_stop(queue)
    await db.execute("UPDATE docko_jobs SET lease_expires_at = now() - interval '1 second'")
    result = await Rescuer(store_of(queue), queue.config).run_once()
    assert (result.cancelled, result.made_available, result.failed) == (1, 0, 0)
