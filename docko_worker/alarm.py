"""``Alarm``: calls back at each of many future moments, with one event-loop timer at a time.

The fetcher sets one for every retry it schedules and every delayed job announced to it, so that
an idle daemon claims the job when it falls due instead of at the next poll. A moment never rings
early: the timer is set ``slack`` seconds after it (uvloop's timers round to the millisecond and
may fire that much before their moment), and a ring forgets only the moments it has reached. A
moment set less than ``resolution`` seconds after a pending timer rides on the next ring.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable


class Alarm:
    """Rings ``callback`` at every moment set with ``ring_in``; ``cancel`` forgets them all."""

    __slots__ = ("_callback", "_moments", "_resolution", "_slack", "_timer", "_timer_moment")

    def __init__(
        self, callback: Callable[[], None], resolution: float = 0.005, slack: float = 0.002
    ) -> None:
        self._callback = callback
        self._resolution = resolution
        self._slack = slack
        self._moments: list[float] = []
        # Not TimerHandle.when(): uvloop answers a moment already past with a plain Handle.
        self._timer: asyncio.Handle | None = None
        self._timer_moment = 0.0

    def __len__(self) -> int:
        """Moments still to ring."""
        return len(self._moments)

    def ring_in(self, seconds: float) -> None:
        """Ring once ``seconds`` from now (at once for zero or less)."""
        loop = asyncio.get_running_loop()
        moment = loop.time() + max(0.0, seconds)
        heapq.heappush(self._moments, moment)
        timer = self._timer
        if timer is None or moment < self._timer_moment - self._resolution:
            if timer is not None:
                timer.cancel()
            self._set_timer(loop, moment)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._moments.clear()

    def _ring(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        moments, now = self._moments, loop.time()
        while moments and moments[0] <= now:
            heapq.heappop(moments)
        if moments:
            self._set_timer(loop, moments[0])
        self._callback()

    def _set_timer(self, loop: asyncio.AbstractEventLoop, moment: float) -> None:
        self._timer = loop.call_at(moment + self._slack, self._ring)
        self._timer_moment = moment
