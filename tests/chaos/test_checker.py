"""The checker itself, on hand-made rows: it must catch what the chaos tests rely on it to catch.

No database and no daemon: rows are plain dicts shaped like the checker's queries' results.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chaos_checker import Faults, Result, check, check_slots

pytestmark = pytest.mark.chaos

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PID = 1000


def job(job_id: uuid.UUID, state: str, attempt: int, last_error: str | None = None) -> Any:
    return {
        "id": job_id,
        "state": state,
        "attempt": attempt,
        "max_attempts": 3,
        "last_error": last_error,
    }


def run(
    job_id: uuid.UUID, attempt: int, outcome: str | None, *, pid: int = PID, at: int = 0
) -> Any:
    started = T0 + timedelta(seconds=at)
    return {
        "run_id": uuid.uuid4(),
        "job_id": job_id,
        "attempt": attempt,
        "pid": pid,
        "started_at": started,
        "finished_at": None if outcome is None else started + timedelta(milliseconds=20),
        "outcome": outcome,
    }


def checked(jobs: list[Any], runs: list[Any], faults: Faults | None = None) -> Result:
    return check("test", [row["id"] for row in jobs], jobs, runs, faults or Faults())


def test_a_clean_run_has_no_problems() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    result = checked(
        [
            job(a, "completed", 1),
            job(b, "completed", 2, "ChaosFailure: x"),
            job(c, "failed", 3, "ChaosFailure: x"),
        ],
        [
            run(a, 1, "ok"),
            run(b, 1, "fail"),
            run(b, 2, "ok", at=1),
            *(run(c, n, "fail", at=n) for n in (1, 2, 3)),
        ],
    )
    assert result.problems == []
    assert (result.jobs, result.executions, result.completed, result.failed) == (3, 6, 2, 1)


def test_a_lost_job_is_counted_and_a_problem() -> None:
    present = uuid.uuid4()
    result = check(
        "test",
        [present, uuid.uuid4()],
        [job(present, "completed", 1)],
        [run(present, 1, "ok")],
        Faults(),
    )
    assert result.lost == 1
    assert any("lost" in problem for problem in result.problems)


@pytest.mark.parametrize("state", ["running", "available"])
def test_an_unfinished_job_is_a_problem(state: str) -> None:
    a = uuid.uuid4()
    result = checked([job(a, state, 1)], [run(a, 1, None)])
    assert any(f"left {state}" in problem for problem in result.problems)


def test_an_unexplained_duplicate_is_a_problem_and_a_kill_explains_it() -> None:
    a = uuid.uuid4()
    jobs = [job(a, "completed", 2)]
    runs = [run(a, 1, "ok", pid=1), run(a, 2, "ok", pid=2, at=3)]
    assert any("duplicate" in problem for problem in checked(jobs, runs).problems)
    explained = checked(jobs, runs, Faults(killed={1: T0.timestamp() + 1}))
    assert explained.problems == []
    assert explained.duplicate_count == 1


def test_failing_before_the_last_attempt_needs_a_permanent_error() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    result = checked(
        [job(a, "failed", 1, "RuntimeError: x"), job(b, "failed", 1, "BadPayload: x")],
        [run(a, 1, "fail"), run(b, 1, "permanent")],
    )
    assert len(result.problems) == 1 and str(a) in result.problems[0]


def test_an_attempt_spent_without_a_run_needs_an_expired_lease() -> None:
    a = uuid.uuid4()
    jobs = [job(a, "completed", 2)]
    runs = [run(a, 2, "ok")]
    assert any("never ran" in problem for problem in checked(jobs, runs).problems)
    faults = Faults(lease_expired={(a, 1)})
    result = checked(jobs, runs, faults)
    assert result.problems == []
    assert result.unexecuted_claims == 1


def test_a_second_run_of_one_attempt_needs_a_hand_back() -> None:
    a = uuid.uuid4()
    jobs = [job(a, "completed", 1)]
    runs = [run(a, 1, None), run(a, 1, "ok", at=2)]
    assert any("more than once" in problem for problem in checked(jobs, runs).problems)
    faults = Faults()
    faults.released[(a, 1)] += 1
    result = checked(jobs, runs, faults)
    assert result.problems == []
    assert result.handed_back_runs == 1


def test_attempts_beyond_max_attempts_are_a_problem() -> None:
    a = uuid.uuid4()
    result = checked(
        [job(a, "failed", 4, "ChaosFailure: x")],
        [run(a, n, "fail", at=n) for n in (1, 2, 3, 4)],
    )
    assert any("exceeds max_attempts" in problem for problem in result.problems)


# Periodic slots


def second(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


RAN = [(second(0), second(20)), (second(5), second(12)), (second(30), second(40))]


def test_slots_of_a_fleet_with_a_downtime_and_a_catch_up_have_no_problems() -> None:
    result = check_slots([second(n) for n in (*range(1, 21), 29, *range(31, 40))], 1.0, RAN)
    assert result.problems == []
    assert (result.slots, result.caught_up, result.downtimes) == (30, 1, 1)


def test_a_slot_twice_or_missing_while_a_daemon_ran_is_a_problem() -> None:
    slots = [second(n) for n in (*range(1, 21), 29, *range(31, 40))]
    doubled = check_slots([*slots, second(7)], 1.0, RAN)
    assert any("enqueued 2 times" in problem for problem in doubled.problems)
    missing = check_slots([slot for slot in slots if slot != second(15)], 1.0, RAN)
    assert any("missing although a daemon ran" in problem for problem in missing.problems)


def test_a_backlog_or_a_stale_catch_up_after_downtime_is_a_problem() -> None:
    backlog = check_slots([second(n) for n in (*range(1, 29), *range(29, 40))], 1.0, RAN)
    assert any("the backlog" in problem for problem in backlog.problems)
    stale = check_slots([second(n) for n in (*range(1, 21), 22, *range(31, 40))], 1.0, RAN)
    assert any("is not the latest" in problem for problem in stale.problems)
