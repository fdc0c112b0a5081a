"""Cliff 2: a steady stream of jobs while another transaction holds a snapshot open.

One daemon (the benchmark's settings, retention as given), settled; a producer enqueues ``rate``
jobs/s through ``Queue.enqueue_many``, ``per_call`` jobs per call (each payload carries its
enqueue time), for ``before`` s, then another connection opens ``BEGIN ISOLATION LEVEL REPEATABLE
READ`` and reads one row (its snapshot now holds back the xmin horizon, so no dead row version of
``docko_jobs`` can be pruned or vacuumed) and stays idle in transaction for ``hold`` s; then it
rolls back and the load goes on for ``after`` s. Reported from the handlers' records: pickup
latency (enqueue to handler start) per ``window`` s and per phase, the handler starts per second
(throughput), the queue's backlog (enqueued minus started); the daemon's CPU per window;
``n_dead_tup`` of ``docko_jobs`` sampled every second; and after the release, how long until a
``recovery_window`` s window's p99 is back to the pre-hold level (the worst pre-hold window of that
width) and the backlog back to its pre-hold maximum. Targets: p99 of every window at most 50 ms,
recovery within 30 s. Dead row versions are only ever removed by a vacuum: on a server whose
``autovacuum`` is off, an emulated one (``cliff_vacuum``) runs from the start of the load, unless
``emulate_autovacuum`` is false.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from .adapters.base import payload
from .cliff_tools import Tuned, percentiles, start_settled, worker_for
from .cliff_vacuum import autovacuum_settings, emulate
from .db import scratch_database
from .scenarios import WARM_UP_SEQ, Options, verify, wait_until_finished
from .stats import percentile
from .worker import Record

Log = Callable[[str], None]

P99_TARGET_MS = 50.0
RECOVERY_TARGET_S = 30.0
# Seconds between two readings of the backlog (enqueued minus started) from the records.
BACKLOG_TICK = 0.1

TABLE_STATS_SQL = """
SELECT n_dead_tup, n_live_tup, pg_total_relation_size('docko_jobs') AS bytes,
       vacuum_count + autovacuum_count AS vacuums
