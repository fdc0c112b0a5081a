"""Bulk enqueue: the COPY path for jobs due now, the INSERT path for the rest, one NOTIFY each."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from docko_worker import JobState, PayloadError, Queue
from docko_worker.copy_format import ROWS_PER_MESSAGE
from tests.integration.support import store_of
from tests.integration.test_enqueue_db import next_notification, send_marker


async def test_jobs_due_now_are_copied_in_with_one_notification(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    payloads = [{"n": n, "name": f"scan-{n}.pdf", "text": "naïve café"} for n in range(2000)]
    ids = await queue.enqueue_many("documents", "ocr", payloads, priority=3, max_attempts=2)

    assert len(set(ids)) == 2000
    assert ids == sorted(ids, key=lambda job_id: job_id.int >> 80)  # time-ordered ids
    assert await next_notification(notifications) == "documents"
    await send_marker(db, "end")
    assert await next_notification(notifications) == "end"  # one NOTIFY, not one per job

    first, last = await queue.get_job(ids[0]), await queue.get_job(ids[-1])
    assert first is not None and last is not None
    assert first.payload == payloads[0] and last.payload == payloads[-1]
    assert (first.state, first.priority, first.max_attempts, first.attempt) == (
        JobState.AVAILABLE,
        3,
        2,
        0,
    )
    assert first.run_at <= datetime.now(UTC)


async def test_a_bulk_enqueue_cancelled_mid_copy_writes_nothing(
    queue: Queue, db: asyncpg.Connection
) -> None:
    payloads = [{"n": n, "text": "x" * 200} for n in range(300_000)]
    enqueue = asyncio.create_task(queue.enqueue_many("documents", "ocr", payloads))
    copying = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%docko_jobs%'"
    async with asyncio.timeout(30):
        while not await db.fetchval(copying):
            assert not enqueue.done()
            await asyncio.sleep(0.005)
    enqueue.cancel()

    with pytest.raises(asyncio.CancelledError):
        await enqueue
    assert await db.fetchval("SELECT count(*) FROM docko_jobs") == 0
    # The pool's connection came back usable.
    assert len(await queue.enqueue_many("documents", "ocr", [{"n": 1}])) == 1


async def test_a_bulk_enqueue_in_a_callers_transaction_is_copied_and_notified_at_commit(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    payloads = [{"n": n} for n in range(ROWS_PER_MESSAGE * 2 + 1)]
    async with queue.pool.acquire() as conn, conn.transaction():
        ids = await queue.enqueue_many("documents", "ocr", payloads, conn=conn)
        assert await db.fetchval("SELECT count(*) FROM docko_jobs") == 0  # not committed yet
        await send_marker(db, "before-commit")
        assert await next_notification(notifications) == "before-commit"
    assert await next_notification(notifications) == "documents"
    rows = await db.fetch("SELECT id, payload::text AS payload FROM docko_jobs")
    assert {row["id"]: json.loads(row["payload"]) for row in rows} == dict(
        zip(ids, payloads, strict=True)
    )


async def test_a_bad_payload_leaves_the_callers_transaction_usable(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    payloads: list[object] = [{"n": n} for n in range(ROWS_PER_MESSAGE * 2)]
    payloads[-1] = {"not json": {1, 2}}
    async with queue.pool.acquire() as conn, conn.transaction():
        kept = await queue.enqueue("documents", "ocr", {"kept": True}, conn=conn)
        with pytest.raises(PayloadError):
            await queue.enqueue_many("documents", "ocr", payloads, conn=conn)
        after = await queue.enqueue_many("documents", "ocr", [{"after": True}], conn=conn)

    rows = await db.fetch("SELECT id FROM docko_jobs")
    assert {row["id"] for row in rows} == {kept.id, *after}


async def test_a_bulk_enqueue_on_a_connection_outside_a_transaction_is_all_or_nothing(
    queue: Queue, db: asyncpg.Connection, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(PayloadError):
            await queue.enqueue_many("documents", "ocr", [{"n": 1}, {1, 2}], conn=conn)
        assert await db.fetchval("SELECT count(*) FROM docko_jobs") == 0
        assert not conn.is_in_transaction()
        ids = await queue.enqueue_many("documents", "ocr", [{"n": 1}, {"n": 2}], conn=conn)
    finally:
        await conn.close()
    assert await db.fetchval("SELECT count(*) FROM docko_jobs") == len(ids) == 2


async def test_a_bulk_enqueue_on_a_pool_passed_as_conn(
    queue: Queue, db: asyncpg.Connection, database_url: str
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        ids = await queue.enqueue_many("documents", "ocr", [{"n": 1}, {"n": 2}], conn=pool)
    finally:
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM docko_jobs") == len(ids) == 2


async def test_copied_jobs_keep_non_ascii_names_and_a_negative_priority(
    queue: Queue, db: asyncpg.Connection
) -> None:
    ids = await queue.enqueue_many("dokumente-ü", "ocr-é", [{"n": 1}], priority=-5)

    row = await db.fetchrow(
        "SELECT queue_name, job_type, priority, state::text AS state FROM docko_jobs WHERE id = $1",
        ids[0],
    )
    assert dict(row) == {
        "queue_name": "dokumente-ü",
        "job_type": "ocr-é",
        "priority": -5,
        "state": "available",
    }


async def test_deferred_bulk_jobs_are_not_due_yet(queue: Queue) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = await queue.enqueue_many("documents", "ocr", [{"n": 1}, {"n": 2}], run_at=later)
    delayed = await queue.enqueue_many("documents", "ocr", [{"n": 3}], delay=600)

    jobs = [await queue.get_job(job_id) for job_id in [*ids, *delayed]]
    assert all(job is not None and job.run_at > datetime.now(UTC) for job in jobs)
    claimed = await store_of(queue).claim_jobs(
        queues=["documents"], job_types=["ocr"], limit=10, worker_id="w", lease_seconds=60
    )
    assert claimed == []


async def test_a_call_of_several_copy_messages_keeps_every_payload_with_its_id(
    queue: Queue, db: asyncpg.Connection
) -> None:
    count = ROWS_PER_MESSAGE * 2 + 37
    payloads = [{"n": n} for n in range(count)]
    ids = await queue.enqueue_many("documents", "ocr", payloads)

    rows = await db.fetch("SELECT id, payload::text AS payload FROM docko_jobs")
    stored = {row["id"]: json.loads(row["payload"]) for row in rows}
    assert len(ids) == len(set(ids)) == count
    assert [stored[job_id] for job_id in ids] == payloads


async def test_a_bad_payload_in_a_late_copy_message_writes_nothing(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    payloads: list[object] = [{"n": n} for n in range(ROWS_PER_MESSAGE * 3)]
    payloads[ROWS_PER_MESSAGE * 2 + 5] = {"not json": {1, 2}}

    with pytest.raises(PayloadError):
        await queue.enqueue_many("documents", "ocr", payloads)

    assert await db.fetchval("SELECT count(*) FROM docko_jobs") == 0
    await send_marker(db, "end")
    assert await next_notification(notifications) == "end"  # no NOTIFY for a rolled-back call
    # The pool's connection came back usable.
    assert len(await queue.enqueue_many("documents", "ocr", [{"n": 1}, {"n": 2}])) == 2
