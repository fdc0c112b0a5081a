"""Producing jobs: transactional enqueue (and its NOTIFY), validation before any write, dedupe,
``enqueue_many``, payload round trips through jsonb, and ``job_counts``."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from docko_worker import DockoError, JobState, PayloadError, Queue
from docko_worker.store import NOTIFY_CHANNEL
from docko_worker.supervisor import parse_wake_payload
from tests.integration.support import count_jobs, store_of

NOTIFY_WAIT = 5.0


class Rollback(Exception):
    pass


async def next_notification(notifications: asyncio.Queue[str]) -> str:
    """The queue the next jobs-channel notification wakes (or a marker's text)."""
    return parse_wake_payload(await asyncio.wait_for(notifications.get(), NOTIFY_WAIT)).queue


async def send_marker(db: asyncpg.Connection, marker: str) -> None:
    """A NOTIFY of our own: once it arrives, every earlier notification has arrived too."""
    await db.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, marker)


async def test_enqueue_inside_a_committed_transaction(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    async with queue.pool.acquire() as conn, conn.transaction():
        job = await queue.enqueue("documents", "ocr", {"document_id": 7}, conn=conn)
        # Not visible, and nobody woken, before the producer commits.
        assert await queue.get_job(job.id) is None
        await send_marker(db, "before-commit")
        assert await next_notification(notifications) == "before-commit"
    assert await next_notification(notifications) == "documents"
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.state is JobState.AVAILABLE
    assert stored.payload == {"document_id": 7}


async def test_enqueue_inside_a_rolled_back_transaction_leaves_nothing(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    with pytest.raises(Rollback):
        async with queue.pool.acquire() as conn, conn.transaction():
            job = await queue.enqueue("documents", "ocr", {"document_id": 7}, conn=conn)
            many = await queue.enqueue_many("documents", "ocr", [{}, {}], conn=conn)
            assert len(many) == 2
            raise Rollback
    assert await queue.get_job(job.id) is None
    assert await count_jobs(queue) == 0
    await send_marker(db, "after-rollback")
    assert await next_notification(notifications) == "after-rollback"


async def test_enqueue_on_a_connection_with_its_own_json_codec(
    queue: Queue, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for type_name in ("json", "jsonb"):
            await conn.set_type_codec(
                type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
        async with conn.transaction():
            job = await queue.enqueue("default", "ocr", {"document_id": 9}, conn=conn)
            again = await queue.enqueue("default", "ocr", {}, conn=conn, dedupe_key="k")
            same = await queue.enqueue("default", "ocr", {}, conn=conn, dedupe_key="k")
            ids = await queue.enqueue_many("default", "ocr", [{"n": 1}, {"n": 2}], conn=conn)
    finally:
        await conn.close()
    assert job.payload == {"document_id": 9}
    assert same.id == again.id
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.payload == {"document_id": 9}
    payloads = [await queue.get_job(job_id) for job_id in ids]
    assert [p.payload if p else None for p in payloads] == [{"n": 1}, {"n": 2}]


async def test_enqueue_notifies_the_queue_name(
    queue: Queue, notifications: asyncio.Queue[str]
) -> None:
    await queue.enqueue("thumbnails", "thumbnail", {})
    assert await next_notification(notifications) == "thumbnails"


async def test_non_json_payload_raises_and_writes_nothing(
    queue: Queue, db: asyncpg.Connection, notifications: asyncio.Queue[str]
) -> None:
    for payload in [{"tags": {"a", "b"}}, object(), float("nan"), {"text": "lone \ud800 half"}]:
        with pytest.raises(PayloadError):
            await queue.enqueue("default", "ocr", payload)
        with pytest.raises(PayloadError):
            await queue.enqueue_many("default", "ocr", [{"ok": 1}, payload, {"ok": 2}])
    assert await count_jobs(queue) == 0
    await send_marker(db, "nothing-before-me")
    assert await next_notification(notifications) == "nothing-before-me"


INVALID_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"queue_name": ""}, "queue_name"),
    ({"job_type": ""}, "job_type"),
    ({"queue_name": "nul\x00"}, "queue_name"),
    ({"dedupe_key": ""}, "dedupe_key"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"delay": -1}, "delay"),
    ({"delay": float("inf")}, "delay"),
    ({"run_at": datetime(2030, 1, 1)}, "timezone"),  # a naive datetime
]


async def test_invalid_arguments_raise_and_write_nothing(queue: Queue) -> None:
    for override, message in INVALID_ARGUMENTS:
        arguments: dict[str, Any] = {"queue_name": "default", "job_type": "ocr", "payload": {}}
        arguments.update(override)
        with pytest.raises(DockoError, match=message):
            await queue.enqueue(**arguments)
    assert await count_jobs(queue) == 0


async def test_enqueued_job_fields(queue: Queue) -> None:
    job = await queue.enqueue("documents", "ocr", {"document_id": 1}, priority=3)
    assert job.queue_name == "documents"
    assert job.job_type == "ocr"
    assert job.payload == {"document_id": 1}
    assert job.state is JobState.AVAILABLE
    assert job.attempt == 0
    assert job.max_attempts == queue.config.max_attempts
    assert job.priority == 3
    assert job.run_at >= job.created_at
    assert job.worker_id is None
    assert job.last_error is None
    assert job.finished_at is None
    assert await queue.get_job(job.id) == job
    assert await queue.get_job(str(job.id)) == job


async def test_get_job_of_an_unknown_id_is_none(queue: Queue) -> None:
    assert await queue.get_job("00000000-0000-0000-0000-000000000000") is None


async def test_max_attempts_per_job(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {}, max_attempts=9)
    assert job.max_attempts == 9


