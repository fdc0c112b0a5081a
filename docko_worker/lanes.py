"""``Lanes``: what a daemon's claim reads, one lane per served queue and handled job type, and
where in each lane its claimable jobs begin, as far as this daemon knows.

Every claimed job leaves its entry in the claim index until vacuum removes it. Normally the next
scan that finds such an entry marks it dead and steps over it for free from then on; while any
transaction holds an older snapshot (a long report, a session left idle in transaction) it
cannot, and a claim that reads a lane from its start visits every job claimed since that
snapshot was taken: at 1,000 jobs a second, 120,000 heap visits per claim after two minutes.

So each lane keeps a cursor: the priority and due time (a millisecond early) of the last job
this daemon claimed from it, and the claim starts there. Nothing claimable is left behind
it by the claims themselves: a claim takes each lane's jobs in order, stepping only over those
another claim has locked. What can appear behind a cursor, and what brings the lane back to its
start:

- an enqueue of a job due earlier, or of a better priority (a transaction that enqueued long
  before it committed, an explicit past ``run_at``), jobs another daemon hands back as it stops
  (they keep their due time), jobs rescued from a dead daemon (they may be of a better
  priority): the notification names the earliest due time and the best priority, and a cursor
  past them is dropped;
- a notification that names no due time (an operator's retry, a periodic slot): the queue's
  lanes start again;
- a delayed job or retry whose due time came: the alarm's claim reads every lane from its start;
- anything no notification announces (a claim that failed after locking, a retry of a better
  priority by another daemon): every ``FULL_CLAIM_INTERVAL`` seconds, and on every poll, a claim
  reads every lane from its start.

Without LISTEN (``DOCKO_LISTEN=false``) there are no notifications to rely on, and every claim
reads every lane from its start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from .job import Job

# Seconds between two claims that read every lane from its start even while claims keep coming
# back full: the longest a job that appeared behind a cursor unannounced waits.
FULL_CLAIM_INTERVAL = 10.0

# The bound of a lane read from its start: below every priority and every due time.
_NO_PRIORITY = -(2**31)
_NO_TIME = -math.inf


class LaneBounds(NamedTuple):
    """The claim's lanes as parallel arrays: queue, job type, and where each lane starts."""

    queues: list[str]
    job_types: list[str]
    after_priority: list[int]
    after_run_at: list[float]


def _floored(moment: datetime) -> float:
    """Epoch seconds floored to the millisecond, less one more: before ``moment`` however the
    floats round on either side, so a bound never passes over a job due at the same moment."""
    return math.floor(moment.timestamp() * 1000) / 1000 - 0.001


class Lanes:
    """The lanes of ``queues`` x ``job_types``, with a cursor each when ``cursors`` is on."""

    def __init__(
        self, queues: Sequence[str], job_types: Sequence[str], *, cursors: bool = True
    ) -> None:
        self.keys = [(queue, job_type) for queue in queues for job_type in job_types]
        self._queues = [queue for queue, _ in self.keys]
        self._types = [job_type for _, job_type in self.keys]
        self.cursors_on = cursors
        self._after: dict[tuple[str, str], tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def bounds(self, *, from_start: bool = False) -> LaneBounds:
        """The lanes to claim from: where each starts, or all from their start."""
        after = {} if from_start or not self.cursors_on else self._after
        start = (_NO_PRIORITY, _NO_TIME)
        starts = [after.get(key, start) for key in self.keys]
        return LaneBounds(
            self._queues,
            self._types,
            [priority for priority, _ in starts],
            [run_at for _, run_at in starts],
        )

    def advance(self, jobs: Iterable[Job]) -> None:
        """Claimed ``jobs``: each lane's cursor moves to the last of them taken from it."""
        if not self.cursors_on:
            return
        after = self._after
        for job in jobs:
            key = (job.queue_name, job.job_type)
            here = (job.priority, _floored(job.run_at))
            if key not in after or here > after[key]:
                after[key] = here

    def notice(self, queue: str, *, priority: int | None, due: float | None) -> None:
        """New jobs in ``queue``, the best of ``priority`` (None: not said) due from ``due``
        (epoch seconds; None: not said): lanes whose cursor is past them start again."""
        arrived = None if priority is None or due is None else (priority, due)
        for key, after in list(self._after.items()):
            if key[0] == queue and (arrived is None or arrived <= after):
                del self._after[key]

    def restart(self) -> None:
        """Every lane starts from its start again."""
        self._after.clear()
