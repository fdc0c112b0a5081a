"""``Periodic``, a job enqueued on a schedule, and the slot math of its schedule.

A schedule is a cron expression (5 fields; 6 with seconds first) in a time zone, or an interval
(``every``, at least one second). Its **slots** are the instants at which it fires, as aware UTC
datetimes; everything here is pure: the clock is always an argument.

- Cron slots come from cronsim, on the wall clock of the ``zoneinfo`` time zone, as Debian's cron
  fires: an expression that names fixed minutes and hours (``0 2 * * *``) runs once on the day the
  clocks go forward (at the first minute after the gap, 03:00 in Europe/Berlin) and once on the
  day they go back (at the first 02:00); one with ``*`` in the minute or hour field follows the
  real hours, which the day going back has one more of. A 6-field expression with a fixed seconds
  field behaves as its 5 fields plus that many seconds.
- Interval slots are the multiples of the interval since 1970-01-01 00:00 UTC, whatever the time
  zone: every daemon computes the same slots without talking to the others.

``latest_slot(now)`` is the last slot at or before ``now``; ``next_slot(after)`` the first slot
strictly after ``after``. Both are defined by walking forward, so the one sequence of slots they
describe is the same however they are asked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, DockoError
from .payloads import check_text, encode_payload

PERIODIC_ENTRY_POINT_GROUP = "docko_worker.periodic"

# How an interval is written in ``docko_periodic.schedule`` and by the CLI (robfig/cron's form).
_EVERY_PREFIX = "@every "
_EVERY_TEXT = re.compile(r"^@every (\d+)us$")
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Reverse and forward look-ups past this many steps mean the expression never fires in practice.
_MAX_STEPS = 10_000


class Schedule(Protocol):
    """When a periodic job fires."""

    @property
    def text(self) -> str:
        """The schedule as stored and shown: the cron expression, or ``@every <n>us``."""
        ...

    @property
    def timezone(self) -> str: ...

    def latest_slot(self, now: datetime) -> datetime | None:
        """The last slot at or before ``now`` (UTC), or None if there is none within 50 years."""
        ...

    def next_slot(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (UTC), or None within 50 years."""
        ...


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every ``micros`` microseconds, aligned to the Unix epoch."""

    micros: int
    timezone: str = "UTC"

    @property
    def text(self) -> str:
        return f"{_EVERY_PREFIX}{self.micros}us"

    def latest_slot(self, now: datetime) -> datetime:
        elapsed = (now - _EPOCH) // _MICROSECOND
        return _EPOCH + (elapsed // self.micros) * self.micros * _MICROSECOND

    def next_slot(self, after: datetime) -> datetime:
        return self.latest_slot(after) + self.micros * _MICROSECOND


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A cron expression on the wall clock of ``timezone``."""

    expression: str
    timezone: str
    zone: ZoneInfo = field(compare=False)
    # cronsim's expression: 5 fields, with a 6-field expression's fixed seconds moved to offset.
    _fields: str = field(compare=False)
    _offset: timedelta = field(compare=False)

    @classmethod
    def parse(cls, expression: str, timezone: str) -> CronSchedule:
        """Raises ``ValueError`` naming what is wrong with the expression or the time zone."""
        zone = load_zone(timezone)
        text = " ".join(expression.split())
        parts = text.split(" ")
        if len(parts) not in (5, 6):
            raise ValueError(f"bad cron expression {expression!r}: {len(parts)} fields, not 5 or 6")
        fields, offset = text, timedelta(0)
        if len(parts) == 6 and parts[0].isdigit():
            # cronsim applies Debian's DST rules to 5-field expressions only.
            if int(parts[0]) > 59:
                raise ValueError(f"bad cron expression {expression!r}: Bad second")
            fields, offset = " ".join(parts[1:]), timedelta(seconds=int(parts[0]))
        # Imported here: a daemon without cron schedules never needs cronsim.
        from cronsim import CronSim, CronSimError

        try:
            CronSim(fields, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise ValueError(f"bad cron expression {expression!r}: {exc}") from None
        return cls(text, timezone, zone, fields, offset)

    @property
    def text(self) -> str:
        return self.expression

    def _forward(self, start: datetime) -> Iterator[datetime]:
        from cronsim import CronSim

        local = (start - self._offset).astimezone(self.zone)
        for slot in CronSim(self._fields, local):
            yield slot.astimezone(UTC) + self._offset

    def next_slot(self, after: datetime) -> datetime | None:
        # On the day the clocks go back, cronsim may start from the first pass of the repeated
        # hour although ``after`` lies in the second: skip what is not after it.
        for steps, slot in enumerate(self._forward(after)):
            if slot > after:
                return slot
            if steps > _MAX_STEPS:
                break
        return None

    def latest_slot(self, now: datetime) -> datetime | None:
        # cronsim's reverse walk gives a slot at or before ``now`` (an estimate in the hour the
        # clocks repeat); the forward walk from it is the definition.
        from cronsim import CronSim

        start = (now - self._offset).astimezone(self.zone).replace(microsecond=0)
        estimate: datetime | None = None
        for steps, slot in enumerate(CronSim(self._fields, start + timedelta(seconds=1), True)):
            candidate = slot.astimezone(UTC) + self._offset
            if candidate <= now:
                estimate = candidate
                break
            if steps > _MAX_STEPS:
                return None
        if estimate is None:
            return None
        while (following := self.next_slot(estimate)) is not None and following <= now:
            estimate = following
        return estimate


def load_zone(timezone: str) -> ZoneInfo:
    """The ``zoneinfo`` time zone; ``ValueError`` naming it when it is unknown."""
    if not isinstance(timezone, str) or not timezone:
        raise ValueError(f"time zone must be a non-empty string, got {timezone!r}")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None


def interval_micros(every: float | timedelta) -> int:
    """``every`` (seconds, or a timedelta) in whole microseconds; ``ValueError`` below 1 s."""
    if isinstance(every, bool) or not isinstance(every, int | float | timedelta):
        raise ValueError(f"every must be seconds or a timedelta, got {every!r}")
    seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
    if not math.isfinite(seconds) or seconds < 1:
        raise ValueError(f"every must be at least 1 second, got {every!r}")
    return round(seconds * 1_000_000)


def parse_schedule(text: str, timezone: str) -> Schedule:
    """The schedule stored as ``text`` (see ``Schedule.text``); ``ValueError`` when it is bad."""
    match = _EVERY_TEXT.match(text)
    if match:
        return IntervalSchedule(int(match.group(1)), timezone)
    return CronSchedule.parse(text, timezone)


def describe_schedule(text: str) -> str:
    """``text`` for people: an interval in seconds (``@every 90s``), a cron expression as is."""
    match = _EVERY_TEXT.match(text)
    if not match:
        return text
    return f"{_EVERY_PREFIX}{int(match.group(1)) / 1_000_000:g}s"


@dataclass(frozen=True, slots=True)
class PeriodicInfo:
    """A schedule as the database knows it (``Queue.list_periodic``, ``docko-worker periodic``).

    ``schedule`` is the stored text (``@every <n>us`` for an interval; ``describe_schedule`` turns
    it into seconds); times are aware datetimes, None where there is none yet.
    """

    name: str
    schedule: str
    timezone: str
    next_slot: datetime | None
    last_slot: datetime | None
    last_job_id: UUID | None
    seen_at: datetime


@dataclass(frozen=True)
class Periodic:
    """A job of ``job_type`` enqueued into ``queue_name`` at every slot of its schedule.

    Exactly one of ``cron`` (5 fields, or 6 with seconds first) and ``every`` (seconds or a
    ``timedelta``, at least 1 s). ``timezone`` is the ``zoneinfo`` name the cron expression is
    read in. With ``skip_if_running``, a slot whose previous job is still available or running is
    skipped instead of enqueued. A mistake raises ``ConfigError`` naming the schedule.
    """

    name: str
    _: KW_ONLY
    cron: str | None = None
    every: float | timedelta | None = None
    queue_name: str
    job_type: str
    payload: Any = None
    timezone: str = "UTC"
    priority: int = 0
    max_attempts: int | None = None
    skip_if_running: bool = False
    schedule: Schedule = field(init=False, repr=False, compare=False)
    payload_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", self._checked_schedule())
        object.__setattr__(self, "payload_json", self._encoded_payload())

    def _fail(self, problem: str) -> ConfigError:
        return ConfigError(f"periodic job {self.name!r}: {problem}")

    def _checked_schedule(self) -> Schedule:

        try:
            check_text("name", self.name)
            check_text("queue_name", self.queue_name)
            check_text("job_type", self.job_type)
        except DockoError as exc:
            raise self._fail(str(exc)) from None
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise self._fail(f"priority must be an integer, got {self.priority!r}")
        if self.max_attempts is not None and (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise self._fail(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if (self.cron is None) == (self.every is None):
            raise self._fail("give exactly one of cron= and every=")
        try:
            if self.cron is not None:
                if not isinstance(self.cron, str):
                    raise ValueError(f"cron must be a string, got {self.cron!r}")
                return CronSchedule.parse(self.cron, self.timezone)
            load_zone(self.timezone)
            assert self.every is not None
            return IntervalSchedule(interval_micros(self.every), self.timezone)
        except ValueError as exc:
            raise self._fail(str(exc)) from None

    def _encoded_payload(self) -> str:

        try:
            return encode_payload(self.payload)
        except DockoError as exc:
            raise self._fail(str(exc)) from None

    def describe(self) -> str:
        """The schedule for people: the cron expression or ``@every 30s``."""
        return describe_schedule(self.schedule.text)
