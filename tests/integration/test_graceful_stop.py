"""The queue's lifecycle in-process: ``start()`` rules, and ``stop()``: in-flight jobs get
``shutdown_timeout`` to finish, jobs still running after it are cancelled and handed back without
spending their attempt, and jobs claimed but not started are handed back at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from docko_worker import Config, DockoError, Job, JobState, Queue
from tests.integration.support import running_queue, store_of, supervisor_of, wait_for_state


async def test_job_still_running_at_the_deadline_is_handed_back_unspent(
    make_config: Callable[..., Config],
) -> None:
    started = asyncio.Event()
    cancelled: list[int] = []

    async def blocked(job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(job.attempt)
            raise

    async with running_queue(make_config(shutdown_timeout=0.3), {"ocr": blocked}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        running = await queue.get_job(job.id)
        assert running is not None
        assert (running.state, running.attempt) == (JobState.RUNNING, 1)
        await queue.stop()
        handed_back = await queue.get_job(job.id)

    assert cancelled == [1]
    assert handed_back is not None
    assert handed_back.state is JobState.AVAILABLE
    assert handed_back.attempt == 0
    assert handed_back.worker_id is None
    assert handed_back.lease_expires_at is None
    assert handed_back.finished_at is None


async def test_in_flight_job_finishes_during_stop(make_config: Callable[..., Config]) -> None:
    started = asyncio.Event()
    finished: list[int] = []

    async def quick(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(job.attempt)

    async with running_queue(make_config(shutdown_timeout=10), {"ocr": quick}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        await queue.stop()
        done = await queue.get_job(job.id)

    assert finished == [1]
    assert done is not None
    assert done.state is JobState.COMPLETED
    assert done.attempt == 1


async def test_handler_turning_cancellation_into_an_error_is_still_handed_back(
    make_config: Callable[..., Config],
) -> None:
    started = asyncio.Event()

    async def converts(job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed while cancelled") from None

    async with running_queue(make_config(shutdown_timeout=0.2), {"ocr": converts}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=1)
        await asyncio.wait_for(started.wait(), 10)
        await queue.stop()
        handed_back = await queue.get_job(job.id)

    assert handed_back is not None
    assert handed_back.state is JobState.AVAILABLE
    assert handed_back.attempt == 0


async def test_claimed_but_unstarted_jobs_are_released_at_once(
    make_config: Callable[..., Config],
) -> None:
    """With one worker busy, a second job claimed for this daemon waits in its ready queue.

    The fetcher only claims for free worker slots, so such a job exists only between a claim and
    a worker picking it up; the test puts one there by hand (``Supervisor._accept``, the
    fetcher's own hand-over) to show that stop() hands it back without waiting for the running job.
    """
    started = asyncio.Event()
    gate = asyncio.Event()

    async def gated(job: Job) -> None:
        started.set()
        await gate.wait()

    config = make_config(worker_count=1, shutdown_timeout=30)
    async with running_queue(config, {"ocr": gated}) as queue:
        supervisor = supervisor_of(queue)
        running = await queue.enqueue("default", "ocr", {"n": 1})
        await asyncio.wait_for(started.wait(), 10)
        waiting = await queue.enqueue("default", "ocr", {"n": 2})
        claimed = await store_of(queue).claim_jobs(
            queues=["default"],
            job_types=["ocr"],
            limit=1,
            worker_id=supervisor.worker_id,
            lease_seconds=config.visibility_timeout,
        )
        assert [job.id for job in claimed] == [waiting.id]
        supervisor.accept(claimed)

        stopping = asyncio.create_task(queue.stop())
        released = await wait_for_state(queue, waiting.id, JobState.AVAILABLE, timeout=5)
        still_running = await queue.get_job(running.id)
        assert not stopping.done()
        gate.set()
        await asyncio.wait_for(stopping, 10)
        finished = await queue.get_job(running.id)

    assert released.attempt == 0
    assert released.worker_id is None
    assert still_running is not None
    assert still_running.state is JobState.RUNNING
    assert finished is not None
    assert finished.state is JobState.COMPLETED


async def test_stop_without_start_is_harmless(make_config: Callable[..., Config]) -> None:
    async with await Queue.connect(make_config()) as queue:
        await queue.stop()
        job = await queue.enqueue("default", "ocr", {})
    assert job.state is JobState.AVAILABLE


async def test_stop_twice_is_harmless(make_config: Callable[..., Config]) -> None:
    async def handle(job: Job) -> None:
        return None

    async with running_queue(make_config(), {"ocr": handle}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        await wait_for_state(queue, job.id, JobState.COMPLETED)
        await queue.stop()
        await queue.stop()


async def test_start_rules(make_config: Callable[..., Config]) -> None:
    async def handle(job: Job) -> None:
        return None

    async with await Queue.connect(make_config()) as queue:
        with pytest.raises(DockoError, match="no handlers"):
            await queue.start()
        queue.register_handler("ocr", handle)
        await queue.start()
        with pytest.raises(DockoError, match="already been started"):
            await queue.start()
        with pytest.raises(DockoError, match="before start"):
            queue.register_handler("thumbnail", handle)
