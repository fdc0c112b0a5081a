"""The ``Recorder``: where every job's outcome goes, from a worker, the watchdog or shutdown.

It settles the job in ``HeldJobs`` (its worker slot is free again), counts the outcome, logs it with
the job's id, type and attempt, and hands it to the completer to write. ``Counters`` are the
process's public tally, read by ``Queue.counters`` and the demo; with ``metrics`` (the HTTP
endpoint is on) each claim and outcome is also counted by queue and job type.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import structlog

from .completer import Completer
from .held import HeldJobs
from .job import Job
from .metrics import CANCELLED, COMPLETED, FAILED, RELEASED, RETRIED, Metrics
from .outcome import Outcome, OutcomeKind

log = structlog.get_logger("docko_worker.worker")


@dataclass(slots=True)
class Counters:
    """What this process has done since it started (outcomes as handed to the completer)."""

    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    cancelled: int = 0


class Recorder:
    """Takes each job's ``Outcome``: settle, count, log, hand to the completer."""

    def __init__(
        self,
        held: HeldJobs,
        completer: Completer,
        *,
        debug: bool = False,
        log_completed: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._held = held
        self._completer = completer
        self._metrics = metrics
        # A line per completed job costs even when filtered out: only when asked for.
        self._log_completed = log_completed or debug
        self._completed_level = logging.INFO if log_completed else logging.DEBUG
        self.counters = Counters()

    def claimed(self, jobs: list[Job]) -> None:
        self.counters.claimed += len(jobs)
        self._held.add(jobs)
        if self._metrics is not None:
            self._metrics.claimed(jobs)

    def record(
        self,
        job: Job,
        outcome: Outcome,
        error: BaseException | None = None,
        started: float | None = None,
    ) -> None:
        """``error``: the exception the handler raised, for the traceback in the log line;
        ``started``: when its handler started (``time.monotonic()``), for the duration."""
        self._held.settle(job)
        kind = outcome.kind
        # The docko_jobs_total outcome (a constant of metrics.py), set by each branch.
        counted: int
        if kind is OutcomeKind.COMPLETED:
            counted = COMPLETED
            self.counters.completed += 1
            self._completer.complete(job)
            if self._log_completed:
                log.log(
                    self._completed_level,
                    "job_completed",
                    job_id=str(job.id),
                    job_type=job.job_type,
                    attempt=job.attempt,
                    duration=None if started is None else round(time.monotonic() - started, 6),
                )
        elif kind is OutcomeKind.RETRY:
            counted = RETRIED
            self.counters.retried += 1
            error_text = outcome.error or ""
            self._completer.retry(job, outcome.retry_in, error_text)
            log.warning(
                "job_retry_scheduled",
                job_id=str(job.id),
                job_type=job.job_type,
                attempt=job.attempt,
                max_attempts=job.max_attempts,
                retry_in=round(outcome.retry_in, 3),
                error=error_text,
                exc_info=error,
            )
        elif kind is OutcomeKind.FAILED:
            counted = FAILED
            self.counters.failed += 1
            error_text = outcome.error or ""
            self._completer.fail(job, error_text)
            log.error(
                "job_failed",
                job_id=str(job.id),
                job_type=job.job_type,
                attempt=job.attempt,
                max_attempts=job.max_attempts,
                permanent=outcome.permanent,
                error=error_text,
                exc_info=error,
            )
        elif kind is OutcomeKind.CANCELLED:
            counted = CANCELLED
            self.counters.cancelled += 1
            self._completer.cancel(job)
            log.info(
                "job_cancelled",
                job_id=str(job.id),
                job_type=job.job_type,
                attempt=job.attempt,
                error=outcome.error,
            )
        else:
            counted = RELEASED
            self.counters.released += 1
            self._completer.release(job)
            log.info("job_released", job_id=str(job.id), job_type=job.job_type, attempt=job.attempt)
        if self._metrics is not None:
            self._metrics.finished(job, counted, started)
