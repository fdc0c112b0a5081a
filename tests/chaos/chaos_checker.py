"""The checker run after every chaos run: was every job run, and run the right number of times?

It reads the jobs table, the executions the chaos handlers recorded in ``chaos_runs`` (one row per
handler start; ``finished_at`` and ``outcome`` stamped at the end, so a run whose daemon died stays
unfinished) and what the test did and the daemons logged (``Faults``), and checks:

- none lost: every enqueued id is in ``docko_jobs``;
- every job is final: ``completed``, or ``failed`` with ``last_error`` after its last attempt
  (``attempt == max_attempts``) unless its last execution raised a ``PermanentError``; nothing is
  left ``available`` or ``running``; ``attempt`` never exceeds ``max_attempts``;
- each attempt ``1..attempt`` of a job has exactly one execution, except that
  - an attempt may have none if its lease expired before the handler started (the claiming worker
    died, or its claim's answer was lost with its connection): an *unexecuted claim*, and
  - an attempt may have extra, earlier executions that were interrupted and handed back at shutdown
    without spending the attempt (``job_released``);
- every execution that did not decide its attempt's outcome is explained: an interrupted run
  (started, never finished) by a SIGKILL of its pid, an expired lease, a job timeout or a
  hand-back; a
  *duplicate*, a successful execution that is not the one that completed the job (at-least-once),
  by its worker's death (SIGKILL of its pid) or by the loss of its lease (``job_lease_expired``:
  connection terminated, database restarted, event loop blocked);
- a completed job's deciding execution succeeded, a failed job's did not (or its lease expired).

When the test acted as an operator (``Faults.cancels`` and ``Faults.retries``: each cancel and
retry it made, when, and the job as the call returned it), a job's life is cut at each retry
into *epochs*: from its enqueue or a retry to the end the next retry found (``failed`` or
``cancelled``, as the operator read it) or the row shows. Attempts count on across a retry (the
first of an epoch is the one after its retry's), and each epoch is held to the rules above with
its own end, its own ``max_attempts`` and its own deciding execution, so the attempt a retry allows
is never a duplicate. Besides:

- every execution of an epoch after a retry started after that retry was sent;
- a retry left the job ``available`` with one more attempt than it had spent;
- every cancelled job stopped: after a cancel took effect no attempt was claimed until a retry (an
  epoch's last attempt is the attempt each of its cancels found), and the epoch ended as the
  cancel allows: found ``running``, the job ends ``cancelled`` or, if its handler finished first,
  ``completed``; found ``cancelled`` it stays so; found finished, it is left as it was;
- ``cancelled`` only where the test cancelled: an epoch that ends ``cancelled`` had a cancel of
  the test and a cancel request stored with the job (``cancel_requested_at``, which a retry
  clears), and a final ``cancelled`` job's ``last_error`` starts with ``Cancelled``;
- the execution a cancel found running is explained: interrupted (the daemon logged
  ``job_cancelled``, or it was SIGKILLed, or its lease expired), failed first, or succeeded as the
  cancel struck (it recorded ``ok`` and the daemon still logged ``job_cancelled``); and a cancel
  that found the job running may leave its attempt without any execution (cancelled before the
  handler recorded its start).

Anything else is a problem; ``check`` returns them all with the counts for the report.

``check_slots`` checks a periodic schedule's slots the same way: none twice, none missing while a
daemon ran, one catch-up slot at most for each time the whole fleet was down.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

FINAL_STATES = ("completed", "failed", "cancelled")
# Outcomes the chaos handlers record.
OK, FAIL, PERMANENT, IGNORED_CANCEL = "ok", "fail", "permanent", "ignored_cancel"
# What an epoch may end as, by the state a cancel found (returned) the job in.
ENDS_AFTER_CANCEL = {
    "running": ("cancelled", "completed"),
    "cancelled": ("cancelled",),
    "completed": ("completed",),
    "failed": ("failed",),
}

JOBS_QUERY = (
    "SELECT id, state::text AS state, attempt, max_attempts, last_error,"
    " cancel_requested_at IS NOT NULL AS cancel_requested FROM docko_jobs"
)
RUNS_QUERY = (
    "SELECT run_id, job_id, attempt, pid, started_at, finished_at, outcome FROM chaos_runs"
    " ORDER BY started_at, run_id"
)


@dataclass(frozen=True, slots=True)
class Run:
    job_id: UUID
    attempt: int
    pid: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class Cancel:
    """A cancel the test made: sent at ``at`` (``time.time()``), and the job as the call returned
    it (``running``: asked to stop; ``cancelled``: cancelled at once, or already; a finished state:
    left alone)."""

    job_id: UUID
    at: float
    state: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Retry:
    """A retry the test made: sent at ``at``, the job as the operator read it just before
    (``seen_*``) and as the call returned it (``available`` when it was retried)."""

    job_id: UUID
    at: float
    seen_state: str
    seen_max_attempts: int
    seen_last_error: str | None
    seen_cancel_requested: bool
    state: str
    attempt: int
    max_attempts: int


@dataclass
class Faults:
    """What was done to the fleet and its jobs, and what the daemons logged about leases,
    hand-backs and cancellations."""

    killed: dict[int, float] = field(default_factory=dict)  # pid -> time of its SIGKILL
    terminations: list[tuple[float, int]] = field(default_factory=list)  # (time, backends)
    restarts: list[tuple[float, float]] = field(default_factory=list)  # server down .. up
    lease_expired: set[tuple[UUID, int]] = field(default_factory=set)
    released: Counter[tuple[UUID, int]] = field(default_factory=Counter)
    ignored_cancellation: set[tuple[UUID, int]] = field(default_factory=set)
    refused: set[tuple[UUID, int]] = field(default_factory=set)
    timed_out: set[tuple[UUID, int]] = field(default_factory=set)
    cancelled_runs: set[tuple[UUID, int]] = field(default_factory=set)  # job_cancelled
    cancels: list[Cancel] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Take the lease, hand-back and cancellation events out of the daemons' JSON logs."""
        for record in events:
            event, job_id, attempt = (
                record.get("event"),
                record.get("job_id"),
                record.get("attempt"),
            )
            if job_id is None or not isinstance(attempt, int):
                continue
            key = (UUID(str(job_id)), attempt)
            if event == "job_lease_expired":
                self.lease_expired.add(key)
            elif event == "job_released":
                self.released[key] += 1
            elif event == "job_ignored_cancellation":
                self.ignored_cancellation.add(key)
            elif event == "job_cancelled":
                self.cancelled_runs.add(key)
            elif event == "outcome_refused_lease_lost":
                self.refused.add(key)
            elif event in ("job_retry_scheduled", "job_failed") and str(
                record.get("error", "")
            ).startswith("JobTimeout"):
                self.timed_out.add(key)

    def in_restart(self, run: Run) -> bool:
        """Whether ``run`` was under way while the server was down."""
        started = run.started_at.timestamp()
        finished = run.finished_at.timestamp() if run.finished_at else float("inf")
        return any(started <= up and finished >= down for down, up in self.restarts)


