"""The measurements: bulk enqueue, burn-down, idle-worker latency and scheduled-job lateness.

Burn-down: ``jobs`` queued, the worker started as a subprocess, and the clock stopped when the
system's own ``unfinished_sql`` first reads 0. Reported both from worker start (what the brief
asks: includes interpreter start-up, connecting and schema checks) and from the first handler
start (steady processing rate). Latency: an idle, settled worker, then jobs enqueued one by
one at a fixed interval; enqueue-to-handler-start per job, from the payload's enqueue time.
Lateness (systems with ``measures_lateness``): an idle, settled worker polling once a minute,
then jobs enqueued with a delay, one by one and then a batch per bulk call, due at scattered
moments; handler start minus the due time the system recorded, per job.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from .adapters.base import System, WorkerCommand, payload
from .db import checkpoint
from .stats import percentile
from .worker import Record, WorkerFailed, WorkerProcess

WARM_UP_SEQ = -1
# A burn-down with no progress for this long is declared stuck.
STALL_SECONDS = 60.0
# Longest wait between two polls of a burn-down's progress.
POLL_CEILING = 0.25
# Jobs per bulk call in the lateness run.
LATENESS_BATCH = 10


@dataclass(slots=True)
class Options:
    jobs: int = 20_000
    latency_jobs: int = 200
    latency_interval: float = 0.020
    settle_seconds: float = 1.0
    poll_interval: float = 0.020
    lateness_jobs: int = 100
    # The worker's poll interval in the lateness run: a job started on time was not polled for.
    lateness_poll_interval: float = 60.0
    # Each job (each bulk call) is due a random delay in this range after its enqueue.
    lateness_delay: tuple[float, float] = (0.2, 0.5)
    # Seconds between two single enqueues; bulk calls are LATENESS_BATCH times further apart.
    lateness_interval: float = 0.010
    work_dir: Path = Path(".")
    log_dir: Path = Path(".")


@dataclass(slots=True)
class Progress:
    """Samples taken while waiting: (seconds since worker start, CPU seconds, unfinished)."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    done_after: float = 0.0
    cpu_at_done: float = 0.0


def verify(records: Iterable[Record], expected: Iterable[int]) -> dict[str, Any]:
    """Did every expected seq start exactly once (and nothing else)?"""
    seen = Counter(record.seq for record in records)
    wanted = set(expected)
    missing = sum(1 for seq in wanted if seq not in seen)
    duplicates = sum(count - 1 for count in seen.values() if count > 1)
    unexpected = sum(1 for seq in seen if seq not in wanted)
    return {
        "exactly_once": missing == duplicates == unexpected == 0,
        "handler_runs": sum(seen.values()),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
    }


async def measure_enqueue(system: System, count: int, first_seq: int = 0) -> dict[str, Any]:
    """Enqueue ``count`` jobs through the bulk API, ``system.chunk_size`` per call."""
    now = time.time()
    payloads = [payload(first_seq + index, now) for index in range(count)]
    size = system.chunk_size
    started = time.perf_counter()
    for offset in range(0, count, size):
        await system.enqueue_bulk(payloads[offset : offset + size])
    seconds = time.perf_counter() - started
    return {"jobs": count, "seconds": seconds, "rate": count / seconds, "chunk": size}


def next_poll_delay(floor: float, unfinished: int, rate: float | None) -> float:
    """Seconds until the next poll: half the estimated time left, within [floor, POLL_CEILING].

    The count is a scan of the system's table, and it competes for the same cores as the
    worker it measures: polling every ``floor`` seconds throughout would cost a CPU-bound
    worker a tenth of a core. Halving the estimate polls only a few times far from the end
    and every ``floor`` seconds close to it, so the stop time keeps its ``floor`` precision.
    """
    if not rate or rate <= 0:
        return floor
    return max(floor, min(POLL_CEILING, unfinished / rate / 2))


