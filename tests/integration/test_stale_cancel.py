"""A cancel request that arrives after the handler's run ended (its outcome not yet written)
must not outlive that attempt: after an operator's retry, the next attempt runs. Found by the
chaos scenario of cancels and retries under SIGKILL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from docko_worker import Config, Job, JobState
from docko_worker.registry import Handler
from tests.integration.support import running_queue, supervisor_of, wait_for_state


def slow_first_attempt() -> tuple[asyncio.Event, list[int], Handler]:
    """A handler whose first attempt runs a minute and later ones a moment: the event it sets
    when it starts, and the attempts it ran."""
    started = asyncio.Event()
    runs: list[int] = []

    async def slow(job: Job) -> None:
        runs.append(job.attempt)
        started.set()
        await asyncio.sleep(60 if job.attempt == 1 else 0.05)

    return started, runs, slow


async def test_a_cancel_arriving_while_the_outcome_awaits_its_write_cancels_the_retried_job(
    make_config: Callable[..., Config],
) -> None:
    started, runs, slow = slow_first_attempt()
    # The outcome waits up to 1 s for its write; nothing else changes.
    config = make_config(listen=True, completion_flush_interval=1.0)
    async with running_queue(config, {"ocr": slow}) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        await queue.cancel(job.id, reason="first click")
        await asyncio.sleep(0.2)  # handler interrupted; its outcome not yet written
        await queue.cancel(job.id, reason="second click")  # the job is still running in the row
        cancelled = await wait_for_state(queue, job.id, JobState.CANCELLED)
        assert cancelled.attempt == 1
        retried = await queue.retry(job.id)
        assert retried is not None and retried.state is JobState.AVAILABLE
        final = await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=5)
    assert runs == [1, 2]
    assert final.attempt == 2


async def test_the_heartbeats_report_of_the_request_does_not_cancel_the_retry_either(
    make_config: Callable[..., Config],
) -> None:
    started, runs, slow = slow_first_attempt()
    config = make_config(
        listen=False, completion_flush_interval=1.0, visibility_timeout=3, heartbeat_interval=0.1
    )
    async with running_queue(config, {"ocr": slow}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        await asyncio.wait_for(started.wait(), 10)
        await queue.cancel(job.id, reason="one click")
        await wait_for_state(queue, job.id, JobState.CANCELLED)
        await queue.retry(job.id)
        final = await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=5)
    assert runs == [1, 2]
    assert final.attempt == 2