@dataclass
class Result:
    """The counts of one run, and every problem found."""

    fault: str
    jobs: int = 0
    executions: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    lost: int = 0
    unexecuted_claims: int = 0
    handed_back_runs: int = 0
    # Jobs the test retried at least once, and those of them that then completed.
    retried: int = 0
    retried_completed: int = 0
    interrupted: Counter[str] = field(default_factory=Counter)
    # How the executions that a cancel found running ended.
    cancelled_runs: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    duplicate_examples: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # What the test did to, and the handlers recorded of, each operated job with a problem.
    histories: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def duplicate_count(self) -> int:
        return sum(self.duplicates.values())

    def summary(self) -> str:
        dup = ", ".join(f"{n} {cause}" for cause, n in sorted(self.duplicates.items()))
        intr = ", ".join(f"{n} {cause}" for cause, n in sorted(self.interrupted.items()))
        notes = "".join(f"; {key}: {value}" for key, value in self.notes.items())
        operated = (
            f", cancelled {self.cancelled}, retried {self.retried} ({self.retried_completed} then "
            "completed)"
            if self.cancelled or self.retried
            else ""
        )
        return (
            f"{self.fault}: jobs {self.jobs}, executions {self.executions}, completed "
            f"{self.completed}, failed {self.failed}{operated}, duplicates {self.duplicate_count}"
            f"{f' ({dup})' if dup else ''}, interrupted runs {sum(self.interrupted.values())}"
            f"{f' ({intr})' if intr else ''}, unexecuted claims {self.unexecuted_claims}, "
            f"handed back mid-run {self.handed_back_runs}, lost {self.lost}{notes}"
        )

    def assert_ok(self) -> None:
        if self.problems:
            shown = "\n  ".join(self.problems[:40])
            more = f"\n  ... and {len(self.problems) - 40} more" if len(self.problems) > 40 else ""
            histories = "".join(f"\n{history}" for history in self.histories[:10])
            raise AssertionError(
                f"{len(self.problems)} problem(s) after {self.fault}:\n  {shown}{more}\n"
                + self.summary()
                + histories
            )


