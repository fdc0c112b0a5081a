"""``Handoff``: claimed jobs reach idle workers in order, and none is lost to a cancelled worker."""

from __future__ import annotations

import asyncio

from docko_worker.handoff import Handoff


async def test_items_come_out_in_the_order_they_went_in() -> None:
    line: Handoff[int] = Handoff()
    for item in range(5):
        line.put(item)
    assert len(line) == 5
    assert [await line.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert len(line) == 0


async def test_a_waiting_worker_gets_the_next_item() -> None:
    line: Handoff[str] = Handoff()
    worker = asyncio.create_task(line.get())
    await asyncio.sleep(0)
    assert not worker.done()
    line.put("job")
    assert await asyncio.wait_for(worker, 1) == "job"


async def test_each_item_goes_to_exactly_one_of_many_waiting_workers() -> None:
    line: Handoff[int] = Handoff()
    workers = [asyncio.create_task(line.get()) for _ in range(10)]
    await asyncio.sleep(0)
    for item in range(4):
        line.put(item)
    done, pending = await asyncio.wait(workers, timeout=0.1)
    assert sorted(task.result() for task in done) == [0, 1, 2, 3]
    assert len(pending) == 6
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def test_a_worker_cancelled_after_its_wake_up_leaves_the_item_to_another() -> None:
    line: Handoff[str] = Handoff()
    first = asyncio.create_task(line.get())
    second = asyncio.create_task(line.get())
    await asyncio.sleep(0)
    line.put("job")  # wakes the first worker...
    first.cancel()  # ...which is cancelled before it runs again
    assert await asyncio.wait_for(second, 1) == "job"
    assert first.cancelled()


async def test_a_cancelled_waiter_is_skipped() -> None:
    line: Handoff[str] = Handoff()
    gone = asyncio.create_task(line.get())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    waiting = asyncio.create_task(line.get())
    await asyncio.sleep(0)
    line.put("job")
    assert await asyncio.wait_for(waiting, 1) == "job"


async def test_take_all_removes_what_no_worker_took() -> None:
    line: Handoff[int | None] = Handoff()
    for item in (1, 2, None):
        line.put(item)
    assert line.take_all() == [1, 2, None]
    assert len(line) == 0
    assert line.take_all() == []


async def test_a_burst_of_quick_items_is_worked_through_by_the_first_worker_woken() -> None:
    line: Handoff[int | None] = Handoff()
    taken: dict[int, list[int]] = {0: [], 1: [], 2: []}

    async def worker(number: int) -> None:
        while (item := await line.get()) is not None:
            taken[number].append(item)  # finishes without suspending

    workers = [asyncio.create_task(worker(number)) for number in range(3)]
    await asyncio.sleep(0)
    for item in range(100):
        line.put(item)
    for _ in workers:
        line.put(None)
    await asyncio.wait_for(asyncio.gather(*workers), 1)

    # One task switch for the whole burst; the worker it woke in passing found only the ends.
    assert taken == {0: list(range(100)), 1: [], 2: []}


async def test_items_whose_work_suspends_each_get_their_own_worker() -> None:
    line: Handoff[int] = Handoff()
    release = asyncio.Event()
    started: list[int] = []

    async def worker() -> None:
        started.append(await line.get())
        await release.wait()

    workers = [asyncio.create_task(worker()) for _ in range(3)]
    await asyncio.sleep(0)
    for item in range(3):
        line.put(item)
    for _ in range(10):
        await asyncio.sleep(0)

    assert sorted(started) == [0, 1, 2]
    release.set()
    await asyncio.wait_for(asyncio.gather(*workers), 1)