async def test_dedupe_key_returns_the_unfinished_job(queue: Queue) -> None:
    first = await queue.enqueue("default", "ocr", {"n": 1}, dedupe_key="doc-1")
    again = await queue.enqueue("default", "ocr", {"n": 2}, dedupe_key="doc-1")
    assert again.id == first.id
    assert again.payload == {"n": 1}
    other = await queue.enqueue("default", "ocr", {"n": 3}, dedupe_key="doc-2")
    assert other.id != first.id
    assert await count_jobs(queue) == 2

    # Still deduplicated while the first job runs ...
    [claimed] = await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=1, worker_id="w", lease_seconds=60
    )
    assert claimed.id == first.id
    while_running = await queue.enqueue("default", "ocr", {"n": 4}, dedupe_key="doc-1")
    assert while_running.id == first.id
    assert while_running.state is JobState.RUNNING

    # ... but once it has finished, the key is free again.
    assert await store_of(queue).complete_jobs([first.id], [1]) == {first.id}
    after = await queue.enqueue("default", "ocr", {"n": 5}, dedupe_key="doc-1")
    assert after.id != first.id
    assert after.state is JobState.AVAILABLE
    assert after.payload == {"n": 5}
    assert await count_jobs(queue, dedupe_key="doc-1") == 2


async def test_concurrent_enqueues_with_one_dedupe_key_make_one_job(
    queue: Queue, database_url: str
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=8, max_size=8)
    try:

        async def enqueue_on_own_connection(n: int) -> UUID:
            async with pool.acquire() as conn, conn.transaction():
                job = await queue.enqueue("default", "ocr", {"n": n}, dedupe_key="doc", conn=conn)
                return job.id

        ids = await asyncio.gather(*(enqueue_on_own_connection(n) for n in range(16)))
    finally:
        await pool.close()
    assert len(set(ids)) == 1
    assert await count_jobs(queue) == 1


async def test_dedupe_inside_a_transaction(queue: Queue) -> None:
    async with queue.pool.acquire() as conn, conn.transaction():
        first = await queue.enqueue("default", "ocr", {}, dedupe_key="k", conn=conn)
        again = await queue.enqueue("default", "ocr", {}, dedupe_key="k", conn=conn)
    assert again.id == first.id
    assert await count_jobs(queue) == 1


async def test_enqueue_many_returns_ids_in_order_with_payloads_intact(queue: Queue) -> None:
    payloads = [{"n": n, "label": f"doc {n}", "pages": list(range(n % 4))} for n in range(300)]
    ids = await queue.enqueue_many("documents", "ocr", payloads, priority=2, max_attempts=4)
    assert len(ids) == len(payloads)
    assert len(set(ids)) == len(ids)
    for job_id, payload in zip(ids, payloads, strict=True):
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.payload == payload
        assert job.state is JobState.AVAILABLE
        assert job.priority == 2
        assert job.max_attempts == 4
        assert job.queue_name == "documents"
    assert await count_jobs(queue) == len(payloads)


async def test_enqueue_many_of_nothing_writes_nothing(queue: Queue) -> None:
    assert await queue.enqueue_many("default", "ocr", []) == []
    assert await count_jobs(queue) == 0


async def test_enqueue_many_with_delay_is_not_due_yet(queue: Queue) -> None:
    ids = await queue.enqueue_many("default", "ocr", [{}, {}], delay=timedelta(hours=1))
    claimed = await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=10, worker_id="w", lease_seconds=60
    )
    assert claimed == []
    for job_id in ids:
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.run_at > job.created_at + timedelta(minutes=59)


ROUND_TRIP_PAYLOADS: list[Any] = [
    {"document_id": 42},
    {"unicode": "Grüße, 文字, emoji \U0001f600", "rtl": "שלום"},
    {"backslash_u0000_text": "C:\\u0000\\new", "escapes": 'quote " \\ \n \t'},
    {"big": 2**53 + 1, "small": -(2**40), "float": 0.1, "tiny": 1.5e-7},
    {"nested": [[[[{"deep": [None, True, False]}]]]]},
    ["a", 1, None],
    "plain string",
    12,
    None,
]


async def test_payloads_round_trip_through_the_database(queue: Queue) -> None:
    for payload in ROUND_TRIP_PAYLOADS:
        job = await queue.enqueue("default", "ocr", payload)
        stored = await queue.get_job(job.id)
        assert stored is not None
        assert stored.payload == payload
        [claimed] = await store_of(queue).claim_jobs(
            queues=["default"], job_types=["ocr"], limit=1, worker_id="w", lease_seconds=60
        )
        assert claimed.id == job.id
        assert claimed.payload == payload
    ids = await queue.enqueue_many("default", "ocr", ROUND_TRIP_PAYLOADS)
    for job_id, payload in zip(ids, ROUND_TRIP_PAYLOADS, strict=True):
        stored = await queue.get_job(job_id)
        assert stored is not None
        assert stored.payload == payload


async def test_job_counts_by_queue_type_and_state(queue: Queue) -> None:
    assert await queue.job_counts() == []
    await queue.enqueue_many("documents", "ocr", [{}, {}, {}])
    await queue.enqueue("documents", "thumbnail", {})
    await queue.enqueue("mail", "send", {})
    [claimed] = await store_of(queue).claim_jobs(
        queues=["mail"], job_types=["send"], limit=1, worker_id="w", lease_seconds=60
    )
    await store_of(queue).complete_jobs([claimed.id], [claimed.attempt])
    await store_of(queue).claim_jobs(
        queues=["documents"], job_types=["ocr"], limit=1, worker_id="w", lease_seconds=60
    )
    assert await queue.job_counts() == [
        ("documents", "ocr", "available", 2),
        ("documents", "ocr", "running", 1),
        ("documents", "thumbnail", "available", 1),
        ("mail", "send", "completed", 1),
    ]