def _why_unfinished(run: Run, faults: Faults, handed_back: bool) -> str | None:
    if handed_back:
        return "handed back at shutdown"
    if run.pid in faults.killed:
        return "its daemon was SIGKILLed"
    if (run.job_id, run.attempt) in faults.ignored_cancellation:
        return "abandoned after ignoring cancellation"
    if (run.job_id, run.attempt) in faults.timed_out:
        return "cancelled by its job timeout"
    if (run.job_id, run.attempt) in faults.lease_expired:
        return "its lease expired"
    return None


def _why_duplicate(run: Run, faults: Faults) -> tuple[str, str] | None:
    """Why a successful execution did not complete its job, if the run's record tells."""
    key = (run.job_id, run.attempt)
    what = f"job {run.job_id} attempt {run.attempt}: succeeded in pid {run.pid}"
    if run.pid in faults.killed:
        killed_at = faults.killed[run.pid]
        finished = run.finished_at.timestamp() if run.finished_at else killed_at
        return (
            "worker SIGKILLed before its completion was written",
            f"{what}, which was SIGKILLed {max(0.0, killed_at - finished):.2f}s after the run "
            "finished",
        )
    if key in faults.lease_expired:
        where = " (during the PostgreSQL restart)" if faults.in_restart(run) else ""
        if faults.terminations and not where:
            where = " (its daemon's connections were terminated)"
        return (
            "lease expired before the completion was written" + where,
            f"{what} but the lease expired (job_lease_expired){where}, so the job ran again",
        )
    if key in faults.timed_out:
        return (
            "job timeout struck as the handler returned",
            f"{what}: its last write landed, but the job timeout cancelled it on its way out",
        )
    if key in faults.released:
        return (
            "handed back at shutdown as the handler returned",
            f"{what}: its last write landed, but the shutdown cancelled it on its way out",
        )
    return None


def check(
    fault: str,
    enqueued: list[UUID],
    job_rows: list[Any],
    run_rows: list[Any],
    faults: Faults,
) -> Result:
    """Check one chaos run; see the module docstring for the rules."""
    result = Result(fault)
    jobs = {row["id"]: row for row in job_rows}
    runs: dict[UUID, list[Run]] = defaultdict(list)
    for row in run_rows:
        runs[row["job_id"]].append(
            Run(
                row["job_id"],
                row["attempt"],
                row["pid"],
                row["started_at"],
                row["finished_at"],
                row["outcome"],
            )
        )
    problems = result.problems
    result.jobs = len(enqueued)
    result.executions = sum(len(runs[job_id]) for job_id in enqueued)
    missing = [job_id for job_id in enqueued if job_id not in jobs]
    result.lost = len(missing)
    problems += [f"job {job_id} lost: not in docko_jobs" for job_id in missing[:20]]
    strays = set(runs) - set(enqueued)
    if strays:
        problems.append(f"{len(strays)} executions of jobs that were never enqueued")

    cancels: dict[UUID, list[Cancel]] = defaultdict(list)
    for cancel in sorted(faults.cancels, key=lambda cancel: cancel.at):
        cancels[cancel.job_id].append(cancel)
    retries: dict[UUID, list[Retry]] = defaultdict(list)
    for retry in sorted(faults.retries, key=lambda retry: retry.at):
        retries[retry.job_id].append(retry)

    for job_id in enqueued:
        job = jobs.get(job_id)
        if job is None:
            continue
        found = len(problems)
        job_runs = runs.get(job_id, [])
        _check_job(job, job_runs, faults, result, cancels[job_id], retries[job_id])
        if len(problems) > found and (cancels[job_id] or retries[job_id]):
            result.histories.append(
                _history(job_id, job_runs, cancels[job_id], retries[job_id], faults)
            )
    return result


