"""Producers on the caller's connection, for every driver, through each library's own transaction
API: a commit gives the job and wakes an idle daemon; a rollback gives neither; 10,000 jobs in
one bulk call; and transactional completion, whose writes commit with the job's ``completed`` or
not at all."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import pytest

from docko_worker import Config, DockoError, Job, JobState, LeaseLost, PayloadError, Queue
from docko_worker.store import NOTIFY_CHANNEL
from tests.integration.producer_drivers import (
    DRIVERS,
    SIDE_EFFECT,
    SIDE_EFFECTS,
    Driver,
    Rollback,
    call,
    caught,
)
from tests.integration.support import count_jobs, running_queue, store_of, supervisor_of, wait_until

# Idle daemons poll this rarely, so a job that starts before it was woken by its NOTIFY.
SLOW_POLL = 60.0
NOTIFY_WAIT = 10.0
BULK = 10_000


@pytest.fixture(scope="session")
def django_ready() -> Iterator[None]:
    """``django.setup()`` with the test project's settings (``tests/django_project``)."""
    import django

    previous = os.environ.get("DJANGO_SETTINGS_MODULE")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"
    django.setup()
    yield
    if previous is None:
        del os.environ["DJANGO_SETTINGS_MODULE"]
    else:
        os.environ["DJANGO_SETTINGS_MODULE"] = previous


@pytest.fixture(params=DRIVERS, ids=repr)
def driver(request: pytest.FixtureRequest) -> Driver:
    found: Driver = request.param
    if found.name == "django":
        request.getfixturevalue("django_ready")
    return found


@pytest.fixture
async def side_effects(db: asyncpg.Connection) -> AsyncIterator[None]:
    await db.execute(SIDE_EFFECTS)
    yield


async def next_notification(notifications: asyncio.Queue[str]) -> str:
    return await asyncio.wait_for(notifications.get(), NOTIFY_WAIT)


async def test_commit_gives_the_job_and_wakes_an_idle_daemon(
    driver: Driver, database_url: str, make_config: Callable[..., Config]
) -> None:
    ran: list[Job] = []

    async def record(job: Job) -> None:
        ran.append(job)

    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with running_queue(config, {"ocr": record}) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        await wait_until(lambda: queue.idle, message="the daemon to go idle")
        [job, ids] = await driver.run(
            database_url,
            [
                call("enqueue", "default", "ocr", {"document_id": 7}, priority=2),
                call("enqueue_many", "default", "ocr", [{"n": 1}, {"n": 2}]),
            ],
        )
        assert isinstance(job, Job)
        assert (job.queue_name, job.job_type, job.payload) == ("default", "ocr", {"document_id": 7})
        assert (job.state, job.priority, job.attempt) == (JobState.AVAILABLE, 2, 0)
        await wait_until(lambda: len(ran) == 3, message="the committed jobs to run")
    assert sorted(str(j.id) for j in ran) == sorted(str(i) for i in [job.id, *ids])


async def test_rollback_gives_no_job_and_no_wake(
    driver: Driver,
    database_url: str,
    queue: Queue,
    db: asyncpg.Connection,
    notifications: asyncio.Queue[str],
) -> None:
    with pytest.raises(Rollback):
        await driver.run(
            database_url,
            [
                call("enqueue", "default", "ocr", {}),
                call("enqueue", "default", "ocr", {}, dedupe_key="once"),
                call("enqueue_many", "default", "ocr", [{}, {}]),
                call("enqueue_many", "default", "ocr", [{}, {}], delay=30),
            ],
            rollback=True,
        )
    assert await count_jobs(queue) == 0
    await db.execute("SELECT pg_notify($1, 'after-rollback')", NOTIFY_CHANNEL)
    assert await next_notification(notifications) == "after-rollback"


async def test_bulk_enqueue_of_ten_thousand(
    driver: Driver, database_url: str, queue: Queue, db: asyncpg.Connection
) -> None:
    payloads = [{"n": n} for n in range(BULK)]
    [ids] = await driver.run(database_url, [call("enqueue_many", "bulk", "ocr", payloads)])
    assert len(ids) == BULK == len(set(ids))
    rows = await db.fetch(
        "SELECT id, (payload->>'n')::int AS n FROM docko_jobs WHERE state = 'available'"
    )
    assert {row["id"]: row["n"] for row in rows} == {job_id: n for n, job_id in enumerate(ids)}


