"""Periodic slots against a real database, with a clock of the test's own.

The scheduler's passes are called with an injected ``now`` (always in the past, so the database's
own guard, "a slot is due by the database's clock", holds); the jobs it inserts are read back from
``docko_jobs``. Each test steps the clock through the moments that matter: every minute of both
DST change days, every second of a seconds schedule, a leap day, a downtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from docko_worker import Config, DockoError, Periodic, Queue
from docko_worker.scheduler import Scheduler
from docko_worker.store import PeriodicStore

BERLIN = ZoneInfo("Europe/Berlin")


def periodic(name: str = "tick", **schedule: Any) -> Periodic:
    options: dict[str, Any] = {"queue_name": "periodic", "job_type": "tick"}
    options.update(schedule)
    return Periodic(name, **options)


def scheduler(queue: Queue, *periodics: Periodic) -> Scheduler:
    """A daemon's scheduler on the queue's pool (a new one is a restarted daemon)."""
    return Scheduler(PeriodicStore(queue.pool), periodics, queue.config)


async def slots(db: asyncpg.Connection, job_type: str = "tick") -> list[datetime]:
    """The run_at of every job of ``job_type``, oldest first."""
    rows = await db.fetch(
        "SELECT run_at FROM docko_jobs WHERE job_type = $1 ORDER BY run_at", job_type
    )
    return [row["run_at"] for row in rows]


def moments(start: datetime, end: datetime, step: timedelta) -> Iterable[datetime]:
    at = start
    while at <= end:
        yield at
        at += step


async def step_through(daemon: Scheduler, start: datetime, end: datetime, step: timedelta) -> None:
    for now in moments(start.astimezone(UTC), end.astimezone(UTC), step):
        await daemon.run_once(now)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


async def test_a_minute_schedule_enqueues_each_minute_once_due_at_its_slot(
    queue: Queue, db: asyncpg.Connection
) -> None:
    tick = periodic(cron="* * * * *", payload={"report": "minutely"}, priority=3, max_attempts=2)
    daemon = scheduler(queue, tick)
    await daemon.register(utc(2026, 1, 5, 10, 0, 30))
    await step_through(
        daemon, utc(2026, 1, 5, 10, 0, 30), utc(2026, 1, 5, 10, 3, 30), timedelta(seconds=7)
    )
    assert await slots(db) == [utc(2026, 1, 5, 10, minute) for minute in (1, 2, 3)]
    row = await db.fetchrow(
        "SELECT queue_name, payload::text, priority, max_attempts, state::text, attempt"
        " FROM docko_jobs LIMIT 1"
    )
    assert tuple(row) == ("periodic", '{"report":"minutely"}', 3, 2, "available", 0)


async def test_a_seconds_schedule_enqueues_each_of_its_seconds(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(cron="*/10 * * * * *"))
    start = utc(2026, 1, 5, 10, 0, 1)
    await step_through(daemon, start, start + timedelta(seconds=60), timedelta(milliseconds=700))
    assert await slots(db) == [utc(2026, 1, 5, 10, 0, s) for s in (10, 20, 30, 40, 50)] + [
        utc(2026, 1, 5, 10, 1, 0)
    ]


async def test_an_interval_is_aligned_to_the_epoch_whatever_the_time_zone(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(every=timedelta(seconds=90), timezone="Asia/Kolkata"))
    start = utc(2026, 1, 5, 10, 0, 1)
    await step_through(daemon, start, start + timedelta(minutes=5), timedelta(seconds=4))
    assert await slots(db) == [
        utc(2026, 1, 5, 10, 1, 30),
        utc(2026, 1, 5, 10, 3, 0),
        utc(2026, 1, 5, 10, 4, 30),
    ]


@pytest.mark.parametrize(
    ("day", "slot"),
    [
        # Clocks go forward at 02:00 to 03:00: 02:00 does not exist; it runs at 03:00 CEST.
        (datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)),
        # Clocks go back at 03:00 to 02:00: 02:00 comes twice; it runs at the first.
        (
            datetime(2026, 10, 25, tzinfo=BERLIN),
            datetime(2026, 10, 25, 2, 0, fold=0, tzinfo=BERLIN),
        ),
    ],
    ids=["clocks-forward", "clocks-back"],
)
async def test_two_in_the_night_in_berlin_runs_once_on_each_dst_day(
    queue: Queue, db: asyncpg.Connection, day: datetime, slot: datetime
) -> None:
    daemon = scheduler(queue, periodic(cron="0 2 * * *", timezone="Europe/Berlin"))
    start = day - timedelta(hours=12)
    await daemon.register(start.astimezone(UTC))
    # Every minute of the real (UTC) timeline: the repeated hour is walked through twice.
    await step_through(daemon, start, day + timedelta(hours=36), timedelta(minutes=1))
    found = await slots(db)
    assert found[0] == slot.astimezone(UTC)
    # The day after is an ordinary day again: 02:00 local time, in the new offset.
    assert [moment.astimezone(BERLIN).strftime("%d %H:%M%z") for moment in found] == [
        slot.strftime("%d %H:%M%z"),
        (day + timedelta(days=1)).replace(hour=2).strftime("%d %H:%M%z"),
    ]


async def test_a_leap_day_schedule_waits_for_the_leap_year(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(cron="0 12 29 2 *"))
    await step_through(daemon, utc(2023, 1, 1), utc(2024, 12, 31), timedelta(days=1))
    assert await slots(db) == [utc(2024, 2, 29, 12)]
    [info] = await queue.list_periodic()
    assert info.last_slot == utc(2024, 2, 29, 12)
    # The next by the database's clock (a slot is due only by the database's clock: the test's
    # clock stays in the past).
    assert info.next_slot is not None
    assert (info.next_slot.month, info.next_slot.day, info.next_slot.year % 4) == (2, 29, 0)


async def test_a_daily_schedule_runs_on_a_leap_day(queue: Queue, db: asyncpg.Connection) -> None:
    daemon = scheduler(queue, periodic(cron="30 0 * * *"))
    await step_through(daemon, utc(2024, 2, 27, 12), utc(2024, 3, 2), timedelta(minutes=20))
    assert await slots(db) == [utc(2024, 2, day, 0, 30) for day in (28, 29)] + [
        utc(2024, 3, 1, 0, 30)
    ]


async def test_after_downtime_only_the_latest_missed_slot_is_enqueued(
    queue: Queue, db: asyncpg.Connection
) -> None:
    every_second = periodic(every=1)
    start = utc(2026, 1, 5, 10, 0, 0, 500_000)
    await step_through(
        scheduler(queue, every_second),
        start,
        start + timedelta(seconds=3),
        timedelta(milliseconds=250),
    )
    assert len(await slots(db)) == 3
    # The fleet is down for ten seconds; a daemon starts again.
    restarted = scheduler(queue, every_second)
    back = start + timedelta(seconds=13, milliseconds=200)
    done = await restarted.run_once(back)
    assert [slot for _, slot, _ in done.enqueued] == [utc(2026, 1, 5, 10, 0, 13)]
    await step_through(restarted, back, back + timedelta(seconds=2), timedelta(milliseconds=250))
    assert [moment.second for moment in await slots(db)] == [1, 2, 3, 13, 14, 15]


async def test_a_late_pass_of_a_running_daemon_enqueues_every_slot_it_passed(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(every=1))
    start = utc(2026, 1, 5, 10, 0, 0, 500_000)
    await daemon.run_once(start)
    done = await daemon.run_once(start + timedelta(seconds=4))  # the event loop was blocked
    assert [slot.second for _, slot, _ in done.enqueued] == [1, 2, 3, 4]
    # A broken run (a failed pass, a database outage) counts as downtime.
    daemon.interrupted()
    done = await daemon.run_once(start + timedelta(seconds=9))
    assert [slot.second for _, slot, _ in done.enqueued] == [9]


async def test_daemons_racing_for_the_same_slots_enqueue_each_once(
    queue: Queue, db: asyncpg.Connection
) -> None:
    every_second = periodic(every=1)
    fleet = [scheduler(queue, every_second) for _ in range(3)]
    start = utc(2026, 1, 5, 10, 0, 0, 500_000)
    for daemon in fleet:
        await daemon.register(start)
    for now in moments(start, start + timedelta(seconds=20), timedelta(milliseconds=500)):
        # The daemons' clocks differ (skewed hosts): what each finds due differs too.
        await asyncio.gather(
            *(
                daemon.run_once(now + timedelta(milliseconds=90 * i))
                for i, daemon in enumerate(fleet)
            )
        )
    found = await slots(db)
    assert found == [start.replace(microsecond=0) + timedelta(seconds=n) for n in range(1, 21)]


async def test_a_slot_not_yet_due_by_the_database_clock_is_not_enqueued(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(every=1))
    now = await db.fetchval("SELECT now()")
    await daemon.run_once(now)
    # A host clock an hour fast finds slots due that the database's clock does not.
    done = await daemon.run_once(now + timedelta(hours=1))
    assert done.enqueued == []
    assert await slots(db) == []


async def test_a_changed_expression_takes_effect_at_its_next_slot(
    queue: Queue, db: asyncpg.Connection
) -> None:
    old = scheduler(
        queue, periodic(cron="0 * * * *"), periodic("other", every=3600, job_type="other")
    )
    await old.register(utc(2026, 1, 5, 10, 30))
    await old.run_once(utc(2026, 1, 5, 11, 0, 1))
    assert await slots(db) == [utc(2026, 1, 5, 11)]
    # A new deployment every quarter hour, without "other": no slot at once, the next at 11:30.
    new = scheduler(queue, periodic(cron="*/15 * * * *"))
    assert (await new.run_once(utc(2026, 1, 5, 11, 20))).enqueued == []
    await new.run_once(utc(2026, 1, 5, 11, 30, 1))
    # The old daemon still running enqueues nothing of the schedule it no longer owns.
    assert (await old.run_once(utc(2026, 1, 5, 12, 0, 1))).enqueued == [
        ("other", utc(2026, 1, 5, 12), (await queue.list_periodic())[0].last_job_id)
    ]
    await new.run_once(utc(2026, 1, 5, 12, 0, 2))
    assert await slots(db) == [
        utc(2026, 1, 5, 11),
        utc(2026, 1, 5, 11, 30),
        utc(2026, 1, 5, 11, 45),
        utc(2026, 1, 5, 12),
    ]
    # "other" was removed from the new deployment: once the old daemon is gone, it stops.
    await new.run_once(utc(2026, 1, 5, 13, 0, 1))
    assert await slots(db, "other") == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 12)]


async def test_skip_if_running_skips_a_slot_while_the_previous_job_is_unfinished(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(every=60, skip_if_running=True))
    start = utc(2026, 1, 5, 10, 0, 30)
    await daemon.run_once(start)
    first = await daemon.run_once(start + timedelta(minutes=1))
    [(_, _, job_id)] = first.enqueued
    second = await daemon.run_once(start + timedelta(minutes=2))
    assert second.enqueued == [] and second.skipped == [("tick", utc(2026, 1, 5, 10, 2))]
    await db.execute(
        "UPDATE docko_jobs SET state = 'completed', finished_at = now() WHERE id = $1", job_id
    )
    third = await daemon.run_once(start + timedelta(minutes=3))
    assert [slot for _, slot, _ in third.enqueued] == [utc(2026, 1, 5, 10, 3)]
    [info] = await queue.list_periodic()
    assert info.last_slot == utc(2026, 1, 5, 10, 3)
    assert info.last_job_id == third.enqueued[0][2]


async def test_a_forgotten_schedule_row_is_declared_again(
    queue: Queue, db: asyncpg.Connection
) -> None:
    daemon = scheduler(queue, periodic(every=60))
    await daemon.run_once(utc(2026, 1, 5, 10, 0, 30))
    await db.execute("DELETE FROM docko_periodic")
    # The slot that finds the row gone is lost; the schedule is declared anew at the next pass
    # and fires from its next slot.
    await daemon.run_once(utc(2026, 1, 5, 10, 1, 1))
    await daemon.run_once(utc(2026, 1, 5, 10, 2, 1))
    await daemon.run_once(utc(2026, 1, 5, 10, 3, 1))
    assert await slots(db) == [utc(2026, 1, 5, 10, 3)]


async def test_register_periodic_refuses_duplicates_and_late_registration(
    config: Config,
) -> None:
    async with await Queue.connect(config) as queue:
        queue.register_periodic(periodic(every=5))
        with pytest.raises(DockoError, match="two periodic jobs named 'tick'"):
            queue.register_periodic(periodic(cron="* * * * *"))

        async def noop(_job: object) -> None:
            return None

        queue.register_handler("tick", noop)
        await queue.start(["periodic"])
        with pytest.raises(DockoError, match="before start"):
            queue.register_periodic(periodic("later", every=5))