def _utc(at: float) -> str:
    """``at`` as the daemons' JSON logs write times (UTC), to the millisecond."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def _history(
    job_id: UUID, runs: list[Run], cancels: list[Cancel], retries: list[Retry], faults: Faults
) -> str:
    """What the test did to an operated job and what its handlers recorded, in time order."""
    lines = [
        (c.at, f"cancel sent; it found the job {c.state} at attempt {c.attempt}") for c in cancels
    ]
    lines += [
        (
            r.at,
            f"retry sent of the job seen {r.seen_state} (max_attempts {r.seen_max_attempts}); it "
            f"left it {r.state} at attempt {r.attempt} of {r.max_attempts}",
        )
        for r in retries
    ]
    for run in runs:
        ended = (
            "never finished"
            if run.finished_at is None
            else f"finished {run.outcome} at {_utc(run.finished_at.timestamp())}"
        )
        lines.append(
            (run.started_at.timestamp(), f"attempt {run.attempt} started in pid {run.pid}, {ended}")
        )
    logged = sorted(attempt for job, attempt in faults.cancelled_runs if job == job_id)
    said = f"\n    the daemons logged job_cancelled for attempts {logged}" if logged else ""
    shown = "".join(f"\n    {_utc(at)} {line}" for at, line in sorted(lines))
    return f"  history of job {job_id}:{shown}{said}"


@dataclass(frozen=True, slots=True)
class _Epoch:
    """A stretch of one job's life: from its enqueue or a retry to the end the next retry found,
    or the row shows (see the module docstring)."""

    name: str  # the job, for problems
    first: int  # its first attempt
    last: int  # its last attempt: the job's attempt at its end
    state: str
    max_attempts: int
    last_error: str | None
    cancel_requested: bool
    cancels: list[Cancel]
    retried_at: float | None  # when the retry that began it was sent; None: the enqueue

    @property
    def cancel_found_running(self) -> bool:
        """Whether a cancel found the epoch's last attempt running."""
        return any(c.state == "running" and c.attempt == self.last for c in self.cancels)


def _epochs(name: str, job: Any, cancels: list[Cancel], retries: list[Retry]) -> list[_Epoch]:
    """``job``'s epochs, oldest first, each with the test's cancels that fell in it."""
    epochs: list[_Epoch] = []
    first, since = 1, float("-inf")
    for retry in retries:
        if retry.state != "available":
            continue  # not retried: its epoch goes on
        epochs.append(
            _Epoch(
                f"{name}, before its retry at attempt {retry.attempt}",
                first,
                retry.attempt,
                retry.seen_state,
                retry.seen_max_attempts,
                retry.seen_last_error,
                retry.seen_cancel_requested,
                [c for c in cancels if since < c.at < retry.at],
                None if since == float("-inf") else since,
            )
        )
        first, since = retry.attempt + 1, retry.at
    epochs.append(
        _Epoch(
            name if since == float("-inf") else f"{name}, after its retry at attempt {first - 1}",
            first,
            job["attempt"],
            job["state"],
            job["max_attempts"],
            job["last_error"],
            bool(job.get("cancel_requested")),
            [c for c in cancels if c.at > since],
            None if since == float("-inf") else since,
        )
    )
    return epochs


