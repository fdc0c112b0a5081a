"""An idle daemon is woken only for jobs it can run: the notification of an enqueue names the
job types, and a daemon with no handler for any of them stays asleep (before, each enqueue of a
type it does not handle cost it an empty claim: a rolling deploy, or a queue shared between
applications, made that every enqueue)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from docko_worker import Config, Job, JobState, Queue
from docko_worker.statements import SQL
from docko_worker.store import NOTIFY_CHANNEL
from docko_worker.supervisor import parse_wake_payload
from tests.integration.support import (
    running_queue,
    store_of,
    supervisor_of,
    wait_for_state,
    wait_until,
)

# Far longer than the tests wait: a job that runs was woken for, not polled for.
SLOW_POLL = 600.0


async def test_enqueues_of_a_type_without_a_handler_here_do_not_wake_the_daemon(
    make_config: Callable[..., Config],
) -> None:
    async def record(job: Job) -> None:
        return None

    config = make_config(poll_interval=SLOW_POLL, listen=True)
    async with running_queue(config, {"ocr": record}) as queue:
        supervisor = supervisor_of(queue)
        waker = supervisor.waker
        assert waker is not None
        await asyncio.wait_for(waker.connected.wait(), 10)
        fetcher: Any = supervisor._fetcher
        woken: list[str] = []
        wake, wake_at = fetcher.wake, fetcher.wake_at

        def spy_wake() -> None:
            woken.append("now")
            wake()

        def spy_wake_at(epoch_seconds: float) -> None:
            woken.append("later")
            wake_at(epoch_seconds)

        fetcher.wake, fetcher.wake_at = spy_wake, spy_wake_at
        await queue.enqueue("default", "pdf", {})
        await queue.enqueue("default", "pdf", {}, delay=30)
        await queue.enqueue_many("default", "pdf", [{}, {}])  # binary COPY, then its NOTIFY
        await queue.enqueue_many("default", "pdf", [{}, {}], delay=30)  # the INSERT statement
        assert woken == []
        # Notifications arrive in order: once this one has woken the daemon, every one before it
        # was read and dropped.
        job = await queue.enqueue("default", "ocr", {})
        await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=15)
        assert woken == ["now"]


async def test_every_enqueue_path_names_its_job_types(queue: Queue, db: asyncpg.Connection) -> None:
    payloads: list[str] = []
    await db.add_listener(NOTIFY_CHANNEL, lambda *args: payloads.append(args[3]))
    await queue.enqueue("mail", "ocr", {})
    await queue.enqueue_many("mail", "thumbnail", [{}, {}])
    await queue.enqueue_many("mail", "pdf", [{}], delay=5)
    await wait_until(lambda: len(payloads) == 3, message="three notifications")
    notices = [parse_wake_payload(payload) for payload in payloads]
    assert [(n.queue, n.job_types, n.due is None) for n in notices] == [
        ("mail", frozenset({"ocr"}), True),
        ("mail", frozenset({"thumbnail"}), True),
        ("mail", frozenset({"pdf"}), False),
    ]


async def test_a_notification_naming_too_many_types_names_none(db: asyncpg.Connection) -> None:
    """NOTIFY's payload is limited (8,000 bytes): past 4,000 bytes of type names the list is left
    out, and every daemon serving the queue wakes."""
    payloads: list[str] = []
    await db.add_listener(NOTIFY_CHANNEL, lambda *args: payloads.append(args[3]))
    types = [f"type_{n:04d}_" + "x" * 40 for n in range(200)]
    count = len(types)
    await db.execute(
        SQL.enqueue_jobs,
        ["mail"] * count,
        types,
        ["{}"] * count,
        [0] * count,
        [5] * count,
        [None] * count,
        NOTIFY_CHANNEL,
        0.0,
        None,
    )
    await wait_until(lambda: len(payloads) == 1, message="one notification")
    notice = parse_wake_payload(payloads[0])
    assert (notice.queue, notice.due, notice.job_types, notice.priority) == ("mail", None, None, 0)


async def test_jobs_handed_back_or_rescued_are_announced(
    queue: Queue, db: asyncpg.Connection
) -> None:
    """Available again, they wake idle daemons as an enqueue would, naming their type, the best
    priority and their due time (which a hand-back keeps)."""
    payloads: list[str] = []
    handed_back = await queue.enqueue("mail", "ocr", {}, priority=3)
    rescued = await queue.enqueue("mail", "pdf", {}, priority=-2)
    store = store_of(queue)
    [claimed_back] = await store.claim_jobs(
        queues=["mail"], job_types=["ocr"], limit=1, worker_id="w", lease_seconds=60
    )
    [claimed_lost] = await store.claim_jobs(
        queues=["mail"], job_types=["pdf"], limit=1, worker_id="w", lease_seconds=0.01
    )
    await db.add_listener(NOTIFY_CHANNEL, lambda *args: payloads.append(args[3]))
    assert await store.release_jobs([claimed_back.id], [claimed_back.attempt]) == {handed_back.id}
    await asyncio.sleep(0.05)
    assert [row["id"] for row in await store.rescue_expired_jobs(10)] == [rescued.id]
    await wait_until(lambda: len(payloads) == 2, message="two notifications")
    notices = [parse_wake_payload(payload) for payload in payloads]
    assert [(n.queue, n.job_types, n.priority, n.due is None) for n in notices] == [
        ("mail", frozenset({"ocr"}), 3, True),
        ("mail", frozenset({"pdf"}), -2, True),
    ]
    assert notices[0].run_at == handed_back.run_at.timestamp()
    assert claimed_lost.id == rescued.id
