"""The checker itself, on hand-made rows: it must catch what the chaos tests rely on it to catch.

No database and no daemon: rows are plain dicts shaped like the checker's queries' results.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chaos_checker import Cancel, Faults, Result, Retry, check, check_slots

pytestmark = pytest.mark.chaos

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PID = 1000


def job(
    job_id: uuid.UUID,
    state: str,
    attempt: int,
    last_error: str | None = None,
    *,
    max_attempts: int = 3,
    cancel_requested: bool = False,
) -> Any:
    return {
        "id": job_id,
        "state": state,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "last_error": last_error,
        "cancel_requested": cancel_requested,
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


# An operator's cancels and retries


CANCELLED = "Cancelled: chaos operator"


def cancel(job_id: uuid.UUID, at: float, state: str, attempt: int) -> Cancel:
    """A cancel sent ``at`` seconds after T0 that returned the job ``state`` at ``attempt``."""
    return Cancel(job_id, T0.timestamp() + at, state, attempt)


def retry(
    job_id: uuid.UUID,
    at: float,
    seen: str,
    attempt: int,
    *,
    seen_max: int = 3,
    seen_error: str | None = None,
    state: str = "available",
) -> Retry:
    """A retry sent ``at`` seconds after T0 of a job the operator read ``seen`` at ``attempt``."""
    if seen_error is None:
        seen_error = CANCELLED if seen == "cancelled" else "ChaosFailure: x"
    return Retry(
        job_id,
        T0.timestamp() + at,
        seen_state=seen,
        seen_max_attempts=seen_max,
        seen_last_error=seen_error,
        seen_cancel_requested=seen == "cancelled",
        state=state,
        attempt=attempt,
        max_attempts=max(seen_max, attempt + 1),
    )


def operated(
    jobs: list[Any],
    runs: list[Any],
    cancels: Sequence[Cancel] = (),
    retries: Sequence[Retry] = (),
    *,
    cancelled_runs: set[tuple[uuid.UUID, int]] | None = None,
) -> Result:
    faults = Faults(cancels=list(cancels), retries=list(retries))
    faults.cancelled_runs = cancelled_runs or set()
    return checked(jobs, runs, faults)


def test_cancels_and_retries_by_the_rules_have_no_problems() -> None:
    running, waiting, failed, twice, finished_first = (uuid.uuid4() for _ in range(5))
    result = operated(
        [
            # Cancelled while running: its handler interrupted, the daemon logged it.
            job(running, "cancelled", 1, CANCELLED, cancel_requested=True),
            # Cancelled while it waited, never claimed.
            job(waiting, "cancelled", 0, CANCELLED, cancel_requested=True),
            # Failed on its last attempt, retried: attempt 4 of 4 completed it.
            job(failed, "completed", 4, "ChaosFailure: x", max_attempts=4),
            # Cancelled running, retried, cancelled running again, retried, completed.
            job(twice, "completed", 3, CANCELLED),
            # Asked to stop, but its handler finished first: the success stands.
            job(finished_first, "completed", 1, cancel_requested=True),
        ],
        [
            run(running, 1, None),
            *(run(failed, n, "fail", at=n) for n in (1, 2, 3)),
            run(failed, 4, "ok", at=11),
            run(twice, 1, None),
            run(twice, 2, "ok", at=11),  # recorded ok as the cancel struck
            run(twice, 3, "ok", at=21),
            run(finished_first, 1, "ok"),
        ],
        [
            cancel(running, 1, "running", 1),
            cancel(waiting, 1, "cancelled", 0),
            cancel(twice, 1, "running", 1),
            cancel(twice, 12, "running", 2),
            cancel(twice, 15, "cancelled", 2),  # already cancelled: nothing changed
            cancel(finished_first, 1, "running", 1),
        ],
        [
            retry(failed, 10, "failed", 3),
            retry(twice, 10, "cancelled", 1),
            retry(twice, 20, "cancelled", 2),
        ],
        cancelled_runs={(running, 1), (twice, 1), (twice, 2)},
    )
    assert result.problems == []
    assert (result.completed, result.cancelled, result.retried, result.retried_completed) == (
        3,
        2,
        2,
        2,
    )
    assert result.duplicate_count == 0
    assert result.cancelled_runs == {
        "interrupted by the cancel": 2,
        "succeeded as the cancel struck": 1,
    }


def test_a_cancelled_job_claimed_again_without_a_retry_did_not_stop() -> None:
    a = uuid.uuid4()
    result = operated(
        [job(a, "cancelled", 2, CANCELLED, cancel_requested=True)],
        [run(a, 1, "fail"), run(a, 2, None, at=2)],
        [cancel(a, 1, "running", 1)],
        cancelled_runs={(a, 2)},
    )
    assert any("did not stop" in problem for problem in result.problems)


def test_cancelled_only_where_the_test_cancelled() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    uncancelled = operated([job(a, "cancelled", 1, "Cancelled")], [run(a, 1, None)])
    assert any("did not cancel it" in problem for problem in uncancelled.problems)
    # Cancelled, retried, then cancelled again by no operator (no request stored since the
    # retry); the test's later cancel found it cancelled already.
    after_retry = operated(
        [job(b, "cancelled", 2, "Cancelled")],
        [run(b, 1, None), run(b, 2, None, at=11)],
        [cancel(b, 1, "running", 1), cancel(b, 15, "cancelled", 2)],
        [retry(b, 10, "cancelled", 1)],
        cancelled_runs={(b, 1), (b, 2)},
    )
    assert any("cancelled by no operator" in problem for problem in after_retry.problems)
    assert any("no cancel of the test found it running" in p for p in after_retry.problems)
    # The failure shows what the test did to the job and what its handlers recorded.
    [history] = after_retry.histories
    assert "found the job running at attempt 1" in history
    assert "left it available at attempt 1 of 3" in history
    assert "attempt 2 started in pid 1000, never finished" in history


def test_a_cancelled_job_must_end_as_its_cancel_allows() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    result = operated(
        [
            # Cancelled while it waited, yet completed.
            job(a, "completed", 1, cancel_requested=True),
            # Asked to stop while running, yet failed.
            job(b, "failed", 1, "ChaosFailure: x", max_attempts=1, cancel_requested=True),
            # Cancelled, but last_error does not say so.
            job(c, "cancelled", 1, "ChaosFailure: x", cancel_requested=True),
        ],
        [run(a, 1, "ok", at=2), run(b, 1, "fail"), run(c, 1, "fail")],
        [
            cancel(a, 1, "cancelled", 1),
            cancel(b, 1, "running", 1),
            cancel(c, 1, "running", 1),
        ],
    )
    problems = "\n".join(result.problems)
    assert f"job {a}" in problems and "ended completed, but a cancel found it cancelled" in problems
    assert f"job {b}" in problems and "ended failed, but a cancel found it running" in problems
    assert f"job {c}" in problems and "with last_error 'ChaosFailure: x'" in problems


def test_a_cut_off_run_of_a_cancelled_job_needs_the_daemons_word_or_a_kill() -> None:
    a = uuid.uuid4()
    jobs = [job(a, "cancelled", 1, CANCELLED, cancel_requested=True)]
    cancels = [cancel(a, 1, "running", 1)]
    for outcome in (None, "ok"):
        runs = [run(a, 1, outcome)]
        unexplained = operated(jobs, runs, cancels)
        assert any("cancel found running" in problem for problem in unexplained.problems)
        assert operated(jobs, runs, cancels, cancelled_runs={(a, 1)}).problems == []
        killed = Faults(cancels=cancels, killed={PID: T0.timestamp() + 1})
        assert checked(jobs, runs, killed).problems == []


def test_a_retried_attempt_counts_on_and_starts_after_the_retry() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    jobs = [job(a, "completed", 4, max_attempts=4)]
    runs = [*(run(a, n, "fail", at=n) for n in (1, 2, 3)), run(a, 4, "ok", at=11)]
    assert operated(jobs, runs, retries=[retry(a, 10, "failed", 3)]).problems == []
    # Without the retry, attempt 4 is beyond the 3 the job had (and it failed early).
    unretried = operated([job(a, "completed", 4, max_attempts=3)], runs)
    assert any("exceeds max_attempts" in problem for problem in unretried.problems)
    early = operated(jobs, runs, retries=[retry(a, 12, "failed", 3)])
    assert any("before the retry was sent" in problem for problem in early.problems)
    # A retry that ran the failed attempt again instead of the next one.
    again = operated(
        [job(b, "completed", 1)],
        [run(b, 1, "fail"), run(b, 1, "ok", at=11)],
        retries=[retry(b, 10, "failed", 1, seen_max=1)],
    )
    assert any("more than once" in problem for problem in again.problems)


def test_a_retry_must_leave_the_job_available_with_one_more_attempt() -> None:
    a = uuid.uuid4()
    refused = operated(
        [job(a, "failed", 3, "ChaosFailure: x")],
        [run(a, n, "fail", at=n) for n in (1, 2, 3)],
        retries=[retry(a, 10, "failed", 3, state="failed")],
    )
    assert any("left it failed" in problem for problem in refused.problems)
    stingy = Retry(a, T0.timestamp() + 10, "failed", 3, "ChaosFailure: x", False, "available", 3, 3)
    no_more = operated(
        [job(a, "failed", 3, "ChaosFailure: x")],
        [run(a, n, "fail", at=n) for n in (1, 2, 3)],
        retries=[stingy],
    )
    assert any("allowed no further attempt" in problem for problem in no_more.problems)


def test_an_epoch_before_a_retry_is_held_to_the_rules() -> None:
    a = uuid.uuid4()
    # Read as failed at attempt 2 of 3 (not its last) and retried; attempt 3 completed it.
    result = operated(
        [job(a, "completed", 3)],
        [run(a, 1, "fail"), run(a, 2, "fail", at=2), run(a, 3, "ok", at=11)],
        retries=[retry(a, 10, "failed", 2, seen_max=3)],
    )
    assert any(
        "before its retry at attempt 2: failed before its last attempt" in problem
        for problem in result.problems
    )