def _check_job(
    job: Any,
    runs: list[Run],
    faults: Faults,
    result: Result,
    cancels: list[Cancel],
    retries: list[Retry],
) -> None:
    problems = result.problems
    job_id, state, attempt = job["id"], job["state"], job["attempt"]
    name = (
        f"job {job_id} ({state}, attempt {attempt}/{job['max_attempts']}, "
        f"last_error {(job['last_error'] or '')[:200]!r})"
    )
    if state not in FINAL_STATES:
        problems.append(f"{name} was left {state}")
        return
    if state == "completed":
        result.completed += 1
    elif state == "failed":
        result.failed += 1
    else:
        result.cancelled += 1
    if any(retry.state == "available" for retry in retries):
        result.retried += 1
        result.retried_completed += state == "completed"
    if attempt > job["max_attempts"]:
        problems.append(f"{name}: attempt exceeds max_attempts")
    by_attempt: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_attempt[run.attempt].append(run)
    beyond = sorted(a for a in by_attempt if a > attempt or a < 1)
    if beyond:
        problems.append(f"{name}: executions recorded for attempts {beyond}")
    for retry in retries:
        if retry.state != "available":
            problems.append(
                f"{name}: a retry of it, seen {retry.seen_state}, left it {retry.state}"
            )
        elif retry.max_attempts < retry.attempt + 1:
            problems.append(
                f"{name}: a retry at attempt {retry.attempt} allowed no further attempt "
                f"(max_attempts {retry.max_attempts})"
            )
    for epoch in _epochs(name, job, cancels, retries):
        _check_epoch(epoch, job_id, by_attempt, faults, result)


def _check_epoch(
    epoch: _Epoch,
    job_id: UUID,
    by_attempt: dict[int, list[Run]],
    faults: Faults,
    result: Result,
) -> None:
    problems, name, state = result.problems, epoch.name, epoch.state
    if state not in FINAL_STATES:
        problems.append(f"{name}: retried while {state}")
        return
    _check_cancels(epoch, problems)
    if epoch.retried_at is not None:
        problems += [
            f"{name}: attempt {number} started in pid {run.pid} before the retry was sent"
            for number in range(epoch.first, epoch.last + 1)
            for run in by_attempt.get(number, [])
            if run.started_at.timestamp() <= epoch.retried_at
        ]
    if epoch.last < epoch.first:
        if state != "cancelled":
            problems.append(f"{name}: final without ever being claimed")
        return

    deciding: Run | None = None
    for number in range(epoch.first, epoch.last + 1):
        attempt_runs = by_attempt.get(number, [])
        key = (job_id, number)
        if not attempt_runs:
            if key in faults.lease_expired or (
                number == epoch.last and (epoch.last_error or "").startswith("LeaseExpired")
            ):
                result.unexecuted_claims += 1
            elif number == epoch.last and state == "cancelled" and epoch.cancel_found_running:
                result.cancelled_runs["cancelled before the handler recorded its start"] += 1
            else:
                problems.append(f"{name}: attempt {number} was spent but its handler never ran")
            continue
        releases = faults.released[key]
        *earlier, last = attempt_runs
        for run in earlier:
            # Two executions under one attempt number: only a hand-back returns the attempt.
            if releases > 0:
                releases -= 1
                result.handed_back_runs += 1
                if run.outcome == OK:  # cancelled by the shutdown just after its last write
                    cause, example = _why_duplicate(run, faults) or ("handed back", str(run))
                    result.duplicates[cause] += 1
                    result.duplicate_examples.append(example)
            else:
                problems.append(
                    f"{name}: attempt {number} ran more than once (pid {run.pid}, outcome "
                    f"{run.outcome}) without being handed back"
                )
        if number == epoch.last:
            deciding = last
            continue
        _check_superseded(name, last, faults, result)
    _check_end(epoch, deciding, faults, result)


