"""Listing jobs (filters, newest first, keyset pages), the per-queue overview, and pausing a
queue: no claim takes its jobs while paused, the flag is stored, and the daemons are told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from docko_worker import Config, DockoError, Job, JobState, Queue, QueueInfo
from docko_worker.store import JobStore
from tests.integration.support import running_queue, store_of, wait_for_state

WORKER = "host:1:w"


async def claim(store: JobStore, queue_name: str, job_type: str = "ocr", n: int = 1) -> list[Job]:
    return await store.claim_jobs(
        queues=[queue_name], job_types=[job_type], limit=n, worker_id=WORKER, lease_seconds=60
    )


# Listing


async def next_millisecond() -> None:
    """Ids order jobs by the millisecond they were made in; within one, as they fall."""
    await asyncio.sleep(0.002)


async def test_jobs_are_listed_newest_first_whichever_way_they_were_enqueued(
    queue: Queue,
) -> None:
    first = await queue.enqueue("default", "ocr", {"n": 1})
    await next_millisecond()
    bulk = await queue.enqueue_many("default", "ocr", [{"n": 2}, {"n": 3}])
    await next_millisecond()
    delayed = await queue.enqueue_many("default", "ocr", [{"n": 4}], delay=60)
    await next_millisecond()
    last = await queue.enqueue("default", "ocr", {"n": 5})
    listed = await queue.list_jobs()
    assert [job.id for job in listed] == [last.id, *delayed, *reversed(bulk), first.id]
    assert [job.id.version for job in listed] == [7] * 5


async def test_pages_follow_one_another_without_gaps_or_repeats(queue: Queue) -> None:
    ids = await queue.enqueue_many("default", "ocr", [{}] * 23)
    seen: list[Job] = []
    before = None
    while True:
        page = await queue.list_jobs(limit=5, before=before)
        seen.extend(page)
        if len(page) < 5:
            break
        before = page[-1].id
    assert [job.id for job in seen] == list(reversed(ids))
    assert await queue.list_jobs(before=str(ids[0])) == []


async def test_filters_select_by_queue_type_and_state(queue: Queue) -> None:
    ocr = await queue.enqueue("documents", "ocr", {})
    await next_millisecond()
    thumb = await queue.enqueue("documents", "thumb", {})
    mail = await queue.enqueue("emails", "ocr", {})
    (running,) = await claim(store_of(queue), "emails")
    await next_millisecond()
    cancelled = await queue.enqueue("documents", "ocr", {})
    await queue.cancel(cancelled.id)

    def ids(jobs: list[Job]) -> list[str]:
        return [str(job.id) for job in jobs]

    assert ids(await queue.list_jobs(queue_name="documents")) == ids([cancelled, thumb, ocr])
    assert ids(await queue.list_jobs(job_type="ocr", queue_name="documents")) == ids(
        [cancelled, ocr]
    )
    assert ids(await queue.list_jobs(state="running")) == ids([mail]) == ids([running])
    assert ids(await queue.list_jobs(state=JobState.CANCELLED)) == ids([cancelled])
    assert await queue.list_jobs(state="failed") == []
    assert await queue.list_jobs(queue_name='it\'s "quoted"') == []


async def test_bad_list_arguments_are_docko_errors(queue: Queue) -> None:
    with pytest.raises(DockoError, match="unknown job state 'exploded': expected one of"):
        await queue.list_jobs(state="exploded")
    with pytest.raises(DockoError, match="not a job id"):
        await queue.list_jobs(before="page-2")
    for limit in (0, -1, 10_001):
        with pytest.raises(DockoError, match="limit"):
            await queue.list_jobs(limit=limit)
    with pytest.raises(DockoError, match="NUL"):
        await queue.list_jobs(queue_name="a\x00b")


async def test_the_list_works_on_the_daemon_s_generic_plan_pool(config: Config) -> None:
    """The daemon's pool plans generically; the list still plans for its arguments."""
    from docko_worker.pool import create_pool

    pool = await create_pool(config, generic_plans=True)
    try:
        queue = Queue(pool, config)
        await queue.enqueue("default", "ocr", {})
        for _ in range(8):  # past the point where PostgreSQL may switch to a generic plan
            assert len(await queue.list_jobs(state="available")) == 1
            assert await queue.list_jobs(state="failed") == []
    finally:
        await pool.close()


# The overview