async def wait_until_finished(
    conn: Any,
    system: System,
    worker: WorkerProcess,
    poll: float,
    limit: float,
    stall: float = STALL_SECONDS,
) -> Progress:
    """Poll ``unfinished_sql`` until it reads 0, sampling the worker's CPU each time; fail after
    ``stall`` seconds without progress or ``limit`` seconds in all."""
    progress = Progress()
    last_change, last_count = time.perf_counter(), -1
    while True:
        count = int(await conn.fetchval(system.unfinished_sql))
        now = time.perf_counter()
        cpu = worker.cpu_seconds()
        elapsed = now - worker.started_at
        rate = None
        if progress.samples:
            previous_elapsed, _, previous_count = progress.samples[-1]
            if elapsed > previous_elapsed:
                rate = (previous_count - count) / (elapsed - previous_elapsed)
        progress.samples.append((elapsed, cpu, count))
        if count == 0:
            progress.done_after, progress.cpu_at_done = elapsed, cpu
            return progress
        worker.check_alive()
        if count != last_count:
            last_change, last_count = now, count
        if now - last_change > stall or elapsed > limit:
            raise WorkerFailed(
                f"{system.label}: {count} jobs still unfinished after {elapsed:.0f}s "
                f"(no progress for {now - last_change:.0f}s)\n{worker.log_tail()}"
            )
        await asyncio.sleep(next_poll_delay(poll, count, rate))


def _worker(
    system: System, dsn: str, options: Options, name: str, command: WorkerCommand | None = None
) -> WorkerProcess:
    return WorkerProcess(
        command or system.worker_command(dsn),
        options.work_dir / f"{name}.records",
        options.log_dir / f"{name}.log",
    )


