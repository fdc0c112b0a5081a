"""Exactly once per slot across a fleet of running daemons (three started ``Queue``s).

A schedule fires every second. Three daemons run it at once for about ten seconds; the daemon that
enqueued the latest slot is stopped and the fleet goes on without it; then every daemon stops, the
fleet stays down for ten seconds, and a daemon starts again. Read from ``docko_jobs``: every slot
while a daemon ran has exactly one job, due at its slot, and the ten seconds of downtime give one
catch-up job, not ten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta

import asyncpg

from docko_worker import Config, Job, Periodic, Queue
from docko_worker.scheduler import Scheduler
from tests.integration.support import supervisor_of, wait_until

EVERY_SECOND = Periodic("heartbeat", every=1, queue_name="periodic", job_type="tick")
RUN_FOR = 10.0
DOWNTIME = 10.0


async def tick(_job: Job) -> None:
    return None


def scheduler_of(queue: Queue) -> Scheduler:
    scheduler = supervisor_of(queue)._scheduler
    assert scheduler is not None
    return scheduler


async def started(config: Config) -> Queue:
    queue = await Queue.connect(config)
    queue.register_handler("tick", tick)
    queue.register_periodic(EVERY_SECOND)
    await queue.start(["periodic"])
    return queue


async def slots(db: asyncpg.Connection) -> list[datetime]:
    rows = await db.fetch("SELECT run_at FROM docko_jobs WHERE job_type = 'tick' ORDER BY run_at")
    return [row["run_at"] for row in rows]


async def database_now(db: asyncpg.Connection) -> datetime:
    now: datetime = await db.fetchval("SELECT now()")
    return now


def seconds(first: datetime, last: datetime) -> list[datetime]:
    """Every whole second from ``first`` to ``last``, both included."""
    count = round((last - first).total_seconds())
    return [first + timedelta(seconds=n) for n in range(count + 1)]


async def test_three_daemons_enqueue_each_slot_once_through_a_stop_and_a_downtime(
    make_config: Callable[..., Config], db: asyncpg.Connection
) -> None:
    config = make_config(log_level="error")
    async with AsyncExitStack() as stack:
        fleet = [await started(config) for _ in range(3)]
        for queue in fleet:
            stack.push_async_callback(queue.close)
        began = await database_now(db)
        await asyncio.sleep(RUN_FOR)

        # Stop the daemon that enqueued the latest slot; the next slots still come.
        latest = max(fleet, key=lambda q: scheduler_of(q).last_enqueued.get("heartbeat", began))
        stopped_after = scheduler_of(latest).last_enqueued["heartbeat"]
        await latest.close()
        fleet.remove(latest)

        async def two_more_slots() -> bool:
            return len([s for s in await slots(db) if s > stopped_after]) >= 2

        await wait_until(two_more_slots, 10, message="two slots after the stop")
        while_running = await slots(db)

        # The whole fleet stops for ten seconds.
        for queue in fleet:
            await queue.close()
        down_after = (await slots(db))[-1]
        await asyncio.sleep(DOWNTIME)
        back_at = await database_now(db)
        restarted = await started(config)
        stack.push_async_callback(restarted.close)

        async def three_slots_after_restart() -> bool:
            return len([s for s in await slots(db) if s > down_after]) >= 3

        await wait_until(three_slots_after_restart, 10, message="slots after the restart")
        await restarted.close()
    found = await slots(db)

    # While daemons ran: every second, once, first slot after the fleet started.
    assert len(while_running) >= RUN_FOR
    assert while_running == seconds(while_running[0], while_running[-1])
    assert while_running[0] <= began + timedelta(seconds=1.5)
    assert stopped_after < while_running[-1]
    # Downtime: one catch-up slot (the latest one when the daemon started again), not ten.
    after = [slot for slot in found if slot > down_after]
    catch_up = after[0]
    assert catch_up - down_after >= timedelta(seconds=DOWNTIME - 1)
    assert back_at - timedelta(seconds=1) < catch_up <= back_at + timedelta(seconds=1)
    assert after == seconds(catch_up, after[-1])
    assert found == sorted(set(found)), "a slot was enqueued twice"
