"""``HeldJobs``: the process's bookkeeping of its jobs from claim to written outcome."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from docko_worker import Job, JobState
from docko_worker.executor import Execution
from docko_worker.held import HeldJobs
from docko_worker.job import new_job_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(attempt: int = 1) -> Job:
    return Job(new_job_id(), "default", "ocr", {}, JobState.RUNNING, attempt, 3, 0, NOW, NOW, NOW)


async def test_a_job_holds_its_slot_from_claim_until_it_settles() -> None:
    held = HeldJobs()
    first, second = job(), job()
    held.add([first, second])
    assert held.free_slots(4) == 2
    execution = Execution(first, asyncio.current_task())  # type: ignore[arg-type]
    held.start(execution)
    assert held.running() == [execution]
    assert held.execution(first.id) is execution

    held.settle(first)
    assert held.free_slots(4) == 3
    assert held.running() == []
    assert held.slot_free.is_set()
    # Settled is not forgotten: its lease is still extended until the outcome is written.
    assert held.holds(first) and held.awaiting_write(first)
    assert {j.id for j in held.leased()} == {first.id, second.id}

    held.release([first])
    assert not held.holds(first) and not held.awaiting_write(first)
    assert len(held) == 1


async def test_a_job_handed_back_unstarted_frees_its_slot() -> None:
    held = HeldJobs()
    unstarted = job()
    held.add([unstarted])
    held.settle(unstarted)
    assert held.free_slots(1) == 1
    assert held.awaiting_write(unstarted)


async def test_release_ignores_another_attempt_of_the_same_job() -> None:
    held = HeldJobs()
    second_attempt = job(attempt=2)
    held.add([second_attempt])
    held.release([dataclasses.replace(second_attempt, attempt=1)])
    assert held.holds(second_attempt)


async def test_settling_one_run_leaves_a_newer_run_of_the_same_job_running() -> None:
    held = HeldJobs()
    old = job(attempt=1)
    new = dataclasses.replace(old, attempt=2)
    held.add([old])
    held.start(Execution(old, asyncio.current_task()))  # type: ignore[arg-type]
    held.add([new])
    newer = Execution(new, asyncio.current_task())  # type: ignore[arg-type]
    held.start(newer)
    held.settle(old)
    assert held.running() == [newer]
