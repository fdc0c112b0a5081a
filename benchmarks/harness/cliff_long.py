"""Cliff 4: thousands of long-running jobs held by one daemon, their leases kept by heartbeats.

``jobs`` jobs of the ``sleep`` handler (the benchmark's bookkeeping, then ``asyncio.sleep`` for the
payload's seconds) queued, then one daemon with ``DOCKO_WORKER_COUNT`` = ``jobs`` (all run at
once), a short lease (``DOCKO_VISIBILITY_TIMEOUT``) and ``DOCKO_HEARTBEAT_INTERVAL``, so several
heartbeats happen while they run; default retention, so every row and its ``attempt`` stay.

The heartbeat is one statement (``extend_leases``) over every held job. Observed from outside:
``pg_stat_activity`` of the daemon's connections is sampled every ``sample`` s; a sample that
finds the statement done (its backend idle, the statement still shown) gives its exact duration,
``state_change - query_start``; one that only ever saw it running gives a lower bound. As a
cross-check, the same statement is run from a connection of the harness over every running row,
half an interval after a daemon heartbeat, and timed by the client. Leases lost: jobs with
``attempt > 1`` and the daemon's ``lease_lost`` log lines. Targets: each heartbeat under 50 ms,
none lost, every job run exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from .cliff_tools import Tuned, enqueue_seeded, log_count, percentiles, worker_for
from .db import scratch_database
from .scenarios import Options, verify, wait_until_finished
from .stats import percentile

Log = Callable[[str], None]

SLEEP_TYPE = "sleep"
HEARTBEAT_TARGET_MS = 50.0
LOG_EVENTS = ("lease_lost", "heartbeat_failed", "heartbeat_late_leases_at_risk")

# The daemon's heartbeat statement, recognised by its text (unique to extend_leases).
HEARTBEAT_ACTIVITY_SQL = """
SELECT pid, query_start, state, state_change, clock_timestamp() AS now,
       coalesce(wait_event_type || ':' || wait_event, 'no wait') AS waiting
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'docko-worker'
  AND query LIKE '%AS held(job_id, attempt)%'
