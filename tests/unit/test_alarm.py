"""``Alarm``: one timer at a time rings at every moment set, and ``cancel`` silences it."""

from __future__ import annotations

import asyncio

import uvloop

from docko_worker.alarm import Alarm


async def test_rings_no_earlier_than_each_moment_and_until_the_last() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    rings: list[float] = []
    alarm = Alarm(lambda: rings.append(loop.time() - start), resolution=0.001)

    for seconds in (0.15, 0.05, 0.10):
        alarm.ring_in(seconds)
    assert len(alarm) == 3
    await asyncio.sleep(0.3)

    # Three rings, or fewer if the loop stalled past two moments at once.
    assert 1 <= len(rings) <= 3
    assert rings[0] >= 0.05 - 0.001
    assert rings[-1] >= 0.15 - 0.001
    assert len(alarm) == 0


async def test_an_earlier_moment_set_later_is_not_held_up_by_a_later_one() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    rings: list[float] = []
    alarm = Alarm(lambda: rings.append(loop.time() - start))

    alarm.ring_in(5.0)
    alarm.ring_in(0.05)
    await asyncio.sleep(0.5)

    assert len(rings) == 1 and rings[0] < 5.0
    assert len(alarm) == 1  # the 5-second moment is still to ring
    alarm.cancel()


async def test_no_moment_rings_before_it_is_due() -> None:
    """A ring claims jobs due by then: one that came early would find a job not yet due and
    leave it for the next poll (once a minute, say)."""
    loop = asyncio.get_running_loop()
    rings: list[float] = []
    alarm = Alarm(lambda: rings.append(loop.time()), resolution=0.05)
    start = loop.time()
    moments = [start + 0.02, start + 0.03, start + 0.04]

    for moment in moments:
        alarm.ring_in(moment - loop.time())
    await asyncio.sleep(0.2)

    assert rings, "the alarm never rang"
    assert rings[-1] >= moments[-1]
    # Each ring came no earlier than the first moment not yet rung for.
    pending = list(moments)
    for ring in rings:
        assert ring >= pending[0]
        pending = [moment for moment in pending if moment > ring]
    assert not pending
    assert len(alarm) == 0


async def test_a_moment_in_the_past_rings_at_once() -> None:
    rings: list[int] = []
    alarm = Alarm(lambda: rings.append(1))

    alarm.ring_in(-5)
    await asyncio.sleep(0.01)

    assert rings == [1]


async def test_cancel_forgets_every_moment() -> None:
    rings: list[int] = []
    alarm = Alarm(lambda: rings.append(1))

    alarm.ring_in(0.02)
    alarm.ring_in(0.04)
    alarm.cancel()
    await asyncio.sleep(0.08)

    assert rings == []
    assert len(alarm) == 0


def test_on_uvloop_a_moment_already_past_and_a_later_one_both_ring() -> None:
    """uvloop answers ``call_at`` for a moment already past with a plain ``Handle``."""

    async def scenario() -> list[int]:
        rings: list[int] = []
        alarm = Alarm(lambda: rings.append(len(rings)))
        alarm.ring_in(0)
        alarm.ring_in(-1)
        alarm.ring_in(0.05)
        await asyncio.sleep(0.2)
        return rings

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert len(runner.run(scenario())) >= 2
