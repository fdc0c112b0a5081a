"""When and in what order jobs are claimed: ``run_at`` and ``delay`` are respected (never claimed
before due), and claims take the lowest ``priority`` first, then the oldest ``run_at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from docko_worker import Job, Queue
from tests.integration.support import store_of, wait_until


async def claim(queue: Queue, limit: int = 1, worker_id: str = "w") -> list[Job]:
    return await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=limit, worker_id=worker_id, lease_seconds=60
    )


async def test_delayed_and_scheduled_jobs_are_not_claimed_before_due(queue: Queue) -> None:
    delayed = await queue.enqueue("default", "ocr", {"n": "delay"}, delay=1.5)
    scheduled = await queue.enqueue(
        "default",
        "ocr",
        {"n": "run_at"},
        run_at=datetime.now(UTC) + timedelta(seconds=1.5),
    )
    assert delayed.run_at >= delayed.created_at + timedelta(seconds=1.5)
    assert await claim(queue, limit=10) == []

    claimed: dict[UUID, Job] = {}

    async def both_claimed() -> bool:
        for job in await claim(queue, limit=10):
            claimed[job.id] = job
        return len(claimed) == 2

    await wait_until(both_claimed, timeout=10, interval=0.05)
    assert set(claimed) == {delayed.id, scheduled.id}
    for job in claimed.values():
        # The claim stamps updated_at with the database clock: never before the job was due.
        assert job.updated_at >= job.run_at


async def test_delay_is_added_to_run_at(queue: Queue) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    job = await queue.enqueue("default", "ocr", {}, run_at=start, delay=timedelta(minutes=30))
    assert job.run_at == start + timedelta(minutes=30)
    assert await claim(queue) == []


async def test_run_at_in_the_past_is_due_at_once(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {}, run_at=datetime.now(UTC) - timedelta(minutes=5))
    assert [claimed.id for claimed in await claim(queue)] == [job.id]


async def test_claims_take_lowest_priority_then_oldest_run_at(queue: Queue) -> None:
    now = datetime.now(UTC)
    enqueued = {
        "p5": await queue.enqueue("default", "ocr", {"name": "p5"}, priority=5),
        "p0-new": await queue.enqueue("default", "ocr", {"name": "p0-new"}, priority=0),
        "p10": await queue.enqueue("default", "ocr", {"name": "p10"}, priority=10),
        "p0-old": await queue.enqueue(
            "default", "ocr", {"name": "p0-old"}, run_at=now - timedelta(minutes=10)
        ),
        "p-1": await queue.enqueue("default", "ocr", {"name": "p-1"}, priority=-1),
        "p0-older": await queue.enqueue(
            "default", "ocr", {"name": "p0-older"}, run_at=now - timedelta(hours=1)
        ),
    }
    order: list[str] = []
    while jobs := await claim(queue, limit=1):
        order.extend(job.payload["name"] for job in jobs)
    assert order == ["p-1", "p0-older", "p0-old", "p0-new", "p5", "p10"]
    assert len(order) == len(enqueued)


async def test_one_claim_returns_jobs_in_priority_order(queue: Queue) -> None:
    for priority in (3, 1, 2, 0, 4):
        await queue.enqueue("default", "ocr", {"priority": priority}, priority=priority)
    jobs = await claim(queue, limit=3)
    assert [job.priority for job in jobs] == [0, 1, 2]
    rest = await claim(queue, limit=10)
    assert [job.priority for job in rest] == [3, 4]


async def test_priority_order_holds_across_queues(queue: Queue) -> None:
    for priority in (5, 6, 7):
        await queue.enqueue("bulk", "ocr", {"queue": "bulk"}, priority=priority)
    for priority in (0, 1):
        await queue.enqueue("urgent", "ocr", {"queue": "urgent"}, priority=priority)
    jobs = await store_of(queue).claim_jobs(
        queues=["bulk", "urgent"], job_types=["ocr"], limit=3, worker_id="w", lease_seconds=60
    )
    assert [(job.queue_name, job.priority) for job in jobs] == [
        ("urgent", 0),
        ("urgent", 1),
        ("bulk", 5),
    ]
