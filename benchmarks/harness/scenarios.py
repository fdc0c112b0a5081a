"""The measurements: bulk enqueue, burn-down, and idle-worker latency, for any ``System``.

Burn-down: ``jobs`` queued, the worker started as a subprocess, and the clock stopped when the
system's own ``unfinished_sql`` first reads 0. Reported both from worker start (what the brief
asks: includes interpreter start-up, connecting and schema checks) and from the first handler
start (steady processing rate). Latency: an idle, settled worker, then jobs enqueued one by
one at a fixed interval; enqueue-to-handler-start per job, from the payload's enqueue time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from .adapters.base import System, payload
from .stats import percentile
from .worker import Record, WorkerFailed, WorkerProcess

WARM_UP_SEQ = -1
# A burn-down with no progress for this long is declared stuck.
STALL_SECONDS = 60.0
# Longest wait between two polls of a burn-down's progress.
POLL_CEILING = 0.25


@dataclass(slots=True)
class Options:
    jobs: int = 20_000
    latency_jobs: int = 200
    latency_interval: float = 0.020
    settle_seconds: float = 1.0
    poll_interval: float = 0.020
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
    conn: Any, system: System, worker: WorkerProcess, poll: float, limit: float
) -> Progress:
    """Poll ``unfinished_sql`` until it reads 0, sampling the worker's CPU each time."""
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
        if now - last_change > STALL_SECONDS or elapsed > limit:
            raise WorkerFailed(
                f"{system.label}: {count} jobs still unfinished after {elapsed:.0f}s "
                f"(no progress for {now - last_change:.0f}s)\n{worker.log_tail()}"
            )
        await asyncio.sleep(next_poll_delay(poll, count, rate))


def _worker(system: System, dsn: str, options: Options, name: str) -> WorkerProcess:
    return WorkerProcess(
        system.worker_command(dsn),
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


async def measure_latency(system: System, dsn: str, options: Options, name: str) -> dict[str, Any]:
    """Settled idle worker, then ``latency_jobs`` single enqueues ``latency_interval`` apart."""
    worker = _worker(system, dsn, options, name)
    conn = await asyncpg.connect(dsn)
    count = options.latency_jobs
    try:
        worker.start()
        await system.enqueue_one(payload(WARM_UP_SEQ, time.time()))
        await wait_until_finished(conn, system, worker, options.poll_interval, limit=120)
        await asyncio.sleep(options.settle_seconds)
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
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "exit_code": exit_code,
        **verify(records, [WARM_UP_SEQ, *range(count)]),
    }