async def test_same_semantics_as_queue_enqueue(
    driver: Driver, database_url: str, queue: Queue
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    first, again, delayed, scheduled, many = await driver.run(
        database_url,
        [
            call("enqueue", "default", "ocr", {"a": 1}, dedupe_key="doc-1", max_attempts=2),
            call("enqueue", "default", "ocr", {"a": 2}, dedupe_key="doc-1"),
            call("enqueue", "default", "ocr", {}, delay=timedelta(minutes=5)),
            call("enqueue", "default", "ocr", {}, run_at=later),
            call("enqueue_many", "default", "ocr", [{"n": 1}, {"n": 2}], delay=60),
        ],
    )
    assert again.id == first.id and again.payload == {"a": 1}
    assert first.max_attempts == 2
    assert delayed.run_at >= delayed.created_at + timedelta(minutes=5)
    assert scheduled.run_at == later
    assert delayed.max_attempts == Config.model_fields["max_attempts"].default
    for job_id in many:
        stored = await queue.get_job(job_id)
        assert stored is not None and stored.run_at >= stored.created_at + timedelta(seconds=60)
    assert await count_jobs(queue) == 5


async def test_a_bad_payload_raises_and_writes_nothing(
    driver: Driver, database_url: str, queue: Queue
) -> None:
    for bad in ({"tags": {"a"}}, float("nan")):
        with pytest.raises(PayloadError):
            await driver.run(database_url, [call("enqueue", "default", "ocr", bad)])
        with pytest.raises(PayloadError):
            await driver.run(database_url, [call("enqueue_many", "default", "ocr", [{}, bad])])
    with pytest.raises(DockoError, match="queue_name"):
        await driver.run(database_url, [call("enqueue", "", "ocr", {})])
    assert await count_jobs(queue) == 0


async def test_a_failed_bulk_call_leaves_the_callers_transaction_usable(
    driver: Driver, database_url: str, queue: Queue
) -> None:
    """The COPY runs under a savepoint: a payload that fails mid-stream undoes only the call."""

    class Unencodable:
        pass

    # More than one COPY message of rows goes out before the bad payload is reached.
    payloads: list[Any] = [{"n": n} for n in range(600)] + [Unencodable()]
    refused, job = await driver.run(
        database_url,
        [
            caught(PayloadError, "enqueue_many", "default", "ocr", payloads),
            call("enqueue", "default", "after", {}),
        ],
    )
    assert isinstance(refused, PayloadError)
    assert await count_jobs(queue) == 1
    assert await queue.get_job(job.id) == job


async def claim_one(queue: Queue, worker_id: str = "test-worker") -> Job:
    [job] = await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=1, worker_id=worker_id, lease_seconds=60
    )
    return job


async def test_complete_commits_with_the_handlers_writes(
    driver: Driver, database_url: str, queue: Queue, db: asyncpg.Connection, side_effects: None
) -> None:
    await queue.enqueue("default", "ocr", {})
    job = await claim_one(queue)

    await driver.run(database_url, [call(SIDE_EFFECT, job.id), call("complete", job)])

    assert job.completed_in_transaction
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert (stored.state, stored.attempt) == (JobState.COMPLETED, 1)
    assert stored.finished_at is not None and stored.lease_expires_at is None
    assert await db.fetchval("SELECT count(*) FROM side_effects WHERE job_id = $1", job.id) == 1


async def test_complete_rolls_back_with_the_handlers_writes(
    driver: Driver, database_url: str, queue: Queue, db: asyncpg.Connection, side_effects: None
) -> None:
    await queue.enqueue("default", "ocr", {})
    job = await claim_one(queue)

    with pytest.raises(Rollback):
        await driver.run(
            database_url, [call(SIDE_EFFECT, job.id), call("complete", job)], rollback=True
        )

    stored = await queue.get_job(job.id)
    assert stored is not None and stored.state is JobState.RUNNING
    assert await db.fetchval("SELECT count(*) FROM side_effects") == 0


async def test_complete_of_an_attempt_that_lost_the_job_raises_lease_lost_and_rolls_back(
    driver: Driver, database_url: str, queue: Queue, db: asyncpg.Connection, side_effects: None
) -> None:
    await queue.enqueue("default", "ocr", {})
    stale = await claim_one(queue, "worker-a")
    # Its lease expired and another daemon claimed the job: attempt 2, worker b.
    await db.execute(
        "UPDATE docko_jobs SET attempt = 2, worker_id = 'worker-b' WHERE id = $1", stale.id
    )

    with pytest.raises(LeaseLost):
        await driver.run(database_url, [call(SIDE_EFFECT, stale.id), call("complete", stale)])

    assert not stale.completed_in_transaction
    stored = await queue.get_job(stale.id)
    assert stored is not None
    assert (stored.state, stored.attempt, stored.worker_id) == (JobState.RUNNING, 2, "worker-b")
    assert await db.fetchval("SELECT count(*) FROM side_effects") == 0


async def test_complete_of_a_finished_job_raises_lease_lost(
    driver: Driver, database_url: str, queue: Queue
) -> None:
    await queue.enqueue("default", "ocr", {})
    job = await claim_one(queue)
    await driver.run(database_url, [call("complete", job)])
    with pytest.raises(LeaseLost):
        await driver.run(database_url, [call("complete", job)])


async def test_a_connection_of_the_other_kind_is_refused_in_one_line(database_url: str) -> None:
    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import Session

    import docko_worker

    conn = await asyncpg.connect(database_url)
    aconn = await psycopg.AsyncConnection.connect(database_url)
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    aengine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        for wrong in (conn, aconn, AsyncSession(aengine), object()):
            with pytest.raises(DockoError, match="pass a psycopg Connection") as refused:
                docko_worker.enqueue(wrong, "default", "ocr", {})
            assert "\n" not in str(refused.value)
        with (
            psycopg.connect(database_url) as sync_conn,
            pytest.raises(DockoError, match="use the sync form"),
        ):
            await docko_worker.enqueue_async(sync_conn, "default", "ocr", {})
        # The refusal comes before the job is looked at.
        with Session(engine) as session, pytest.raises(DockoError, match="use the sync form"):
            await docko_worker.complete_async(session, cast(Job, None))
    finally:
        await conn.close()
        await aconn.close()
        engine.dispose()
        await aengine.dispose()
