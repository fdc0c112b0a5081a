"""The hand-off of claimed jobs from the fetcher to idle workers.

A first-in, first-out line of items and the workers waiting for one. It does what the supervisor
needs of ``asyncio.Queue`` and no more (no size bound, no task accounting, no waiting producers):
each claimed job passes through it once, and at tens of thousands of jobs a second the
bookkeeping ``asyncio.Queue`` does per item is a measurable share of the daemon's CPU.

An item stays in the line until a worker takes it; waking a worker only tells it to look. So a
worker cancelled just after being woken leaves its item for the next one, and nothing is lost.

Wake-ups are passed along a chain rather than sent one per item: while items wait, exactly one
woken worker is on its way, and each worker that takes an item wakes the next if items remain. A
batch of jobs that finish without suspending (no-op or CPU-light handlers) is then worked through
by a few workers in turn, not by one task switch per job; jobs that suspend still each get their
own worker, one wake-up later.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Items in arrival order; ``get`` waits for one."""

    __slots__ = ("_items", "_waiters", "_woken")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Workers woken that have not run yet: at most one while items wait.
        self._woken = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Add ``item``; wake a waiting worker unless one is already on its way."""
        self._items.append(item)
        if not self._woken:
            self._wake_one()

    async def get(self) -> T:
        """The oldest item, waiting until there is one."""
        items = self._items
        while not items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    # Woken, then cancelled before taking an item: pass the wake-up on.
                    self._woken -= 1
                    if items and not self._woken:
                        self._wake_one()
                elif not waiter.done():
                    waiter.cancel()
                raise
            self._woken -= 1
        item = items.popleft()
        if items and not self._woken:
            self._wake_one()
        return item

    def take_all(self) -> list[T]:
        """Remove and return every item no worker has taken yet."""
        taken = list(self._items)
        self._items.clear()
        return taken

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1
                return