FROM pg_stat_user_tables WHERE relname = 'docko_jobs'
"""


@dataclass(frozen=True, slots=True)
class HeldOptions:
    before: float = 15.0
    hold: float = 120.0
    after: float = 60.0
    rate: int = 1000
    per_call: int = 10
    window: float = 10.0
    recovery_window: float = 5.0
    emulate_autovacuum: bool = True


@dataclass(slots=True)
class Timeline:
    """Wall-clock moments of the run and what was sampled along it."""

    load_at: float = 0.0
    hold_at: float = 0.0
    release_at: float = 0.0
    end_at: float = 0.0
    enqueued: int = 0
    # (wall time, seconds one enqueue_many call took)
    calls: list[tuple[float, float]] | None = None
    # (wall time, daemon CPU seconds, n_dead_tup, n_live_tup, table bytes, vacuums so far)
    samples: list[tuple[float, float, int, int, int, int]] | None = None


async def _produce(system: Tuned, held: HeldOptions, timeline: Timeline, seconds: float) -> None:
    """``held.rate`` jobs/s for ``seconds``, ``per_call`` per call, on a fixed schedule (a call
    that falls behind is made at once)."""
    spacing = held.per_call / held.rate
    calls = int(seconds / spacing)
    timeline.calls = []
    base = time.perf_counter()
    seq = 0
    for call in range(calls):
        pause = base + call * spacing - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        now = time.time()
        batch = [payload(seq + index, now) for index in range(held.per_call)]
        started = time.perf_counter()
        await system.enqueue_bulk(batch)
        timeline.calls.append((now, time.perf_counter() - started))
        seq += held.per_call
    timeline.enqueued = seq


async def _sample(conn: Any, worker: Any, timeline: Timeline) -> None:
    """Every second until cancelled: the daemon's CPU and the table's statistics."""
    timeline.samples = []
    while True:
        row = await conn.fetchrow(TABLE_STATS_SQL)
        timeline.samples.append(
            (
                time.time(),
                worker.cpu_seconds(),
                row["n_dead_tup"],
                row["n_live_tup"],
                row["bytes"],
                row["vacuums"],
            )
        )
        await asyncio.sleep(1.0)


def _phase(at: float, timeline: Timeline) -> str:
    if at < timeline.hold_at:
        return "before"
    return "hold" if at < timeline.release_at else "after"


def _windows(
    records: list[Record], timeline: Timeline, origin: float, end: float, width: float
) -> list[dict[str, Any]]:
    """Per ``width`` s window from ``origin`` to ``end`` (by enqueue time; a remainder shorter
    than half a window joins the last one): latency figures, handler starts per second, the
    daemon's CPU share and the dead tuples at the window's end."""
    samples = timeline.samples or []
    sample_times = [s[0] for s in samples]
    calls = timeline.calls or []
    rows = []
    start = origin
    while start < end:
        stop = start + width
        if end - stop < width / 2:
            stop = end
        latencies = [
            (r.started_at - r.enqueued_at) * 1000 for r in records if start <= r.enqueued_at < stop
        ]
        starts = sum(1 for r in records if start <= r.started_at < stop)
        row: dict[str, Any] = {
            "from_s": start - timeline.hold_at,
            "to_s": stop - timeline.hold_at,
            "phase": _phase(start, timeline),
            **percentiles(latencies),
            "starts_per_s": starts / (stop - start),
            "enqueue_call_p99_ms": percentile(
                [seconds * 1000 for at, seconds in calls if start <= at < stop], 99
            ),
        }
        first = bisect_left(sample_times, start)
        last = bisect_right(sample_times, stop) - 1
        if 0 <= first < last:
            (t0, cpu0, *_), (t1, cpu1, dead, live, size, vacuums) = samples[first], samples[last]
            row |= {
                "daemon_cpu_share": (cpu1 - cpu0) / (t1 - t0),
                "n_dead_tup": dead,
                "n_live_tup": live,
                "table_mib": size / 2**20,
                "vacuums": vacuums,
            }
        rows.append(row)
        start = stop
    return rows


def _backlog_at(enqueued: list[float], started: list[float], at: float) -> int:
    return bisect_right(enqueued, at) - bisect_right(started, at)


def _recovery(records: list[Record], timeline: Timeline, held: HeldOptions) -> dict[str, Any]:
    """How long after the release until latency and the backlog were back to pre-hold levels."""
    width = held.recovery_window
    before = _windows(records, timeline, timeline.load_at, timeline.hold_at, width)
    level = max((w["p99_ms"] for w in before if w["jobs"]), default=float("nan"))
    after = _windows(records, timeline, timeline.release_at, timeline.end_at, width)
    back = next((w for w in after if w["jobs"] and w["p99_ms"] <= level), None)
    under = next((w for w in after if w["jobs"] and w["p99_ms"] <= P99_TARGET_MS), None)
    enqueued = sorted(r.enqueued_at for r in records if r.seq >= 0)
    started = sorted(r.started_at for r in records if r.seq >= 0)
    ticks = int((timeline.end_at - timeline.load_at) / BACKLOG_TICK)
    backlog = [
        (at, _backlog_at(enqueued, started, at))
        for at in (timeline.load_at + BACKLOG_TICK * k for k in range(ticks))
    ]
    hold, release = timeline.hold_at, timeline.release_at
    before_max = max((n for at, n in backlog if at < hold), default=0)
    hold_max = max((n for at, n in backlog if hold <= at < release), default=0)
    drained = next(
        (
            at
            for index, (at, n) in enumerate(backlog)
            if at >= timeline.release_at
            and all(m <= before_max + held.per_call for _, m in backlog[index:])
        ),
        None,
    )
    released = timeline.release_at - timeline.hold_at
    latency_back = None if back is None else back["to_s"] - released
    return {
        "window_s": width,
        "pre_hold_p99_level_ms": level,
        "windows_after": after,
        "latency_back_after_s": latency_back,
        "p99_under_target_after_s": None if under is None else under["to_s"] - released,
        "backlog_max_before": before_max,
        "backlog_max_hold": hold_max,
        "backlog_back_after_s": None if drained is None else drained - timeline.release_at,
        "target_met": latency_back is not None and latency_back <= RECOVERY_TARGET_S,
    }


async def measure_held_snapshot(
    admin_dsn: str, options: Options, held: HeldOptions, retention: int, log: Log
) -> dict[str, Any]:
    """The load, a snapshot held for ``held.hold`` s, released, the load again; see the module."""
    system = Tuned(retention=retention)
    name = f"cliff-held-retention{retention}"
    timeline = Timeline()
    async with scratch_database(admin_dsn, f"docko_held_r{retention}") as dsn:
        await system.install(dsn)
        await system.open(dsn)
        worker = worker_for(system, dsn, options, name)
        conn = await asyncpg.connect(dsn)
        holder = await asyncpg.connect(dsn)
        sampler: asyncio.Task[None] | None = None
        vacuumer: asyncio.Task[None] | None = None
        vacuums: list[dict[str, Any]] = []
        settings = await autovacuum_settings(dsn)
        emulated = held.emulate_autovacuum and settings["autovacuum"] == "off"
        try:
            await start_settled(system, conn, worker, options)
            sampler = asyncio.create_task(_sample(conn, worker, timeline))
            if emulated:
                vacuumer = asyncio.create_task(emulate(dsn, settings, vacuums))
            timeline.load_at = time.time()
            seconds = held.before + held.hold + held.after
            producer = asyncio.create_task(_produce(system, held, timeline, seconds))
            await asyncio.sleep(held.before)
            await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            await holder.fetchval("SELECT 1 FROM docko_jobs LIMIT 1")
            timeline.hold_at = time.time()
            at_hold = await conn.fetchrow(TABLE_STATS_SQL)
            await asyncio.sleep(held.hold)
            at_release = await conn.fetchrow(TABLE_STATS_SQL)
            await holder.execute("ROLLBACK")
            timeline.release_at = time.time()
            await producer
            timeline.end_at = time.time()
            for task in (sampler, vacuumer):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await wait_until_finished(conn, system, worker, options.poll_interval, limit=600)
            peak_rss = worker.peak_rss_bytes()
            exit_code = await worker.stop()
        finally:
            for task in (sampler, vacuumer):
                if task is not None:
                    task.cancel()
            worker.kill()
            await holder.close()
            await conn.close()
            await system.close()
    records = [r for r in worker.records() if r.seq >= 0]
    ran_in_hold = sum(1 for r in records if timeline.hold_at <= r.started_at < timeline.release_at)
    phases = {
        phase: percentiles(
            [
                (r.started_at - r.enqueued_at) * 1000
                for r in records
                if _phase(r.enqueued_at, timeline) == phase
            ]
        )
        for phase in ("before", "hold", "after")
    }
    windows = [
        window
        for start, stop in (
            (timeline.load_at, timeline.hold_at),
            (timeline.hold_at, timeline.release_at),
            (timeline.release_at, timeline.end_at),
        )
        for window in _windows(records, timeline, start, stop, held.window)
    ]
    worst = max((w["p99_ms"] for w in windows if w["jobs"]), default=float("nan"))
    dead_growth = at_release["n_dead_tup"] - at_hold["n_dead_tup"]
    result = {
        "retention": retention,
        "rate": held.rate,
        "per_call": held.per_call,
        "before_s": held.before,
        "hold_s": held.hold,
        "after_s": held.after,
        "enqueued": timeline.enqueued,
        "phases": phases,
        "windows": windows,
        "worst_window_p99_ms": worst,
        "recovery": _recovery(records, timeline, held),
        "ran_during_hold": ran_in_hold,
        "dead_tuples_at_release": at_release["n_dead_tup"],
        "dead_tuples_per_job": at_release["n_dead_tup"] / ran_in_hold if ran_in_hold else None,
        "dead_growth_per_job": dead_growth / ran_in_hold if ran_in_hold else None,
        "table_mib_at_hold": at_hold["bytes"] / 2**20,
        "table_mib_at_release": at_release["bytes"] / 2**20,
        "autovacuum": settings["autovacuum"],
        "autovacuum_naptime": settings["autovacuum_naptime"],
        "vacuum_emulated": emulated,
        "vacuums": [run | {"at_s": run["at"] - timeline.hold_at} for run in vacuums],
        "peak_rss_mb": peak_rss / 2**20,
        "p99_target_met": worst <= P99_TARGET_MS,
        "exit_code": exit_code,
        **verify(worker.records(), [WARM_UP_SEQ, *range(timeline.enqueued)]),
    }
    log(
        f"  held snapshot (retention {retention}): p99 before/hold/after "
        f"{phases['before']['p99_ms']:.1f}/{phases['hold']['p99_ms']:.1f}/"
        f"{phases['after']['p99_ms']:.1f} ms, worst {held.window:g} s window {worst:.1f} ms, "
        f"back after {result['recovery']['latency_back_after_s']} s, "
        f"{result['dead_tuples_per_job'] or 0:.2f} dead tuples/job, "
        f"exactly once: {result['exactly_once']}"
    )
    return result
