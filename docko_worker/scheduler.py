"""The periodic scheduler: enqueues each due slot of this daemon's periodic jobs, once per fleet.

Every daemon runs one. It reads the database's clock, works out which slots of each schedule are
due and not yet decided, and for each runs one statement (``enqueue_periodic_slot``) that advances
the schedule's row in ``docko_periodic`` to the slot and inserts the job, due at the slot,
together. The row's guard (``decided_slot < slot``) lets exactly one daemon's statement through;
the others wait on its row lock and change nothing. No leader, no host clock: a daemon that dies
between slots leaves the next slot to whichever daemon gets there first.

Which slots are due: every slot that fell while this daemon ran (since its first pass, or since
its last failed pass: a database outage breaks the run), so a pass that comes late (a blocked event
loop, a slow statement) still enqueues each slot it passed, up to ``MAX_BACKFILL``; of the slots
that fell before, while no daemon of the fleet ran, only the latest. A fleet that was down enqueues
one catch-up slot, not the backlog.

Between passes it sleeps until the earliest next slot (by the database's clock, at most a minute).
On start it declares its schedules (``register_periodic``): a new or changed schedule begins at its
next slot. About once a minute it marks its schedules as still run (``seen_at``, shown by
``docko-worker periodic``).

``run_once(now)`` does one pass and returns what it did; tests call it with a clock of their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import structlog

from .config import Config
from .db import is_transient
from .errors import describe_error
from .job import new_job_id
from .periodic import Periodic
from .retry import reconnect_delay
from .store import PeriodicRow, PeriodicStore

log = structlog.get_logger("docko_worker.scheduler")

# Longest sleep between passes, in seconds: also how often ``seen_at`` is refreshed.
MAX_SLEEP = 60.0
# Seconds past a slot the scheduler wakes, so it does not wake a hair before it.
WAKE_MARGIN = 0.002
# Backoff after a failed pass (seconds): the first retry, the cap.
RETRY_BASE, RETRY_CAP = 0.5, 30.0
# Most slots of one schedule a pass enqueues; past it, only the latest (logged).
MAX_BACKFILL = 100


@dataclass(slots=True)
class SchedulerPass:
    """What one pass did, by the database's clock ``now``."""

    now: datetime
    enqueued: list[tuple[str, datetime, UUID]] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)
    # Slots another daemon decided first (or that this daemon no longer runs: schedule changed).
    lost: list[tuple[str, datetime]] = field(default_factory=list)