def _check_cancels(epoch: _Epoch, problems: list[str]) -> None:
    """The epoch's cancels stopped the job, and it ended as they allow."""
    name, state = epoch.name, epoch.state
    for cancel in epoch.cancels:
        found = f"a cancel found it {cancel.state} at attempt {cancel.attempt}"
        if epoch.last > cancel.attempt:
            problems.append(
                f"{name}: attempt {epoch.last} was claimed after {found}: the cancelled job "
                "did not stop"
            )
        elif epoch.last < cancel.attempt:
            problems.append(f"{name}: {found}, beyond its last attempt {epoch.last}")
        if state not in ENDS_AFTER_CANCEL.get(cancel.state, ()):
            problems.append(f"{name}: ended {state}, but {found}")
    if state != "cancelled":
        return
    if not epoch.cancels:
        problems.append(f"{name}: ended cancelled, but the test did not cancel it")
    elif not epoch.cancel_requested:
        problems.append(
            f"{name}: ended cancelled with no cancel request stored: cancelled by no operator"
        )
    if not (epoch.last_error or "").startswith("Cancelled"):
        problems.append(f"{name}: ended cancelled with last_error {epoch.last_error!r}")


def _check_end(epoch: _Epoch, deciding: Run | None, faults: Faults, result: Result) -> None:
    """The epoch's end matches the execution of its last attempt."""
    problems, name, state, last_error = result.problems, epoch.name, epoch.state, epoch.last_error
    if state == "cancelled":
        if deciding is None:
            return
        if epoch.cancel_found_running:
            _check_cancelled_run(name, deciding, faults, result)
        elif (deciding.job_id, deciding.attempt) in faults.cancelled_runs:
            problems.append(
                f"{name}: attempt {deciding.attempt} was cancelled by its daemon in pid "
                f"{deciding.pid} (job_cancelled), but no cancel of the test found it running"
            )
        else:  # cancelled while it waited: its last attempt had ended like any other
            _check_superseded(name, deciding, faults, result)
        return
    if deciding is None:
        # The deciding attempt never ran its handler: only a lease expiry can have failed it.
        if state == "completed":
            problems.append(f"{name}: completed, but its last attempt never ran its handler")
        elif not (last_error or "").startswith("LeaseExpired") or epoch.last != epoch.max_attempts:
            problems.append(f"{name}: failed with {last_error!r} but its last attempt never ran")
        return
    if state == "completed":
        if deciding.outcome != OK:
            problems.append(
                f"{name}: completed, but its last execution's outcome is {deciding.outcome}"
            )
        return
    if not last_error:
        problems.append(f"{name}: failed without last_error")
    if deciding.outcome == PERMANENT:
        if not (last_error or "").startswith("BadPayload"):
            problems.append(f"{name}: failed permanently but last_error is {last_error!r}")
        return
    if epoch.last != epoch.max_attempts:
        problems.append(f"{name}: failed before its last attempt ({last_error!r})")
    if deciding.outcome in (FAIL, IGNORED_CANCEL):
        return
    # The last attempt's lease expired: its run was cut off, or its success was not written.
    if not (last_error or "").startswith("LeaseExpired"):
        problems.append(
            f"{name}: failed with {last_error!r} but its last execution's outcome is "
            f"{deciding.outcome}"
        )
    _check_superseded(name, deciding, faults, result)


def _check_cancelled_run(name: str, run: Run, faults: Faults, result: Result) -> None:
    """``run`` is the last execution of an attempt a cancel found running; the job ended
    ``cancelled``."""
    key = (run.job_id, run.attempt)
    what = f"attempt {run.attempt}, which a cancel found running,"
    if run.outcome in (FAIL, PERMANENT):
        result.cancelled_runs["failed before the cancel struck"] += 1
    elif run.outcome is None:
        why = "interrupted by the cancel" if key in faults.cancelled_runs else None
        why = why or _why_unfinished(run, faults, handed_back=False)
        if why is None:
            result.problems.append(
                f"{name}: {what} was cut off in pid {run.pid}, but no daemon logged "
                "job_cancelled for it, and it was not killed and its lease did not expire"
            )
        else:
            result.cancelled_runs[why] += 1
    elif run.outcome == OK:
        if key in faults.cancelled_runs:
            result.cancelled_runs["succeeded as the cancel struck"] += 1
            return
        explained = _why_duplicate(run, faults)
        if explained is None:
            result.problems.append(
                f"{name}: {what} succeeded in pid {run.pid}, yet the job ended cancelled with no "
                "job_cancelled logged, kill or lease expiry to explain it (a success lost)"
            )
        else:
            result.cancelled_runs[explained[0]] += 1
    else:
        _check_superseded(name, run, faults, result)


