"""One demo session on a PostgreSQL server: the demo database, the daemon run and its outcome.

This module owns the run itself: it recreates the demo database, configures the daemon for the
demo, enqueues the sample jobs in bulk, runs the daemon in this process (with one periodic job)
with progress until every job is completed or failed, measures the enqueue-to-start latency, stops
the daemon gracefully and collects the ``Outcome`` the summary reports.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from ..config import Config, load_config, redact_dsn
from ..errors import DockoError
from ..queue import Queue
from .database import DEMO_DATABASE, recreate_demo_database
from .display import Display, Progress
from .report import Outcome, measure_latency, pick_examples
from .workload import (
    CORRUPT_SHARE_OF_FAILURE_RATE,
    JOB_TYPES,
    PROBE_JOB_TYPE,
    QUEUES,
    REPORT_JOB_TYPE,
    DocumentWorkload,
    periodic_jobs,
    plan_jobs,
    sample_documents,
)

# Seconds without a single job finishing before the demo gives up.
STALL_TIMEOUT = 30.0
TICK = 0.05


@dataclass(frozen=True, slots=True)
class DemoArguments:
    """The command's arguments, checked (``--workers`` defaulted)."""

    jobs: int
    workers: int
    failure_rate: float


def demo_config(base: Config, database_url: str, workers: int) -> Config:
    """The daemon's settings for the demo: quick polls and retries, quiet logs.

    Other ``DOCKO_*`` variables still apply (``DOCKO_LISTEN=false`` for a poll-only run, say).
    """
    return load_config(
        database_url=database_url,
        queues=list(QUEUES),
        worker_count=workers,
        poll_interval=0.2,
        base_retry_delay=0.05,
        max_retry_delay=0.5,
        max_attempts=5,
        shutdown_timeout=5.0,
        completed_retention=3600.0,  # the summary counts finished jobs: keep them
        failed_retention=3600.0,
        log_level="warning",
        log_format=base.log_format,
    )


async def _enqueue(queue: Queue, planned: dict[str, list[dict[str, Any]]]) -> int:
    """One ``enqueue_many`` per job type; returns the number of statements."""
    statements = 0
    for job_type, payloads in planned.items():
        if payloads:
            queue_name, attempts = JOB_TYPES[job_type]
            await queue.enqueue_many(queue_name, job_type, payloads, max_attempts=attempts)
            statements += 1
    return statements


async def _run_until_final(
    queue: Queue, total: int, started: float, display: Display, workload: DocumentWorkload
) -> float:
    """Show progress until ``total`` jobs are completed or failed; returns the seconds it took."""
    last_done, last_change = -1, started
    while True:
        counters = queue.counters
        now = time.perf_counter()
        # The periodic job's runs are not the workload's.
        done = counters.completed + counters.failed - len(workload.report_slots)
        finished = done >= total
        display.progress(
            Progress(done, total, counters.retried, counters.failed, now - started), force=finished
        )
        if finished:
            display.end_progress()
            return now - started
        if done != last_done:
            last_done, last_change = done, now
        elif now - last_change > STALL_TIMEOUT:
            display.end_progress()
            raise DockoError(
                f"demo stalled: {total - done} jobs unfinished and none finished for "
                f"{STALL_TIMEOUT:g} s"
            )
        await asyncio.sleep(TICK)


async def _wait_until_idle(queue: Queue) -> None:
    """Until every outcome is written and nothing is claimed (10 s at most)."""
    for _ in range(1000):
        if queue.idle:
            return
        await asyncio.sleep(0.01)


async def run_session(
    args: DemoArguments, base: Config, server_dsn: str, display: Display
) -> tuple[Outcome, str]:
    """Run the demo on the server of ``server_dsn``; returns the outcome and the demo DSN."""
    demo_dsn, version = await recreate_demo_database(base, server_dsn)
    config = demo_config(base, demo_dsn, args.workers)
    display.say(f"database {DEMO_DATABASE} created (PostgreSQL {version}): {redact_dsn(demo_dsn)}")
    documents = sample_documents(
        math.ceil(args.jobs / len(JOB_TYPES)), args.failure_rate * CORRUPT_SHARE_OF_FAILURE_RATE
    )
    planned = plan_jobs(args.jobs, documents)
    workload = DocumentWorkload(args.failure_rate)
    async with await Queue.connect(config) as queue:
        await queue.migrate()
        for job_type, handler in workload.handlers().items():
            queue.register_handler(job_type, handler)
        for periodic in periodic_jobs():
            queue.register_periodic(periodic)
        began = time.perf_counter()
        statements = await _enqueue(queue, planned)
        display.say(
            f"enqueued {args.jobs} jobs for {len(documents)} documents in {statements} bulk "
            f"inserts ({(time.perf_counter() - began) * 1000:.0f} ms); "
            f"running them with {args.workers} workers"
        )
        started = time.perf_counter()
        await queue.start(list(QUEUES))
        wall = await _run_until_final(queue, args.jobs, started, display, workload)
        bulk = queue.counters
        await _wait_until_idle(queue)
        latencies = await measure_latency(queue, workload)
        await queue.stop()
        by_type: dict[str, Counter[str]] = defaultdict(Counter)
        report_jobs = 0
        for _queue_name, job_type, state, count in await queue.job_counts():
            if job_type == REPORT_JOB_TYPE:
                report_jobs += count
            elif job_type != PROBE_JOB_TYPE:
                by_type[job_type][state] += count
        examples = [
            job
            for chosen in pick_examples(workload.gave_up)
            if (job := await queue.get_job(chosen.job_id)) is not None
        ]
    outcome = Outcome(
        jobs=args.jobs,
        documents=len(documents),
        by_type={job_type: by_type[job_type] for job_type in JOB_TYPES if job_type in by_type},
        retried=bulk.retried,
        gave_up=list(workload.gave_up),
        examples=examples,
        wall=wall,
        workers=args.workers,
        attempts=workload.attempts,
        busy_seconds=workload.busy_seconds,
        latencies=latencies,
        listen=config.listen,
        poll_interval=config.poll_interval,
        report_slots=sorted(workload.report_slots),
        report_jobs=report_jobs,
    )
    return outcome, demo_dsn