class Scheduler:
    """Enqueues the slots of ``periodics`` (see the module docstring)."""

    def __init__(self, store: PeriodicStore, periodics: Sequence[Periodic], config: Config) -> None:
        self._store = store
        self._periodics = list(periodics)
        self._default_attempts = config.max_attempts
        # Per name: the latest slot this daemon knows to be decided.
        self._decided: dict[str, datetime] = {}
        # Names whose row holds another expression or time zone (a newer deployment's).
        self._replaced: set[str] = set()
        self._registered = False
        self._touched_at = time.monotonic()
        # The database time this daemon's unbroken run of passes began (None: not yet).
        self._since: datetime | None = None
        #: Per name, the latest slot this daemon enqueued.
        self.last_enqueued: dict[str, datetime] = {}

    async def register(self, now: datetime | None = None) -> list[PeriodicRow]:
        """Declare this daemon's schedules; a new or changed one starts at its next slot."""
        if now is None:
            now = await self._store.database_now()
        periodics = self._periodics
        rows = await self._store.register_periodic(
            [p.name for p in periodics],
            [p.schedule.text for p in periodics],
            [p.timezone for p in periodics],
            [p.schedule.latest_slot(now) or now for p in periodics],
        )
        for row in rows:
            self._note(row)
        self._registered = True
        log.info(
            "periodic_registered",
            schedules={p.name: p.describe() for p in periodics},
        )
        return rows

    def _note(self, row: PeriodicRow) -> None:
        periodic = next(p for p in self._periodics if p.name == row.name)
        self._decided[row.name] = row.decided_slot
        if (row.schedule, row.timezone) == (periodic.schedule.text, periodic.timezone):
            self._replaced.discard(row.name)
        elif row.name not in self._replaced:
            self._replaced.add(row.name)
            log.warning(
                "periodic_schedule_replaced",
                name=row.name,
                ours=periodic.describe(),
                timezone=periodic.timezone,
                database=row.schedule,
                database_timezone=row.timezone,
                note="another daemon declared this schedule since; it enqueues the slots",
            )

    async def run_once(self, now: datetime | None = None) -> SchedulerPass:
        """One pass: enqueue every due slot not yet decided. ``now`` defaults to the database's
        clock; a pass that finds nothing due runs no other statement."""
        if not self._registered:
            await self.register(now)
        if now is None:
            now = await self._store.database_now()
        if self._since is None:
            self._since = now
        result = SchedulerPass(now)
        for periodic in self._periodics:
            for slot in self._due_slots(periodic, now, self._since):
                await self._decide(periodic, slot, result)
        if time.monotonic() - self._touched_at >= MAX_SLEEP:
            await self._store.touch_periodic([p.name for p in self._periodics])
            self._touched_at = time.monotonic()
        return result

    def interrupted(self) -> None:
        """This daemon's run of passes broke (a failed pass): slots until the next pass that
        succeeds count as fallen while no daemon ran."""
        self._since = None

    def _due_slots(self, periodic: Periodic, now: datetime, since: datetime) -> list[datetime]:
        """The slots to decide, in order (see the module docstring)."""
        schedule = periodic.schedule
        floor = self._decided[periodic.name]
        due: list[datetime] = []
        if floor < since:
            caught_up = schedule.latest_slot(since)
            if caught_up is not None and caught_up > floor:
                due.append(caught_up)
            floor = since
        while (following := schedule.next_slot(floor)) is not None and following <= now:
            due.append(following)
            floor = following
            if len(due) > MAX_BACKFILL:
                latest = schedule.latest_slot(now)
                assert latest is not None
                log.warning(
                    "periodic_slots_dropped",
                    name=periodic.name,
                    due_after=due[0].isoformat(),
                    enqueued=latest.isoformat(),
                    note=f"more than {MAX_BACKFILL} slots fell due in one pass: only the latest",
                )
                return [latest]
        return due

    async def _decide(self, periodic: Periodic, slot: datetime, result: SchedulerPass) -> None:
        name = periodic.name
        job_id = new_job_id()
        enqueued = await self._store.enqueue_periodic_slot(
            name=name,
            slot=slot,
            schedule=periodic.schedule.text,
            timezone=periodic.timezone,
            job_id=job_id,
            queue_name=periodic.queue_name,
            job_type=periodic.job_type,
            payload_json=periodic.payload_json,
            priority=periodic.priority,
            max_attempts=periodic.max_attempts or self._default_attempts,
            skip_if_running=periodic.skip_if_running,
        )
        if enqueued is None:
            # Decided elsewhere, declared anew by another deployment, or forgotten (deleted).
            row = await self._store.get_periodic(name)
            if row is None:
                self._registered = False
                return
            self._note(row)
            if name in self._replaced:
                self._decided[name] = max(self._decided[name], slot)
            result.lost.append((name, slot))
            return
        self._decided[name] = slot
        if enqueued:
            self.last_enqueued[name] = slot
            result.enqueued.append((name, slot, job_id))
            log.info(
                "periodic_enqueued",
                name=name,
                slot=slot.isoformat(),
                job_id=str(job_id),
                queue=periodic.queue_name,
                job_type=periodic.job_type,
            )
        else:
            result.skipped.append((name, slot))
            log.info("periodic_slot_skipped", name=name, slot=slot.isoformat(), reason="running")

    def seconds_until_next(self, now: datetime) -> float:
        """Seconds from ``now`` until the earliest next slot, at most ``MAX_SLEEP``."""
        upcoming = [
            following
            for periodic in self._periodics
            if (following := periodic.schedule.next_slot(now)) is not None
        ]
        if not upcoming:
            return MAX_SLEEP
        wait = (min(upcoming) - now).total_seconds() + WAKE_MARGIN
        return max(WAKE_MARGIN, min(MAX_SLEEP, wait))

    async def run(self) -> None:
        """Pass after pass until cancelled; a failed pass is logged and retried with backoff."""
        failures = 0
        while True:
            try:
                done = await self.run_once()
            except Exception as exc:
                self.interrupted()
                failures += 1
                delay = reconnect_delay(failures, RETRY_BASE, RETRY_CAP)
                if is_transient(exc):
                    log.warning(
                        "periodic_pass_failed", error=describe_error(exc), retry_in=round(delay, 2)
                    )
                else:
                    log.exception("periodic_pass_failed", retry_in=round(delay, 2))
            else:
                failures = 0
                delay = self.seconds_until_next(done.now)
            await asyncio.sleep(delay)
