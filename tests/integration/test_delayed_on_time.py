"""Delayed jobs start when due, not at the next poll: the notification names the due time and an
idle daemon sets its alarm for it; at start it looks the next due time up itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from docko_worker import Config, Job, JobState, Queue
from docko_worker.store import NOTIFY_CHANNEL
from docko_worker.supervisor import parse_wake_payload
from tests.integration.support import running_queue, supervisor_of, wait_for_state, wait_until

# Far longer than the tests wait: a job that runs did not wait for a poll.
SLOW_POLL = 600.0


async def test_a_delayed_job_runs_when_due_on_an_idle_daemon_polling_rarely(
    make_config: Callable[..., Config],
) -> None:
    ran: list[Job] = []

    async def record(job: Job) -> None:
        ran.append(job)

    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with running_queue(config, {"ocr": record}) as queue:
        waker = supervisor_of(queue).waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        single = await queue.enqueue("default", "ocr", {"n": 1}, delay=0.5)
        [bulk] = await queue.enqueue_many("default", "ocr", [{"n": 2}], delay=0.7)
        await wait_for_state(queue, single.id, JobState.COMPLETED, timeout=15)
        await wait_for_state(queue, bulk, JobState.COMPLETED, timeout=15)
    assert [job.payload["n"] for job in ran] == [1, 2]


async def test_a_job_delayed_before_the_daemon_started_runs_when_due(
    make_config: Callable[..., Config],
) -> None:
    async def record(job: Job) -> None:
        return None

    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with await Queue.connect(config) as producer:
        job = await producer.enqueue("default", "ocr", {}, delay=1.5)
    async with running_queue(config, {"ocr": record}) as queue:
        await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=15)


async def test_the_notification_names_a_future_due_time(
    queue: Queue, db: asyncpg.Connection
) -> None:
    payloads: list[str] = []
    await db.add_listener(NOTIFY_CHANNEL, lambda *args: payloads.append(args[3]))
    now = await queue.enqueue("documents", "ocr", {})
    later = await queue.enqueue("documents", "ocr", {}, delay=30)
    await queue.enqueue_many("mail", "ocr", [{}, {}], delay=60)
    await wait_until(lambda: len(payloads) == 3, message="three notifications")
    parsed = [parse_wake_payload(payload) for payload in payloads]
    assert parsed[0][:3] == ("documents", None, frozenset({"ocr"}))
    assert parsed[0].run_at == now.run_at.timestamp() and parsed[0].priority == 0
    assert parsed[1][:3] == ("documents", later.run_at.timestamp(), frozenset({"ocr"}))
    assert parsed[2].queue == "mail" and parsed[2].due is not None
    assert parsed[2].due > now.run_at.timestamp() + 59
    assert parse_wake_payload("{not json") == ("{not json", None, None, None, None)
    assert parse_wake_payload("documents") == ("documents", None, None, None, None)


async def test_an_alarm_that_rings_before_the_job_is_due_looks_again(
    make_config: Callable[..., Config],
) -> None:
    """A host clock ahead of the database's rings the alarm early: the claim finds nothing due.
    Before: the job then waited for the next poll."""

    async def record(job: Job) -> None:
        return None

    config = make_config(poll_interval=SLOW_POLL, listen=False)
    async with running_queue(config, {"ocr": record}) as queue:
        supervisor = supervisor_of(queue)
        await wait_until(lambda: not supervisor._fetcher._look_ahead, message="the first look")
        job = await queue.enqueue("default", "ocr", {}, delay=1.5)
        # As if announced by a host whose clock runs a second ahead.
        supervisor._fetcher.wake_at(job.run_at.timestamp() - 1.0)
        await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=15)
