"""``lanes.Lanes``: where each lane's claim begins, and what brings a lane back to its start."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from docko_worker.job import Job, JobState
from docko_worker.lanes import Lanes

NOW = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
START = (-(2**31), -math.inf)


def job(
    queue: str = "mail", job_type: str = "ocr", priority: int = 0, run_at: datetime = NOW
) -> Job:
    return Job(uuid4(), queue, job_type, {}, JobState.RUNNING, 1, 5, priority, run_at, NOW, NOW)


def starts(lanes: Lanes, *, from_start: bool = False) -> dict[tuple[str, str], tuple[int, float]]:
    bounds = lanes.bounds(from_start=from_start)
    keys = zip(bounds.queues, bounds.job_types, strict=True)
    places = zip(bounds.after_priority, bounds.after_run_at, strict=True)
    return dict(zip(keys, places, strict=True))


def test_every_lane_of_the_queues_and_types_starts_from_its_start() -> None:
    lanes = Lanes(["mail", "print"], ["ocr", "pdf"])
    assert len(lanes) == 4
    assert starts(lanes) == {
        ("mail", "ocr"): START,
        ("mail", "pdf"): START,
        ("print", "ocr"): START,
        ("print", "pdf"): START,
    }


def test_a_lane_starts_at_the_last_job_claimed_from_it_a_millisecond_early() -> None:
    lanes = Lanes(["mail"], ["ocr", "pdf"])
    later = NOW + timedelta(seconds=1)
    lanes.advance([job(run_at=later), job(run_at=NOW), job(priority=-1, run_at=later)])
    lanes.advance([job(priority=3, run_at=NOW)])
    placed = starts(lanes)
    assert placed[("mail", "pdf")] == START
    priority, run_at = placed[("mail", "ocr")]
    assert priority == 3
    # Floored to the millisecond, then a millisecond more: never past a job due at that moment.
    assert NOW.timestamp() - 0.0021 < run_at < NOW.timestamp() - 0.0001
    assert starts(lanes, from_start=True)[("mail", "ocr")] == START


def test_a_notice_of_jobs_before_a_cursor_brings_that_lane_back() -> None:
    lanes = Lanes(["mail", "print"], ["ocr", "pdf"])
    lanes.advance(
        [job(priority=2), job(job_type="pdf", priority=2), job(queue="print", priority=2)]
    )
    due = NOW.timestamp()
    before = starts(lanes)
    lanes.notice("mail", priority=2, due=due + 1)  # after the cursors: nothing changes
    assert starts(lanes) == before
    assert START not in (before[("mail", "ocr")], before[("mail", "pdf")], before[("print", "ocr")])
    lanes.notice("mail", priority=1, due=due + 1)  # a better priority: behind every mail cursor
    placed = starts(lanes)
    assert placed[("mail", "ocr")] == placed[("mail", "pdf")] == START
    assert placed[("print", "ocr")] != START
    lanes.notice("print", priority=2, due=due - 60)  # due earlier (committed late)
    assert starts(lanes)[("print", "ocr")] == START


def test_a_notice_that_says_nothing_brings_the_queues_lanes_back() -> None:
    lanes = Lanes(["mail", "print"], ["ocr"])
    lanes.advance([job(), job(queue="print")])
    lanes.notice("mail", priority=None, due=None)
    placed = starts(lanes)
    assert placed[("mail", "ocr")] == START and placed[("print", "ocr")] != START
    lanes.restart()
    assert set(starts(lanes).values()) == {START}


def test_without_cursors_every_claim_reads_every_lane_from_its_start() -> None:
    lanes = Lanes(["mail"], ["ocr"], cursors=False)
    lanes.advance([job(priority=4)])
    assert starts(lanes) == {("mail", "ocr"): START}
