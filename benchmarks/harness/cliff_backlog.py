"""Cliff 1: a backlog of jobs no handler serves, at the head of the claim order.

In one fresh database: the idle-worker latency run (``measure_latency``) on an empty table, the
clean figure; then ``backlog`` jobs of ``UNKNOWN_TYPE`` enqueued into the benchmark's queue, due
now, so they come first in the claim's order (priority, then ``run_at``), and ``ANALYZE``d as
autovacuum would soon do; then the same latency run with them in the table. Target: p99 at most
max(10 ms, 2x the clean p99).

Then the wake-ups: a daemon of its own polling every 60 s with ``DOCKO_HTTP_PORT`` set, settled;
claim statements counted from ``/metrics`` (``docko_claim_size_count``, and its ``le="0"`` bucket
for the empty ones) over an idle window, then over a window in which ``latency_jobs`` jobs of the
unknown type are enqueued one by one ``latency_interval`` apart (plus 1 s for stragglers). With a
60 s poll, the poll accounts for none of them: every claim counted is a wake-up. Target: 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from .adapters.base import payload
from .cliff_tools import (
    UNKNOWN_TYPE,
    Tuned,
    claim_counts,
    enqueue_seeded,
    free_port,
    start_settled,
    worker_for,
)
from .db import scratch_database
from .scenarios import Options, measure_latency

Log = Callable[[str], None]

WAKEUP_POLL_INTERVAL = 60.0
# Seconds after the last enqueue before the wake-up window closes.
STRAGGLERS = 1.0
# The target: p99 with the backlog at most max(FLOOR_MS, FACTOR x the clean p99).
FLOOR_MS, FACTOR = 10.0, 2.0


async def _claims_over(
    port: int, worker: Any, seconds: float, action: Any = None
) -> dict[str, Any]:
    """Claim statements (all, empty) and the daemon's CPU seconds over ``seconds``, while
    ``action`` (a coroutine function) runs."""
    total_before, empty_before = await claim_counts(port)
    cpu_before, started = worker.cpu_seconds(), time.perf_counter()
    if action is not None:
        await action()
    left = seconds - (time.perf_counter() - started)
    if left > 0:
        await asyncio.sleep(left)
    total_after, empty_after = await claim_counts(port)
    window = time.perf_counter() - started
    return {
        "seconds": window,
        "claims": total_after - total_before,
        "empty_claims": empty_after - empty_before,
        "poll_claims_expected": window / WAKEUP_POLL_INTERVAL,
        "daemon_cpu_seconds": worker.cpu_seconds() - cpu_before,
    }


async def measure_wakeups(dsn: str, options: Options, name: str) -> dict[str, Any]:
    """Claims a settled daemon runs while jobs of a type it has no handler for arrive."""
    port = free_port()
    env = {"DOCKO_HTTP_PORT": str(port), "DOCKO_POLL_INTERVAL": f"{WAKEUP_POLL_INTERVAL:g}"}
    system = Tuned(retention=0, env=env)
    await system.open(dsn)
    worker = worker_for(system, dsn, options, name)
    conn = await asyncpg.connect(dsn)
    count, interval = options.latency_jobs, options.latency_interval
    span = count * interval + STRAGGLERS

    async def enqueue_unknown() -> None:
        base = time.perf_counter()
        for seq in range(count):
            delay = base + seq * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await system.enqueue_one_typed(UNKNOWN_TYPE, payload(10_000_000 + seq, time.time()))

    try:
        await start_settled(system, conn, worker, options)
        idle = await _claims_over(port, worker, span)
        arriving = await _claims_over(port, worker, span, enqueue_unknown)
        exit_code = await worker.stop()
    finally:
        worker.kill()
        await conn.close()
        await system.close()
    return {
        "jobs": count,
        "interval_ms": interval * 1000,
        "poll_interval_s": WAKEUP_POLL_INTERVAL,
        "idle": idle,
        "arriving": arriving,
        "wakeups": arriving["claims"],
        "exit_code": exit_code,
    }


async def measure_backlog(
    admin_dsn: str, options: Options, backlog: int, log: Log
) -> dict[str, Any]:
    """Clean latency, the same with ``backlog`` unhandled jobs queued first, then the wake-ups."""
    system = Tuned(retention=0)
    async with scratch_database(admin_dsn, "docko_backlog") as dsn:
        await system.install(dsn)
        await system.open(dsn)
        try:
            clean = await measure_latency(system, dsn, options, "cliff-backlog-clean")
            log(f"  backlog: clean latency p50/p99 {clean['p50_ms']:.1f}/{clean['p99_ms']:.1f} ms")
            seeded = await enqueue_seeded(system, UNKNOWN_TYPE, backlog, first_seq=1_000_000)
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("ANALYZE docko_jobs", timeout=600)
            finally:
                await conn.close()
            loaded = await measure_latency(system, dsn, options, "cliff-backlog-loaded")
            log(
                f"  backlog: {backlog:,} unhandled jobs queued first, latency p50/p99 "
                f"{loaded['p50_ms']:.1f}/{loaded['p99_ms']:.1f} ms, "
                f"exactly once: {loaded['exactly_once']}"
            )
        finally:
            await system.close()
        wakeups = await measure_wakeups(dsn, options, "cliff-backlog-wakeups")
        log(
            f"  backlog: {wakeups['wakeups']:.0f} claim statements "
            f"({wakeups['arriving']['empty_claims']:.0f} empty) while {wakeups['jobs']} "
            f"unhandled jobs arrived; {wakeups['idle']['claims']:.0f} in as long idle"
        )
    limit = max(FLOOR_MS, FACTOR * clean["p99_ms"])
    return {
        "backlog": backlog,
        "seed_seconds": seeded,
        "clean": clean,
        "loaded": loaded,
        "wakeups": wakeups,
        "p99_limit_ms": limit,
        "latency_target_met": loaded["p99_ms"] <= limit,
        "wakeup_target_met": wakeups["wakeups"] == 0,
        "exactly_once": clean["exactly_once"] and loaded["exactly_once"],
    }
