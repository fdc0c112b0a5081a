"""Job headers: stored by every enqueue path, handed to the handler, refused before any write
when they are not a small mapping of strings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from docko_worker import Config, Job, PayloadError, Queue
from docko_worker.headers import MAX_HEADERS_BYTES
from tests.integration.support import count_jobs, running_queue

HEADERS = {"request-id": "req-42", "tenant": "acme é", "empty": ""}


async def stored_headers(db: asyncpg.Connection) -> list[Any]:
    return [row[0] for row in await db.fetch("SELECT headers::text FROM docko_jobs ORDER BY id")]


async def test_enqueue_stores_headers_and_returns_them_as_job_headers(queue: Queue) -> None:
    job = await queue.enqueue("documents", "ocr", {"n": 1}, headers=HEADERS)

    assert job.headers == HEADERS
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.headers == HEADERS


async def test_a_job_without_headers_has_none_stored_and_an_empty_mapping(
    queue: Queue, db: asyncpg.Connection
) -> None:
    job = await queue.enqueue("documents", "ocr", {}, headers={})

    assert job.headers == {}
    assert await stored_headers(db) == [None]


@pytest.mark.parametrize("due", ["now", "later"], ids=["copy", "insert"])
async def test_enqueue_many_gives_every_job_the_calls_headers(
    queue: Queue, db: asyncpg.Connection, due: str
) -> None:
    later = {} if due == "now" else {"run_at": datetime.now(UTC) + timedelta(days=30)}
    ids = await queue.enqueue_many(
        "documents", "ocr", [{"n": n} for n in range(300)], headers=HEADERS, **later
    )

    jobs = [await queue.get_job(job_id) for job_id in (ids[0], ids[-1])]
    assert [job.headers for job in jobs if job is not None] == [HEADERS, HEADERS]
    assert await count_jobs(queue) == 300


async def test_headers_go_in_on_the_callers_connection_and_transaction(
    queue: Queue, db: asyncpg.Connection
) -> None:
    async with db.transaction():
        job = await queue.enqueue("documents", "ocr", {}, conn=db, headers={"a": "1"})
        await queue.enqueue_many("documents", "ocr", [{}], conn=db, headers={"b": "2"})
    assert job.headers == {"a": "1"}
    assert sorted(await stored_headers(db)) == ['{"a":"1"}', '{"b":"2"}']


async def test_the_handler_reads_the_headers_it_was_enqueued_with(
    queue: Queue, config: Config
) -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(job: Job) -> None:
        seen.put_nowait(dict(job.headers))

    await queue.enqueue("default", "read", {}, headers=HEADERS)
    await queue.enqueue_many("default", "read", [{}], headers={"bulk": "yes"})
    async with running_queue(config, {"read": handler}):
        received = [await asyncio.wait_for(seen.get(), timeout=10) for _ in range(2)]
    assert sorted(received, key=len) == [{"bulk": "yes"}, HEADERS]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"n": 1}, "the value of 'n' must be a string"),
        ({1: "x"}, "a key must be a string"),
        ({"": "x"}, "a key must not be empty"),
        ({"k": "a\x00b"}, "must not contain a NUL"),
        ({"k": "\udce9"}, "not valid Unicode"),
        ({"k": "x" * MAX_HEADERS_BYTES}, f"more than {MAX_HEADERS_BYTES}"),
        (["k", "v"], "must be a mapping"),
    ],
    ids=["number", "key", "empty-key", "nul", "surrogate", "too-large", "list"],
)
async def test_bad_headers_are_refused_before_anything_is_written(
    queue: Queue, headers: Any, message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        await queue.enqueue("documents", "ocr", {}, headers=headers)
    with pytest.raises(PayloadError, match=message):
        await queue.enqueue_many("documents", "ocr", [{}, {}], headers=headers)
    assert await count_jobs(queue) == 0