def _check_superseded(name: str, run: Run, faults: Faults, result: Result) -> None:
    """``run`` is the last execution of an attempt that did not decide the job's outcome."""
    key = (run.job_id, run.attempt)
    if run.outcome in (FAIL, PERMANENT):
        return
    if run.outcome == IGNORED_CANCEL:
        if key not in faults.ignored_cancellation:
            result.problems.append(
                f"{name}: attempt {run.attempt} ignored cancellation, but no daemon logged "
                "job_ignored_cancellation for it"
            )
        return
    if run.outcome is None:
        why = _why_unfinished(run, faults, handed_back=False)
        if why is None:
            result.problems.append(
                f"{name}: attempt {run.attempt} was interrupted in pid {run.pid} for no known "
                "reason (not killed, no lease expiry logged)"
            )
        else:
            result.interrupted[why] += 1
        return
    if run.outcome == OK:
        explained = _why_duplicate(run, faults)
        if explained is None:
            result.problems.append(
                f"{name}: attempt {run.attempt} succeeded in pid {run.pid} and the job ran again"
                " with no kill or lease expiry to explain it (duplicate execution)"
            )
            return
        cause, example = explained
        result.duplicates[cause] += 1
        result.duplicate_examples.append(example)
        return
    result.problems.append(f"{name}: attempt {run.attempt} has unknown outcome {run.outcome!r}")


@dataclass
class ChaosReport:
    """Every fault's result, for the end-of-session report (see ``conftest.py``)."""

    results: list[Result] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.results.append(result)

    def note(self, line: str) -> None:
        self.lines.append(line)


async def collect(conn: Any) -> tuple[list[Any], list[Any]]:
    """The job rows and execution rows the checker reads."""
    return await conn.fetch(JOBS_QUERY), await conn.fetch(RUNS_QUERY)


# Periodic slots


@dataclass
class SlotResult:
    """The slots of one periodic schedule a chaos run enqueued, checked against when daemons ran."""

    slots: int = 0
    caught_up: int = 0
    downtimes: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"periodic slots: {self.slots} enqueued, {self.caught_up} catch-up slot(s) after "
            f"{self.downtimes} downtime(s), {len(self.problems)} problem(s)"
        )


def check_slots(
    slots: list[datetime], period: float, running: list[tuple[datetime, datetime]]
) -> SlotResult:
    """Check the ``run_at`` of every job a schedule of ``period`` seconds enqueued.

    ``running`` holds, per daemon, when it began to run the schedule and when it was stopped or
    killed. Rules: no slot twice; every slot that fell while a daemon ran (with a second's grace
    at either end) is there; of the slots that fell while none ran, at most one per downtime: the
    latest, a period or less before the downtime ended.
    """
    result = SlotResult(slots=len(slots))
    problems = result.problems
    seen = Counter(slots)
    problems += [f"slot {slot.isoformat()} enqueued {n} times" for slot, n in seen.items() if n > 1]
    if not slots:
        problems.append("no slot was enqueued")
        return result
    step, grace = timedelta(seconds=period), timedelta(seconds=1)
    at = min(slots)
    while at <= max(slots):
        if at not in seen and any(start + grace <= at <= end - grace for start, end in running):
            problems.append(f"slot {at.isoformat()} missing although a daemon ran")
        at += step
    merged: list[list[datetime]] = []
    for start, end in sorted(running):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for (_, down), (up, _) in pairwise(merged):
        result.downtimes += 1
        inside = sorted(slot for slot in seen if down < slot < up)
        result.caught_up += len(inside)
        if len(inside) > 1:
            problems.append(
                f"{len(inside)} slots enqueued for the downtime {down.isoformat()} .. "
                f"{up.isoformat()}: the backlog, not the latest slot"
            )
        elif inside and up - inside[0] > step + grace:
            problems.append(
                f"catch-up slot {inside[0].isoformat()} is not the latest before {up.isoformat()}"
            )
    return result
