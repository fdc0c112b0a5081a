"""``Periodic`` and its slot math, without a database: the clock is always an argument.

Slots are checked against a forward walk (``next_slot`` from slot to slot): ``latest_slot`` must
agree with it at every moment, on ordinary days, on both DST change days and around a leap day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from docko_worker import PERIODIC_ENTRY_POINT_GROUP, ConfigError, Periodic, RegistryError
from docko_worker.periodic import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
    describe_schedule,
    parse_schedule,
)
from docko_worker.registry import load_periodic_entry_points

HERE = Path(__file__).resolve().parent
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def walk(schedule: Schedule, start: datetime, end: datetime) -> Iterator[datetime]:
    at = start
    while (following := schedule.next_slot(at)) is not None and following <= end:
        yield following
        at = following


def local(slots: Iterator[datetime], zone: ZoneInfo) -> list[str]:
    return [slot.astimezone(zone).strftime("%m-%d %H:%M:%S%z") for slot in slots]


def day_of(zone: ZoneInfo, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, day, tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "day", "expected"),
    [
        ("0 2 * * *", BERLIN, (2026, 3, 29), ["03-29 03:00:00+0200"]),
        ("0 2 * * *", BERLIN, (2026, 10, 25), ["10-25 02:00:00+0200"]),
        ("30 2 * * *", NEW_YORK, (2026, 3, 8), ["03-08 03:00:00-0400"]),
        ("30 1 * * *", NEW_YORK, (2026, 11, 1), ["11-01 01:30:00-0400"]),
        # Six fields with a fixed second: the same rules, that many seconds later.
        ("15 0 2 * * *", BERLIN, (2026, 3, 29), ["03-29 03:00:15+0200"]),
        ("15 0 2 * * *", BERLIN, (2026, 10, 25), ["10-25 02:00:15+0200"]),
        # '*' in the hour field follows the real hours: the day going back has one more.
        ("0 * * * *", BERLIN, (2026, 10, 25), None),
    ],
)
def test_cron_slots_on_dst_days(
    expression: str, zone: ZoneInfo, day: tuple[int, int, int], expected: list[str] | None
) -> None:
    schedule = CronSchedule.parse(expression, str(zone))
    start, end = day_of(zone, *day)
    found = local(walk(schedule, start - timedelta(seconds=1), end - timedelta(seconds=1)), zone)
    if expected is None:
        assert len(found) == 25
        assert found[2:4] == ["10-25 02:00:00+0200", "10-25 02:00:00+0100"]
    else:
        assert found == expected


@pytest.mark.parametrize(
    ("expression", "zone", "day"),
    [
        ("0 2 * * *", BERLIN, (2026, 3, 29)),
        ("0 2 * * *", BERLIN, (2026, 10, 25)),
        ("*/20 1-3 * * *", BERLIN, (2026, 10, 25)),
        ("0,30 2 * * *", BERLIN, (2026, 10, 25)),
        ("*/7 * * * * *", BERLIN, (2026, 10, 25)),
        ("0 0 29 2 *", ZoneInfo("UTC"), (2024, 2, 29)),
    ],
)
def test_latest_slot_agrees_with_the_forward_walk(
    expression: str, zone: ZoneInfo, day: tuple[int, int, int]
) -> None:
    schedule = CronSchedule.parse(expression, str(zone))
    start, end = day_of(zone, *day)
    before = schedule.latest_slot(start)
    assert before is not None
    slots = [before, *walk(schedule, before, end + timedelta(hours=3))]
    at = start
    while at < end:
        expected = max(slot for slot in slots if slot <= at)
        assert schedule.latest_slot(at) == expected, at
        at += timedelta(seconds=97)


def test_a_leap_day_expression_skips_to_the_next_leap_year() -> None:
    schedule = CronSchedule.parse("0 12 29 2 *", "UTC")
    assert schedule.next_slot(datetime(2024, 3, 1, tzinfo=UTC)) == datetime(
        2028, 2, 29, 12, tzinfo=UTC
    )
    assert schedule.latest_slot(datetime(2027, 6, 1, tzinfo=UTC)) == datetime(
        2024, 2, 29, 12, tzinfo=UTC
    )


def test_slots_at_the_exact_moment() -> None:
    schedule = CronSchedule.parse("* * * * *", "UTC")
    minute = datetime(2026, 1, 5, 10, 1, tzinfo=UTC)
    assert schedule.latest_slot(minute) == minute
    assert schedule.latest_slot(minute - timedelta(microseconds=1)) == minute - timedelta(minutes=1)
    assert schedule.next_slot(minute) == minute + timedelta(minutes=1)


def test_intervals_are_multiples_of_the_interval_since_the_epoch() -> None:
    schedule = IntervalSchedule(90_000_000)
    now = datetime(2026, 1, 5, 10, 0, 59, tzinfo=UTC)
    assert schedule.latest_slot(now) == datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
    assert schedule.next_slot(now) == datetime(2026, 1, 5, 10, 1, 30, tzinfo=UTC)
    assert schedule.next_slot(datetime(2026, 1, 5, 10, 1, 30, tzinfo=UTC)) == datetime(
        2026, 1, 5, 10, 3, tzinfo=UTC
    )


def test_stored_text_reads_back_as_the_same_schedule() -> None:
    for periodic in (
        Periodic("a", cron="0  2 * * *", timezone="Europe/Berlin", queue_name="q", job_type="t"),
        Periodic("b", every=timedelta(seconds=1.5), queue_name="q", job_type="t"),
        Periodic("c", every=60, queue_name="q", job_type="t"),
    ):
        again = parse_schedule(periodic.schedule.text, periodic.timezone)
        assert again == periodic.schedule
    assert describe_schedule("@every 1500000us") == "@every 1.5s"
    assert describe_schedule("0 2 * * *") == "0 2 * * *"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "periodic job 'nightly': bad cron expression '61 * * * *'"),
        ({"cron": "* * *"}, "3 fields, not 5 or 6"),
        ({"cron": "0 2 30 2 *"}, "Bad day-of-month"),
        ({"cron": "60 0 2 * * *"}, "Bad second"),
        ({"cron": "0 2 * * *", "timezone": "Europe/Atlantis"}, "unknown time zone"),
        ({"every": 5, "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"every": 0.5}, "every must be at least 1 second"),
        ({"every": timedelta(milliseconds=999)}, "at least 1 second"),
        ({"every": "5"}, "every must be seconds or a timedelta"),
        ({}, "exactly one of cron= and every="),
        ({"cron": "* * * * *", "every": 5}, "exactly one of cron= and every="),
        ({"every": 5, "payload": {1, 2}}, "not JSON-serializable"),
        ({"every": 5, "max_attempts": 0}, "max_attempts must be at least 1"),
        ({"every": 5, "priority": "high"}, "priority must be an integer"),
        ({"every": 5, "queue_name": ""}, "queue_name must be a non-empty string"),
    ],
)
def test_a_mistake_names_the_schedule(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"queue_name": "q", "job_type": "t", **options}
    with pytest.raises(ConfigError, match="periodic job 'nightly'") as raised:
        Periodic("nightly", **arguments)  # type: ignore[arg-type]
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


# Entry points


@pytest.fixture
def helper_modules_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


def entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=PERIODIC_ENTRY_POINT_GROUP)


@pytest.mark.usefixtures("helper_modules_importable")
def test_entry_points_give_a_periodic_or_a_list_of_them() -> None:
    loaded = load_periodic_entry_points(
        [
            entry_point("nightly", "schedules_for_registry:NIGHTLY"),
            entry_point("more", "schedules_for_registry:TWO"),
        ]
    )
    assert [periodic.name for periodic in loaded] == ["nightly", "hourly", "recheck"]


@pytest.mark.usefixtures("helper_modules_importable")
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["schedules_for_registry:NIGHTLY", "schedules_for_registry:NIGHTLY_AGAIN"],
            "two periodic jobs named 'nightly'",
        ),
        (["schedules_for_registry:NOT_A_PERIODIC"], "must be a Periodic or a list of them"),
        (
            ["schedules_that_do_not_build:BROKEN"],
            "does not import: ConfigError: periodic job 'broken-nightly': bad cron expression",
        ),
    ],
)
def test_entry_point_mistakes_are_one_line_naming_the_culprit(
    values: list[str], message: str
) -> None:
    found = [entry_point(f"e{n}", value) for n, value in enumerate(values)]
    with pytest.raises(RegistryError) as raised:
        load_periodic_entry_points(found)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
