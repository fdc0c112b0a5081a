"""What the dashboard reads, and its connection to the database.

``DashboardData`` holds the ``Queue`` the pages read through (the application's own, or one
with a small pool of its own, opened at the first request and again after a failure) and the
recent activity behind the overview's charts and daemon list. Every read goes through the
operations API (``queue.queues()``, ``list_jobs``, ``get_job``, ``list_periodic``) or a bounded
statement of ``store.ActivityStore``:

- **throughput**: the newest ``ACTIVITY_LIMIT`` completed and as many failed jobs of the last
  hour, read backwards from the finished rows' partial index; when a busy hour holds more, the
  chart covers the minutes those rows span and says so. The result is kept ``ACTIVITY_TTL``
  seconds, so pages refreshing in many browsers cost one read per interval;
- **daemons**: worker ids holding a running job, or that finished one in the last
  ``DAEMON_WINDOW`` seconds (a daemon keeps no row of its own: an idle one is not seen).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from ..config import Config
from ..operations import COUNTED_STATES, QueueInfo
from ..pool import create_pool
from ..queue import Queue
from ..store import ActivityStore, WorkerSeen
from .chart import MINUTES, Chart, minute_chart

# Finished jobs of each outcome the throughput read takes at most.
ACTIVITY_LIMIT = 100_000
# Seconds a read of the recent activity is reused.
ACTIVITY_TTL = 10.0
# A daemon that finished or holds a job within this many seconds is listed.
DAEMON_WINDOW = 300.0
# Connections of the dashboard's own pool.
POOL_SIZE = 4


@dataclass(frozen=True, slots=True)
class Activity:
    """Per queue, (completed, failed) for each of the last 60 minutes (index: minutes ago)."""

    per_queue: dict[str, list[tuple[int, int]]]
    covered_minutes: int
    workers: list[WorkerSeen]

    def chart(self, queue_name: str | None = None, *, width: int = 240, height: int = 40) -> Chart:
        """One queue's chart, or every queue's summed (``None``)."""
        if queue_name is not None:
            series = self.per_queue.get(queue_name, [])
        else:
            series = [
                (
                    sum(q[m][0] for q in self.per_queue.values()),
                    sum(q[m][1] for q in self.per_queue.values()),
                )
                for m in range(MINUTES)
            ]
        return minute_chart(
            series, width=width, height=height, covered_minutes=self.covered_minutes
        )

    def workers_of(self, queue_name: str) -> list[WorkerSeen]:
        return [worker for worker in self.workers if queue_name in worker.queues]


@dataclass(frozen=True, slots=True)
class QueueCard:
    """One queue on the overview: its ``QueueInfo``, chart and daemons."""

    info: QueueInfo
    chart: Chart
    daemons: int


@dataclass(frozen=True, slots=True)
class Overview:
    queues: list[QueueCard]
    totals: dict[str, int]
    chart: Chart
    workers: list[WorkerSeen]


def covered(limited: bool, minutes: set[int]) -> int:
    """How many minutes the counts cover: all 60, or, when a read hit its limit, those newer
    than its oldest (partly counted) minute."""
    if not limited or not minutes:
        return MINUTES
    return max(min(max(minutes), MINUTES), 1)


@dataclass
class DashboardData:
    config: Config
    queue: Queue | None = None
    _owns_queue: bool = True
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _activity: tuple[float, Activity] | None = None

    @classmethod
    def of(cls, config: Config, queue: Queue | None) -> DashboardData:
        return cls(config, queue, _owns_queue=queue is None)

    async def get_queue(self) -> Queue:
        if self.queue is not None:
            return self.queue
        async with self._lock:
            if self.queue is None:
                pool = await create_pool(self.config, max_size=POOL_SIZE)
                self.queue = Queue(pool, self.config, owns_pool=True)
            return self.queue

    async def close(self) -> None:
        if self._owns_queue and self.queue is not None:
            queue, self.queue = self.queue, None
            await queue.close()

    async def activity(self) -> Activity:
        cached = self._activity
        if cached is not None and time.monotonic() - cached[0] < ACTIVITY_TTL:
            return cached[1]
        queue = await self.get_queue()
        store = ActivityStore(queue.pool)
        finishes = await store.recent_finishes(ACTIVITY_LIMIT, MINUTES * 60.0)
        workers = await store.recent_workers(ACTIVITY_LIMIT, DAEMON_WINDOW)
        per_queue: dict[str, list[tuple[int, int]]] = defaultdict(lambda: [(0, 0)] * MINUTES)
        completed = failed = 0
        minutes: set[int] = set()
        for row in finishes:
            if 0 <= row.minute < MINUTES:
                per_queue[row.queue_name][row.minute] = (row.completed, row.failed)
                minutes.add(row.minute)
            completed += row.completed
            failed += row.failed
        limited = completed >= ACTIVITY_LIMIT or failed >= ACTIVITY_LIMIT
        activity = Activity(dict(per_queue), covered(limited, minutes), workers)
        self._activity = (time.monotonic(), activity)
        return activity

    async def overview(self) -> Overview:
        queue = await self.get_queue()
        infos = await queue.queues()
        activity = await self.activity()
        cards = [
            QueueCard(info, activity.chart(info.name), len(activity.workers_of(info.name)))
            for info in infos
        ]
        totals = {state: sum(info.counts[state] for info in infos) for state in COUNTED_STATES}
        chart = activity.chart(width=720, height=90)
        return Overview(cards, totals, chart, activity.workers)