async def test_queues_counts_lag_and_paused(queue: Queue, db: asyncpg.Connection) -> None:
    await queue.enqueue_many("documents", "ocr", [{}, {}, {}])
    await db.execute("UPDATE docko_jobs SET run_at = now() - interval '90 seconds'")
    await claim(store_of(queue), "documents")
    failing = await queue.enqueue("documents", "ocr", {}, max_attempts=1, priority=-1)
    await claim(store_of(queue), "documents")
    await store_of(queue).fail_jobs([failing.id], [1], ["boom"])
    await queue.enqueue("scheduled", "ocr", {}, delay=3600)
    await queue.pause("never-used")

    infos = {info.name: info for info in await queue.queues()}
    assert sorted(infos) == ["documents", "never-used", "scheduled"]
    documents = infos["documents"]
    assert documents.counts == {"available": 2, "running": 1, "failed": 1, "cancelled": 0}
    assert documents.paused is False
    assert documents.oldest_available_age is not None
    assert 90 <= documents.oldest_available_age < 3600
    assert infos["scheduled"].oldest_available_age is None  # nothing due yet
    assert infos["scheduled"].counts["available"] == 1
    assert infos["never-used"] == QueueInfo(
        "never-used", True, {"available": 0, "running": 0, "failed": 0, "cancelled": 0}, None
    )


async def test_a_queue_served_by_a_daemon_is_listed_once_its_jobs_completed(
    queue: Queue,
) -> None:
    job = await queue.enqueue("archive", "ocr", {})
    await store_of(queue).register_queues(["archive", "archive", "idle"])
    await claim(store_of(queue), "archive")
    await store_of(queue).complete_jobs([job.id], [1])
    infos = {info.name: info for info in await queue.queues()}
    assert sorted(infos) == ["archive", "idle"]
    assert not any(infos["archive"].counts.values())


# Pause and resume


async def test_a_paused_queue_is_not_claimed_from_and_others_are(
    queue: Queue, control: asyncio.Queue[dict[str, Any]]
) -> None:
    held = await queue.enqueue("documents", "ocr", {})
    free = await queue.enqueue("emails", "ocr", {})
    await queue.pause("documents")
    assert await asyncio.wait_for(control.get(), timeout=5) == {"pause": "documents"}
    claimed = await store_of(queue).claim_jobs(
        queues=["documents", "emails"],
        job_types=["ocr"],
        limit=10,
        worker_id=WORKER,
        lease_seconds=60,
    )
    assert [job.id for job in claimed] == [free.id]

    await queue.resume("documents")
    assert await asyncio.wait_for(control.get(), timeout=5) == {"resume": "documents"}
    assert [job.id for job in await claim(store_of(queue), "documents")] == [held.id]


async def test_the_pause_is_stored_and_outlives_the_queue_that_set_it(config: Config) -> None:
    async with await Queue.connect(config) as operator:
        await operator.pause("documents")
        await operator.pause("documents")  # twice: still one paused queue
    async with await Queue.connect(config) as later:
        assert [(i.name, i.paused) for i in await later.queues()] == [("documents", True)]
        await later.resume("documents")
        await later.resume("never-paused")  # changes nothing, creates nothing
        assert [(i.name, i.paused) for i in await later.queues()] == [("documents", False)]


@pytest.mark.parametrize("name", ['it\'s "quoted"', "x" * 500, "ünï cödé ✓", "a\\b\nc"])
async def test_any_queue_name_pauses_and_is_told_exactly(
    queue: Queue, control: asyncio.Queue[dict[str, Any]], name: str
) -> None:
    await queue.pause(name)
    assert await asyncio.wait_for(control.get(), timeout=5) == {"pause": name}
    assert [(i.name, i.paused) for i in await queue.queues()] == [(name, True)]


@pytest.mark.parametrize("name", ["", "a\x00b", 7])
async def test_a_queue_name_that_cannot_be_stored_is_a_docko_error(
    queue: Queue, name: object
) -> None:
    with pytest.raises(DockoError, match="queue_name"):
        await queue.pause(name)  # type: ignore[arg-type]
    with pytest.raises(DockoError, match="queue_name"):
        await queue.resume(name)  # type: ignore[arg-type]


async def test_a_daemon_leaves_a_paused_queue_s_jobs_and_runs_them_once_resumed(
    make_config: Callable[..., Config], config: Config
) -> None:
    ran: list[str] = []

    async def record(job: Job) -> None:
        ran.append(job.queue_name)

    async with await Queue.connect(config) as operator:
        await operator.pause("documents")
        async with running_queue(
            make_config(), {"ocr": record}, queues=["documents", "emails"]
        ) as queue:
            held = await queue.enqueue("documents", "ocr", {})
            free = await queue.enqueue("emails", "ocr", {})
            await wait_for_state(queue, free.id, JobState.COMPLETED)
            assert (await operator.get_job(held.id)).state is JobState.AVAILABLE  # type: ignore[union-attr]
            await operator.resume("documents")
            await wait_for_state(queue, held.id, JobState.COMPLETED)
    assert sorted(ran) == ["documents", "emails"]