"""
RUNNING_SQL = "SELECT id, attempt, worker_id FROM docko_jobs WHERE state = 'running' ORDER BY id"
RUNNING_COUNT_SQL = "SELECT count(*) FROM docko_jobs WHERE state = 'running'"


@dataclass(frozen=True, slots=True)
class LongOptions:
    jobs: int = 10_000
    seconds: float = 60.0
    lease: float = 15.0
    heartbeat: float = 5.0
    sample: float = 0.005
    cross_checks: int = 3


@dataclass(slots=True)
class Heartbeats:
    """Every heartbeat seen, by (backend pid, statement start): its duration in ms, and whether
    it is exact (seen finished) or a lower bound (only seen running)."""

    seen: dict[tuple[int, Any], tuple[float, bool]] = field(default_factory=dict)
    samples: int = 0
    # What the statement was waiting on, over the samples that found it running.
    waits: Counter[str] = field(default_factory=Counter)

    def add(self, row: Any) -> None:
        key = (row["pid"], row["query_start"])
        if row["state"] == "active":
            self.waits[row["waiting"]] += 1
            if key in self.seen and self.seen[key][1]:
                return
            running = (row["now"] - row["query_start"]).total_seconds() * 1000
            previous = self.seen.get(key, (0.0, False))[0]
            self.seen[key] = (max(previous, running), False)
        elif row["state_change"] is not None and row["state_change"] >= row["query_start"]:
            took = row["state_change"] - row["query_start"]
            self.seen[key] = (took.total_seconds() * 1000, True)

    def last_start(self) -> float | None:
        return max((key[1].timestamp() for key in self.seen), default=None)


async def _watch(conn: Any, beats: Heartbeats, every: float) -> None:
    while True:
        for row in await conn.fetch(HEARTBEAT_ACTIVITY_SQL):
            beats.add(row)
        beats.samples += 1
        await asyncio.sleep(every)


async def _cross_check(
    dsn: str, beats: Heartbeats, long: LongOptions, jobs: int
) -> list[dict[str, Any]]:
    """Once every job runs: ``cross_checks`` times, half an interval after a daemon heartbeat,
    the heartbeat's statement over every running row from the harness's connection, timed."""
    from docko_worker.statements import SQL

    checker = await asyncpg.connect(dsn)
    timings = []
    try:
        while True:
            if int(await checker.fetchval(RUNNING_COUNT_SQL)) >= jobs:
                break
            await asyncio.sleep(0.2)
        statement = await checker.prepare(SQL.extend_leases)
        for _ in range(long.cross_checks):
            seen = beats.last_start()
            while True:
                if beats.last_start() != seen:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(long.heartbeat / 2)
            rows = await checker.fetch(RUNNING_SQL)
            worker_id = rows[0]["worker_id"] if rows else ""
            started = time.perf_counter()
            kept = await statement.fetch(
                [r["id"] for r in rows], [r["attempt"] for r in rows], worker_id, long.lease
            )
            timings.append(
                {"rows": len(rows), "kept": len(kept), "ms": (time.perf_counter() - started) * 1000}
            )
    finally:
        await checker.close()
    return timings


async def measure_long_jobs(
    admin_dsn: str, options: Options, long: LongOptions, log: Log
) -> dict[str, Any]:
    env = {
        "DOCKO_VISIBILITY_TIMEOUT": f"{long.lease:g}",
        "DOCKO_HEARTBEAT_INTERVAL": f"{long.heartbeat:g}",
    }
    system = Tuned(retention=86_400, env=env, job_type=SLEEP_TYPE, worker_count=long.jobs)
    name = "cliff-long-jobs"
    beats = Heartbeats()
    async with scratch_database(admin_dsn, "docko_long") as dsn:
        await system.install(dsn)
        await system.open(dsn)
        try:
            await enqueue_seeded(system, SLEEP_TYPE, long.jobs, sleep=long.seconds)
        finally:
            await system.close()
        worker = worker_for(system, dsn, options, name)
        conn = await asyncpg.connect(dsn)
        watcher_conn = await asyncpg.connect(dsn)
        watcher = asyncio.create_task(_watch(watcher_conn, beats, long.sample))
        checks: list[dict[str, Any]] | None = None
        try:
            worker.start()
            checking = asyncio.create_task(_cross_check(dsn, beats, long, long.jobs))
            progress = await wait_until_finished(
                conn, system, worker, 0.2, limit=long.seconds * 3 + 300, stall=long.seconds * 2
            )
            if checking.done():
                checks = checking.result()
            else:
                checking.cancel()
            peak_rss = worker.peak_rss_bytes()
            exit_code = await worker.stop()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            attempts = dict(
                await conn.fetch(
                    "SELECT attempt, count(*) FROM docko_jobs GROUP BY attempt ORDER BY 1"
                )
            )
            states = dict(
                await conn.fetch("SELECT state::text, count(*) FROM docko_jobs GROUP BY 1")
            )
        finally:
            watcher.cancel()
            worker.kill()
            await watcher_conn.close()
            await conn.close()
    records = worker.records()
    starts = sorted(r.started_at for r in records)
    durations = [ms for ms, _ in beats.seen.values()]
    exact = [ms for ms, done in beats.seen.values() if done]
    logged = log_count(worker, LOG_EVENTS)
    result = {
        "jobs": long.jobs,
        "sleep_s": long.seconds,
        "lease_s": long.lease,
        "heartbeat_interval_s": long.heartbeat,
        "sample_ms": long.sample * 1000,
        "samples": beats.samples,
        "seconds": progress.done_after,
        "start_spread_s": starts[-1] - starts[0] if starts else None,
        "heartbeats": len(durations),
        "heartbeats_exact": len(exact),
        "heartbeat_ms": percentiles(durations) | {"all": sorted(durations)},
        "heartbeat_p50_ms": percentile(durations, 50),
        "heartbeat_max_ms": max(durations, default=float("nan")),
        "cross_checks": checks or [],
        "heartbeat_waits_sampled": dict(beats.waits.most_common()),
        "attempts": {str(k): v for k, v in attempts.items()},
        "states": states,
        "leases_lost": sum(v for k, v in attempts.items() if k > 1),
        "log_events": logged,
        "peak_rss_mb": peak_rss / 2**20,
        "exit_code": exit_code,
        **verify(records, range(long.jobs)),
    }
    result["target_met"] = (
        result["heartbeat_max_ms"] < HEARTBEAT_TARGET_MS
        and result["leases_lost"] == 0
        and logged["lease_lost"] == 0
    )
    log(
        f"  {long.jobs:,} long jobs: {len(durations)} heartbeats seen, "
        f"p50/max {result['heartbeat_p50_ms']:.1f}/{result['heartbeat_max_ms']:.1f} ms; "
        f"client-side {[round(c['ms'], 1) for c in checks or []]} ms; leases lost "
        f"{result['leases_lost']} ({logged['lease_lost']} logged); peak RSS "
        f"{result['peak_rss_mb']:.0f} MiB; exactly once: {result['exactly_once']}"
    )
    return result
