"""Watches the event loop from a thread and names the running jobs when something blocks it.

A handler that calls blocking code (``time.sleep``, a CPU-bound loop) freezes every coroutine of
the daemon, the heartbeat included, so leases can expire under a healthy-looking process. The
loop ticks a timestamp; a daemon thread checks it and logs ``event_loop_blocked`` with the jobs
that were running, once per blockage, while the blockage is still going on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("docko_worker.loop_monitor")


class LoopMonitor:
    """Logs when the event loop has not turned for ``threshold`` seconds."""

    def __init__(
        self,
        threshold: float,
        running_jobs: Callable[[], list[dict[str, Any]]],
        *,
        tick: float = 0.5,
    ) -> None:
        self._threshold = threshold
        self._running_jobs = running_jobs
        self._tick = tick
        self._last_tick = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="docko-loop-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    def _beat(self) -> None:
        self._last_tick = time.monotonic()
        assert self._loop is not None
        self._handle = self._loop.call_later(self._tick, self._beat)

    def _watch(self) -> None:
        reported_for = 0.0
        while not self._stop.wait(self._tick):
            last = self._last_tick
            blocked = time.monotonic() - last
            if blocked < self._threshold or reported_for == last:
                continue
            reported_for = last
            try:
                jobs = self._running_jobs()
            except RuntimeError:  # the loop resumed and changed the dict meanwhile
                jobs = []
            log.warning("event_loop_blocked", blocked_for=round(blocked, 1), running=jobs)
