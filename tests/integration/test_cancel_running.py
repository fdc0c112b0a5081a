"""Cancelling a running job through a running daemon: its handler is stopped and the job ends
``cancelled``, by the control notification or, without LISTEN, by the heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from docko_worker import Config, Job, JobState
from tests.integration.support import running_queue, supervisor_of, wait_for_state, wait_until


def slow_handler(started: asyncio.Event, seen: list[BaseException]) -> Callable[[Job], object]:
    async def slow(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except BaseException as exc:
            seen.append(exc)
            raise

    return slow


async def test_a_running_job_is_cancelled_by_the_control_notification(
    make_config: Callable[..., Config],
) -> None:
    started, seen = asyncio.Event(), []
    config = make_config(listen=True, poll_interval=30)
    async with running_queue(config, {"ocr": slow_handler(started, seen)}) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        returned = await queue.cancel(job.id, reason="runaway OCR")
        assert returned is not None and returned.state is JobState.RUNNING
        cancelled = await wait_for_state(queue, job.id, JobState.CANCELLED)
        assert queue.counters.cancelled == 1
    assert [type(exc) for exc in seen] == [asyncio.CancelledError]
    assert cancelled.last_error == "Cancelled: runaway OCR"
    assert cancelled.attempt == 1
    assert cancelled.finished_at is not None


async def test_without_listen_the_heartbeat_carries_the_cancel_request(
    make_config: Callable[..., Config],
) -> None:
    started, seen = asyncio.Event(), []
    config = make_config(listen=False, visibility_timeout=3, heartbeat_interval=0.3)
    async with running_queue(config, {"ocr": slow_handler(started, seen)}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        await queue.cancel(job.id)
        cancelled = await wait_for_state(queue, job.id, JobState.CANCELLED)
    assert cancelled.last_error == "Cancelled"
    assert len(seen) == 1


async def test_a_handler_that_ignores_the_cancel_is_abandoned_and_the_job_still_cancelled(
    make_config: Callable[..., Config],
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def stubborn(job: Job) -> None:
        started.set()
        while not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue

    config = make_config(listen=True)
    async with running_queue(config, {"ocr": stubborn}) as queue:
        supervisor = supervisor_of(queue)
        supervisor._workers._cancel_grace = 0.5
        supervisor._workers._executor._cancel_grace = 0.5
        waker = supervisor.waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        await queue.cancel(job.id)
        cancelled = await wait_for_state(queue, job.id, JobState.CANCELLED)
        release.set()
    assert cancelled.last_error == "Cancelled"


async def test_a_job_that_completes_before_the_cancel_lands_stays_completed(
    make_config: Callable[..., Config],
) -> None:
    async def quick(job: Job) -> None:
        return None

    async with running_queue(make_config(), {"ocr": quick}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        done = await wait_for_state(queue, job.id, JobState.COMPLETED)
        returned = await queue.cancel(job.id)
    assert returned is not None and returned.state is JobState.COMPLETED
    assert done.finished_at == returned.finished_at


async def test_the_worker_goes_on_after_a_cancelled_job(
    make_config: Callable[..., Config],
) -> None:
    started, seen = asyncio.Event(), []
    ran: list[int] = []

    async def quick(job: Job) -> None:
        ran.append(job.payload["n"])

    config = make_config(listen=True, worker_count=1)
    handlers = {"slow": slow_handler(started, seen), "quick": quick}
    async with running_queue(config, handlers) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        job = await queue.enqueue("default", "slow", {})
        await asyncio.wait_for(started.wait(), 10)
        await queue.cancel(job.id)
        await wait_for_state(queue, job.id, JobState.CANCELLED)
        later = await queue.enqueue_many("default", "quick", [{"n": n} for n in range(3)])
        for job_id in later:
            await wait_for_state(queue, job_id, JobState.COMPLETED)
        await wait_until(lambda: len(ran) == 3, message="three quick jobs")
