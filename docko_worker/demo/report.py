"""What the demo reports at the end: the outcome, the enqueue-to-start latency and the summary.

This module owns the measurements and their presentation: ``measure_latency`` sends jobs one by
one to the idle daemon and times them to their handler's start, ``Outcome`` holds what the summary
reports, ``pick_examples`` chooses the failed jobs it shows and ``format_summary`` renders it, the
jobs by type in a table with column headers, the latency probes (``latency_probe`` jobs) named in
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from ..job import Job
from ..queue import Queue
from .display import table
from .workload import (
    DOCUMENTS_QUEUE,
    JOB_TYPES,
    PROBE_JOB_TYPE,
    REPORT_EVERY,
    REPORT_NAME,
    DocumentWorkload,
    GaveUp,
)

PROBE_JOBS = 20
PROBE_GAP = 0.05


async def measure_latency(queue: Queue, workload: DocumentWorkload) -> list[float]:
    """Milliseconds from ``enqueue`` to handler start, jobs sent one by one to the idle daemon."""
    workload.probes_expected = PROBE_JOBS
    sent: list[tuple[UUID, float]] = []
    for number in range(1, PROBE_JOBS + 1):
        began = time.perf_counter()
        job = await queue.enqueue(DOCUMENTS_QUEUE, PROBE_JOB_TYPE, {"probe": number})
        sent.append((job.id, began))
        await asyncio.sleep(PROBE_GAP)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            await workload.probes_started.wait()
    starts = workload.probe_starts
    return [(starts[job_id] - began) * 1000 for job_id, began in sent if job_id in starts]


@dataclass(slots=True)
class Outcome:
    """What the summary reports."""

    jobs: int
    documents: int
    by_type: dict[str, Counter[str]]
    retried: int
    gave_up: list[GaveUp]
    examples: list[Job]
    wall: float
    workers: int
    attempts: int
    busy_seconds: float
    latencies: list[float]
    listen: bool
    poll_interval: float
    # The periodic job's slots, as its handler saw them, and its jobs in the table.
    report_slots: list[datetime] = field(default_factory=list)
    report_jobs: int = 0


def pick_examples(gave_up: Iterable[GaveUp], count: int = 3) -> list[GaveUp]:
    """Up to ``count`` failed jobs, as varied as possible: out of attempts first, one per job type,
    then one per corrupt document."""
    chosen: list[GaveUp] = []
    seen: set[object] = set()
    candidates = sorted(gave_up, key=lambda g: g.permanent)
    for item in candidates:
        key = ("document", item.document_id) if item.permanent else ("type", item.job_type)
        if len(chosen) < count and key not in seen:
            chosen.append(item)
            seen.add(key)
    for item in candidates:
        if len(chosen) < count and item not in chosen:
            chosen.append(item)
    return chosen


def job_table(outcome: Outcome) -> list[str]:
    """The jobs by type under column headers, and the latency probes after them."""
    header = ["job type", "jobs", "completed", "failed", "unfinished", "queue", "attempts"]
    rows = []
    for job_type, states in outcome.by_type.items():
        queue_name, attempts = JOB_TYPES[job_type]
        others = sum(n for state, n in states.items() if state not in ("completed", "failed"))
        counts = [sum(states.values()), states["completed"], states["failed"], others]
        rows.append([job_type, *map(str, counts), queue_name, str(attempts)])
    if not any(row[4] != "0" for row in rows):  # no unfinished column when all are final
        header.pop(4)
        rows = [row[:4] + row[5:] for row in rows]
    probes = [PROBE_JOB_TYPE, str(PROBE_JOBS)] + ["-"] * (len(header) - 4) + [DOCUMENTS_QUEUE, "-"]
    numbers = [*range(1, len(header) - 2), len(header) - 1]
    lines = table(header, [*rows, probes], right=numbers)
    lines[-1] += "  sent one by one: latency below"
    return ["    " + line for line in lines]


def format_summary(outcome: Outcome) -> str:
    label = "  {:<13} {}".format
    more = " " * 16
    lines = ["", "docko-worker demo: summary"]
    jobs = (
        f"{outcome.jobs} for {outcome.documents} documents, {outcome.workers} workers "
        f"(and {PROBE_JOBS} {PROBE_JOB_TYPE} jobs)"
    )
    lines.append(label("jobs", jobs))
    lines += job_table(outcome)
    completed = sum(states["completed"] for states in outcome.by_type.values())
    failed = sum(states["failed"] for states in outcome.by_type.values())
    lines.append(label("completed", completed))
    lines.append(label("retried", f"{outcome.retried} failed attempts, retried with backoff"))
    permanent = sum(1 for g in outcome.gave_up if g.permanent)
    reasons = []
    if permanent:
        reasons.append(f"{permanent} on corrupt documents (PermanentError, not retried)")
    if len(outcome.gave_up) > permanent:
        reasons.append(f"{len(outcome.gave_up) - permanent} out of attempts")
    if failed > len(outcome.gave_up):
        reasons.append(f"{failed - len(outcome.gave_up)} unexpected (see the log above)")
    lines.append(label("failed", f"{failed}: {', '.join(reasons)}" if reasons else failed))
    for job in outcome.examples:
        lines.append(
            f"    {job.job_type} {str(job.id)[-8:]} {job.attempt}/{job.max_attempts}  "
            f"{job.last_error}"
        )
    average = outcome.busy_seconds / outcome.attempts * 1000 if outcome.attempts else 0.0
    lines.append(
        label("wall time", f"{outcome.wall:.2f} s (simulated work averages {average:.0f} ms)")
    )
    lines.append(label("throughput", f"{outcome.jobs / outcome.wall:,.0f} jobs/s"))
    if outcome.latencies:
        wake = (
            "woken by LISTEN/NOTIFY"
            if outcome.listen
            else f"found by polling every {outcome.poll_interval:g} s as DOCKO_LISTEN=false"
        )
        lines.append(
            label(
                "latency",
                f"p50 {statistics.median(outcome.latencies):.1f} ms, "
                f"max {max(outcome.latencies):.1f} ms from enqueue to handler start",
            )
        )
        lines.append(
            f"{more}({len(outcome.latencies)} {PROBE_JOB_TYPE} jobs sent {PROBE_GAP * 1000:.0f} ms "
            f"apart to the idle daemon, {wake})"
        )
    else:
        lines.append(label("latency", "no latency probe started within 5 s"))
    lines.append(label("periodic", _periodic_line(outcome)))
    unfinished = outcome.jobs - completed - failed
    if unfinished:
        lines.append(label("unfinished", f"{unfinished} (neither completed nor failed)"))
    return "\n".join(lines)


def _periodic_line(outcome: Outcome) -> str:
    slots = outcome.report_slots
    head = f"{REPORT_NAME} every {REPORT_EVERY} s"
    if not slots:
        return f"{head}: no slot fell due while the demo ran"
    once = (
        "one job each"
        if len(set(slots)) == len(slots) == outcome.report_jobs
        else f"{outcome.report_jobs} jobs for {len(set(slots))} slots"
    )
    return (
        f"{head}: {len(slots)} slots {slots[0]:%H:%M:%S} .. {slots[-1]:%H:%M:%S} UTC, {once},"
        " due at its slot"
    )
