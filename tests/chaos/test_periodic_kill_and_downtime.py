"""Fault: a periodic schedule in the fleet, its enqueuer killed, the whole fleet down and back.


Three daemons run a schedule that fires every second. The daemon that enqueued the latest slot is
SIGKILLed (the next slots must still come, from the others); then the fleet is stopped for ten
seconds and one daemon starts again. ``check_slots`` counts the slots: none twice, none missing
while a daemon ran, one catch-up slot for the downtime, not ten.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

import pytest
from chaos_checker import ChaosReport, check_slots
from chaos_harness import FINISH_TIMEOUT, Daemon, Fleet, connect, daemon_env, stop_all

from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

DAEMONS = 3
RUN_FOR = 8.0
DOWNTIME = 10.0
SLOTS_QUERY = "SELECT run_at FROM docko_jobs WHERE job_type = 'chaos_tick' ORDER BY run_at"


def registered_at(daemon: Daemon) -> datetime | None:
    for record in daemon.events():
        if record.get("event") == "periodic_registered":
            return datetime.fromisoformat(str(record["timestamp"]))
    return None


def latest_enqueued(daemon: Daemon) -> datetime | None:
    slots = [
        datetime.fromisoformat(str(record["slot"]))
        for record in daemon.events()
        if record.get("event") == "periodic_enqueued"
    ]
    return max(slots, default=None)


async def test_each_slot_once_through_a_kill_and_a_downtime(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db, CHAOS_PERIODIC_EVERY="1")
    conn = await connect(chaos_db)
    running: list[tuple[datetime, datetime]] = []

    async def slots() -> list[datetime]:
        return [row["run_at"] for row in await conn.fetch(SLOTS_QUERY)]

    async def started(daemon: Daemon) -> datetime:
        async def registered() -> datetime | None:
            return registered_at(daemon)

        begun: datetime = await wait_until(
            registered, FINISH_TIMEOUT, message="periodic_registered", watch=fleet
        )
        return begun

    def ended(daemon: Daemon, since: datetime, at: datetime | None = None) -> None:
        """A SIGKILLed daemon ran until its signal; a SIGTERMed one until it exited (``at``)."""
        assert daemon.signalled_at is not None
        running.append((since, at or datetime.fromtimestamp(daemon.signalled_at, UTC)))

    try:
        daemons = [fleet.start(env) for _ in range(DAEMONS)]
        since = {daemon.pid: await started(daemon) for daemon in daemons}
        await asyncio.sleep(RUN_FOR)

        victim = max(daemons, key=lambda d: latest_enqueued(d) or datetime.min.replace(tzinfo=UTC))
        killed_after = latest_enqueued(victim)
        assert killed_after is not None, fleet.describe()
        victim.send(signal.SIGKILL)
        assert await victim.wait_exit() == -signal.SIGKILL
        ended(victim, since[victim.pid])

        async def two_slots_after_the_kill() -> bool:
            return len([slot for slot in await slots() if slot > killed_after]) >= 2

        await wait_until(
            two_slots_after_the_kill,
            FINISH_TIMEOUT,
            message="two slots after the kill",
            watch=fleet,
        )

        survivors = fleet.running
        statuses = await stop_all(fleet)
        assert set(statuses.values()) == {0}, fleet.describe()
        for daemon in survivors:
            ended(daemon, since[daemon.pid], datetime.now(UTC))
        down_after = max(await slots())
        await asyncio.sleep(DOWNTIME)

        back = fleet.start(env)
        since[back.pid] = await started(back)

        async def three_slots_after_the_downtime() -> bool:
            return len([slot for slot in await slots() if slot > down_after]) >= 3

        await wait_until(
            three_slots_after_the_downtime,
            FINISH_TIMEOUT,
            message="slots after the downtime",
            watch=fleet,
        )
        assert set((await stop_all(fleet)).values()) == {0}, fleet.describe()
        ended(back, since[back.pid], datetime.now(UTC))
        result = check_slots(await slots(), 1.0, running)
    finally:
        await conn.close()

    chaos_report.note(
        f"periodic every 1 s, enqueuer SIGKILLed, {DOWNTIME:g} s down: " + result.summary()
    )
    assert result.problems == [], "\n".join(result.problems) + "\n" + fleet.describe()
    assert result.downtimes == 1 and result.caught_up == 1, result.summary()
    assert killed_after < down_after
