"""Handlers and payloads that try the daemon's promises: every job still ends, none stays
``running``, and one bad job spoils no other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from docko_worker import Config, Job, JobState, Queue
from tests.integration.support import (
    count_jobs,
    running_queue,
    supervisor_of,
    wait_for_state,
    wait_until,
)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


class NotAnException(BaseException):
    pass


async def test_an_error_whose_str_raises_still_fails_the_job(
    make_config: Callable[..., Config],
) -> None:
    async def broken(job: Job) -> None:
        raise UnprintableError()

    async with running_queue(make_config(), {"ocr": broken}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=2)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
    assert failed.attempt == 2
    assert failed.last_error is not None and failed.last_error.startswith("UnprintableError")


async def test_a_cancelled_error_raised_by_the_handler_spends_the_attempt_and_keeps_the_worker(
    make_config: Callable[..., Config],
) -> None:
    """Before: the job was handed back unspent and the worker task ended for good, so with four
    workers the job ran four times at attempt 1 and later jobs stayed running."""
    attempts: list[int] = []

    async def awaits_a_cancelled_task(job: Job) -> None:
        attempts.append(job.attempt)
        task = asyncio.create_task(asyncio.sleep(10))
        task.cancel()
        await task

    async def fine(job: Job) -> None:
        return None

    config = make_config(worker_count=2)
    handlers = {"cancelling": awaits_a_cancelled_task, "fine": fine}
    async with running_queue(config, handlers) as queue:
        job = await queue.enqueue("default", "cancelling", {}, max_attempts=3)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
        later = await queue.enqueue_many("default", "fine", [{}] * 10)
        for job_id in later:
            await wait_for_state(queue, job_id, JobState.COMPLETED)
    assert attempts == [1, 2, 3]
    assert failed.last_error is not None and failed.last_error.startswith("CancelledError")


async def test_base_exceptions_from_handlers_are_failed_attempts(
    make_config: Callable[..., Config],
) -> None:
    async def exits(job: Job) -> None:
        raise SystemExit(3)

    async def odd(job: Job) -> None:
        raise NotAnException("from a library")

    async def fine(job: Job) -> None:
        return None

    config = make_config(worker_count=1)
    async with running_queue(config, {"exits": exits, "odd": odd, "fine": fine}) as queue:
        first = await queue.enqueue("default", "exits", {}, max_attempts=2)
        second = await queue.enqueue("default", "odd", {}, max_attempts=1)
        failed = [
            await wait_for_state(queue, first.id, JobState.FAILED),
            await wait_for_state(queue, second.id, JobState.FAILED),
        ]
        after = await queue.enqueue("default", "fine", {})
        await wait_for_state(queue, after.id, JobState.COMPLETED)
    assert [job.last_error for job in failed] == ["SystemExit: 3", "NotAnException: from a library"]
    assert failed[0].attempt == 2


async def test_error_messages_with_nul_or_lone_surrogates_are_stored(
    make_config: Callable[..., Config],
) -> None:
    """Before: the batched write failed on such a message and was retried forever, and every
    job of the daemon stayed running."""

    header = b"PK\x00\x03".decode("latin-1")

    async def binary(job: Job) -> None:
        raise ValueError(f"bad header {header}")

    async def filename(job: Job) -> None:
        raise FileNotFoundError("scan-caf\udce9.tiff")

    async def fine(job: Job) -> None:
        return None

    handlers = {"binary": binary, "filename": filename, "fine": fine}
    async with running_queue(make_config(), handlers) as queue:
        nul = await queue.enqueue("default", "binary", {}, max_attempts=1)
        surrogate = await queue.enqueue("default", "filename", {}, max_attempts=1)
        ok = await queue.enqueue("default", "fine", {})
        stored_nul = await wait_for_state(queue, nul.id, JobState.FAILED)
        stored_surrogate = await wait_for_state(queue, surrogate.id, JobState.FAILED)
        await wait_for_state(queue, ok.id, JobState.COMPLETED)
    assert stored_nul.last_error == "ValueError: bad header PK\\x00\x03"
    assert stored_surrogate.last_error == "FileNotFoundError: scan-caf\\udce9.tiff"


async def test_an_undecodable_payload_fails_alone_and_its_batch_runs(
    make_config: Callable[..., Config], db: asyncpg.Connection
) -> None:
    """A payload written by a producer that raised its recursion or integer-digit limits cannot
    be decoded by the daemon. Before: the whole claim batch failed to decode after the claim
    committed, and its innocent jobs ended failed (LeaseExpired) without running."""
    ran: list[int] = []

    async def record(job: Job) -> None:
        ran.append(job.payload["n"])

    deep = "[" * 1200 + "]" * 1200
    huge = "1" * 5000
    async with await Queue.connect(make_config()) as producer:
        innocent = await producer.enqueue_many("default", "ocr", [{"n": n} for n in range(5)])
    bad_ids = []
    for payload in (deep, huge):
        bad_ids.append(
            await db.fetchval(
                "INSERT INTO docko_jobs (id, queue_name, job_type, payload, max_attempts)"
                " VALUES (gen_random_uuid(), 'default', 'ocr', $1::text::json, 3) RETURNING id",
                payload,
            )
        )
    async with running_queue(make_config(), {"ocr": record}) as queue:
        for job_id in innocent:
            await wait_for_state(queue, job_id, JobState.COMPLETED)
        failed = [await wait_for_state(queue, job_id, JobState.FAILED) for job_id in bad_ids]
    assert sorted(ran) == [0, 1, 2, 3, 4]
    for job in failed:
        assert job.attempt == 1
        assert job.last_error is not None
        assert job.last_error.startswith("PayloadError: the payload cannot be decoded")


async def test_outcomes_that_cannot_be_written_at_shutdown_are_reported(
    make_config: Callable[..., Config], db: asyncpg.Connection
) -> None:
    """Before: stop() returned as if all was well and the rows stayed running unannounced."""
    done = asyncio.Event()

    async def finishes(job: Job) -> None:
        done.set()

    config = make_config(completion_flush_interval=1.0, shutdown_timeout=0.5)
    async with running_queue(config, {"ocr": finishes}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(done.wait(), 10)
        async with db.transaction():
            await db.execute("LOCK TABLE docko_jobs IN ACCESS EXCLUSIVE MODE")
            unwritten = await queue.stop()
    assert [j.id for j in unwritten] == [job.id]
    state = await db.fetchval("SELECT state::text FROM docko_jobs WHERE id = $1", job.id)
    assert state == "running"


async def test_a_completion_racing_the_heartbeat_is_not_a_lost_lease(
    make_config: Callable[..., Config],
) -> None:
    """The heartbeat's snapshot held a job whose completion was written meanwhile: the row is
    gone from under the heartbeat's statement, but the lease was never lost."""
    gate = asyncio.Event()

    async def waits(job: Job) -> None:
        await gate.wait()

    config = make_config(completed_retention=0, completion_flush_interval=1.0)
    async with running_queue(config, {"ocr": waits}) as queue:
        supervisor = supervisor_of(queue)
        job = await queue.enqueue("default", "ocr", {})
        await wait_until(lambda: supervisor.held.running(), message="the job running")
        gate.set()
        await wait_until(lambda: not supervisor.held.running(), message="the run settling")
        # The outcome waits for the completer's flush; the row disappears as if it landed.
        await queue.pool.execute("DELETE FROM docko_jobs WHERE id = $1", job.id)
        assert await supervisor.heartbeat.run_once() == 0
        assert await count_jobs(queue) == 0