async def measure_burn_down(
    system: System,
    dsn: str,
    options: Options,
    name: str,
    jobs: int,
    first_seq: int = 0,
    poll: float | None = None,
    milestone: int | None = None,
) -> dict[str, Any]:
    """Start the worker on ``jobs`` queued jobs and time it until all are finished."""
    worker = _worker(system, dsn, options, name)
    # The enqueue's (or a seed's) writes are flushed now, not while the worker runs.
    checkpoint_seconds = await checkpoint(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        worker.start()
        progress = await wait_until_finished(
            conn, system, worker, poll or options.poll_interval, limit=max(300, jobs / 300)
        )
        peak_rss = worker.peak_rss_bytes()
        exit_code = await worker.stop()
    finally:
        worker.kill()
        await conn.close()
    records = worker.records()
    result: dict[str, Any] = {
        "jobs": jobs,
        "seconds": progress.done_after,
        "throughput": jobs / progress.done_after,
        "cpu_seconds": progress.cpu_at_done,
        "cpu_per_1k": progress.cpu_at_done / jobs * 1000,
        "peak_rss_mb": peak_rss / 2**20,
        "exit_code": exit_code,
        "checkpoint_seconds": checkpoint_seconds,
        **verify(records, range(first_seq, first_seq + jobs)),
    }
    if records:
        first_start = min(r.started_at for r in records) - worker.started_wall
        before = [s for s in progress.samples if s[0] <= first_start]
        cpu_before = before[-1][1] if before else 0.0
        processing = progress.done_after - first_start
        result |= {
            "first_job_after": first_start,
            "processing_seconds": processing,
            "processing_rate": jobs / processing if processing > 0 else None,
            "startup_cpu_seconds": cpu_before,
            "processing_cpu_per_1k": (progress.cpu_at_done - cpu_before) / jobs * 1000,
        }
    if milestone is not None:
        reached = next((s for s in progress.samples if jobs - s[2] >= milestone), None)
        if reached is not None:
            result["milestone"] = {
                "jobs": milestone,
                "seconds": reached[0],
                "throughput": (jobs - reached[2]) / reached[0],
            }
    return result


def _percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 and the maximum of ``values`` (milliseconds)."""
    return {
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values, default=float("nan")),
    }


async def _start_settled(
    system: System, conn: Any, worker: WorkerProcess, options: Options
) -> None:
    """Start ``worker``, run one warm-up job (``WARM_UP_SEQ``) through it, let it settle."""
    worker.start()
    await system.enqueue_one(payload(WARM_UP_SEQ, time.time()))
    await wait_until_finished(conn, system, worker, options.poll_interval, limit=120)
    await asyncio.sleep(options.settle_seconds)


async def measure_latency(system: System, dsn: str, options: Options, name: str) -> dict[str, Any]:
    """Settled idle worker, then ``latency_jobs`` single enqueues ``latency_interval`` apart."""
    worker = _worker(system, dsn, options, name)
    conn = await asyncpg.connect(dsn)
    count = options.latency_jobs
    try:
        await _start_settled(system, conn, worker, options)
        base = time.perf_counter()
        for seq in range(count):
            delay = base + seq * options.latency_interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await system.enqueue_one(payload(seq, time.time()))
        await wait_until_finished(conn, system, worker, options.poll_interval, limit=120)
        exit_code = await worker.stop()
    finally:
        worker.kill()
        await conn.close()
    records = worker.records()
    latencies = [(r.started_at - r.enqueued_at) * 1000 for r in records if r.seq >= 0]
    return {
        "jobs": count,
        "interval_ms": options.latency_interval * 1000,
        **_percentiles(latencies),
        "exit_code": exit_code,
        **verify(records, [WARM_UP_SEQ, *range(count)]),
    }


async def _enqueue_delayed(
    system: System, options: Options, rng: random.Random, first_seq: int, batch: int
) -> dict[int, float]:
    """``options.lateness_jobs`` jobs, ``batch`` per call (1: the single-job API), each call
    ``batch * lateness_interval`` after the previous one and due a random delay after it; the
    due time of each seq."""
    due: dict[int, float] = {}
    low, high = options.lateness_delay
    base = time.perf_counter()
    for call, offset in enumerate(range(0, options.lateness_jobs, batch)):
        pause = base + call * batch * options.lateness_interval - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        seqs = range(first_seq + offset, first_seq + min(offset + batch, options.lateness_jobs))
        delay = rng.uniform(low, high)
        if batch == 1:
            [seq] = seqs
            due[seq] = await system.enqueue_one_delayed(payload(seq, time.time()), delay)
        else:
            now = time.time()
            times = await system.enqueue_bulk_delayed([payload(seq, now) for seq in seqs], delay)
            due.update(zip(seqs, times, strict=True))
    return due


async def measure_lateness(system: System, dsn: str, options: Options, name: str) -> dict[str, Any]:
    """Settled idle worker polling every ``lateness_poll_interval`` s; ``lateness_jobs`` delayed
    single enqueues, then as many in bulk calls of ``LATENESS_BATCH``; handler start - due time."""
    command = system.lateness_worker_command(dsn, options.lateness_poll_interval)
    worker = _worker(system, dsn, options, name, command)
    conn = await asyncpg.connect(dsn)
    count = options.lateness_jobs
    # A job its worker was not woken for waits for the poll: let it, and report how late it was.
    wait = {
        "limit": options.lateness_poll_interval * 4,
        "stall": options.lateness_poll_interval * 2,
    }
    rng = random.Random(name)
    began = time.perf_counter()
    try:
        await _start_settled(system, conn, worker, options)
        single = await _enqueue_delayed(system, options, rng, 0, 1)
        await wait_until_finished(conn, system, worker, options.poll_interval, **wait)
        bulk = await _enqueue_delayed(system, options, rng, count, LATENESS_BATCH)
        await wait_until_finished(conn, system, worker, options.poll_interval, **wait)
        exit_code = await worker.stop()
    finally:
        worker.kill()
        await conn.close()
    records = worker.records()
    started = {r.seq: r.started_at for r in records}
    late = {
        phase: [(started[seq] - at) * 1000 for seq, at in due.items() if seq in started]
        for phase, due in (("enqueue", single), ("enqueue_many", bulk))
    }
    low, high = options.lateness_delay
    return {
        "jobs": count,
        "poll_interval_s": options.lateness_poll_interval,
        "delay_s": [low, high],
        "interval_ms": options.lateness_interval * 1000,
        "enqueue": {"jobs": count, **_percentiles(late["enqueue"])},
        "enqueue_many": {
            "jobs": count,
            "per_call": LATENESS_BATCH,
            **_percentiles(late["enqueue_many"]),
        },
        "seconds": time.perf_counter() - began,
        "exit_code": exit_code,
        **verify(records, [WARM_UP_SEQ, *range(2 * count)]),
    }
