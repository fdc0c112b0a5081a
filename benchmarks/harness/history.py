"""docko-worker with a long history: kept rows that must not slow the burn-down, and pruning that
must not stall claims.

History is seeded as production leaves it: completed rows with time-ordered ids (UUIDv7, built
like the ``new_job_id`` fragment of ``sql/queries.sql``, from each row's own creation time),
created and finished over a span of hours in the past, oldest first, with payloads of the
benchmark's shape and size. The seed is followed by ``VACUUM ANALYZE`` (as autovacuum would leave
the table) and ``CHECKPOINT``, so its writes are not flushed during the measured run.

- Kept history: ``kept`` rows finished over the last 20 hours (younger than the default
  retention, so the pruner leaves them), then for each run ``--jobs`` queued and burned down by
  the daemon with the default retention, and the same on a fresh table right before or after
  it (alternately). One seeded database per size serves every run; each run starts with
  ``VACUUM ANALYZE``.
- Pruning: ``rows`` rows finished two days ago (past the default retention), a daemon with the
  default retention pruning every ``prune_interval`` seconds, and the latency scenario (single
  enqueues at a fixed interval, enqueue to handler start) while the pruner deletes them; then
  the same window again on the same daemon once they are gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from .adapters.base import JOB_TYPE, QUEUE, WorkerCommand, payload
from .adapters.docko import DEFAULT_RETENTION, Docko
from .db import checkpoint, scratch_database
from .scenarios import (
    WARM_UP_SEQ,
    Options,
    _percentiles,
    _start_settled,
    _worker,
    measure_burn_down,
    measure_enqueue,
    verify,
    wait_until_finished,
)

Log = Callable[[str], None]
Attempt = Callable[[dict[str, Any], Awaitable[dict[str, Any]]], Awaitable[None]]

HOUR = 3600.0
# Kept history spans this many seconds before now: younger than the default retention.
KEPT_SPAN = 20 * HOUR
# Prunable history ends this long before now (past the default retention) and spans KEPT_SPAN.
PRUNABLE_AGE = 2 * 86_400.0
# Rows per INSERT while seeding: each chunk commits on its own, as a day of jobs would.
SEED_CHUNK = 500_000
# Seconds between polls of the prunable rows left, once the latency window has closed.
PRUNE_POLL = 0.25
PRUNE_LIMIT = 900.0

# Completed rows n = $3 .. $4, row n created at $5 + n * $6 seconds and finished 2 ms later; the
# id is the new_job_id fragment's UUIDv7 with the row's creation time instead of the clock's, the
# payload the benchmark's own {"seq": n, "t": enqueue time} (negative seqs: never a handler's).
SEED_HISTORY_SQL = """
INSERT INTO docko_jobs (id, queue_name, job_type, payload, state, attempt, max_attempts,
                        created_at, updated_at, run_at, finished_at, worker_id)
SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
           placing substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3)
           FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
       $1, $2,
       ('{"seq": ' || -n || ', "t": ' || round(extract(epoch FROM at), 6) || '}')::json,
       'completed', 1, 5, at, at + interval '2 ms', at, at + interval '2 ms', $7
FROM generate_series($3::bigint, $4::bigint) AS n
CROSS JOIN LATERAL (SELECT $5::timestamptz + make_interval(secs => n * $6::float8) AS at) AS t
ORDER BY n
"""

# Completed rows past the default retention, which the pruner deletes.
PRUNABLE_SQL = """
SELECT count(*) FROM docko_jobs
WHERE state = 'completed' AND finished_at < now() - make_interval(secs => $1::float8)
"""

# Whether the daemon's prune statement (prune_finished_jobs) is executing now: a look at
# pg_stat_activity, which costs nothing on the table, so it can run through the latency window.
PRUNE_ACTIVE_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
  AND query LIKE '%doomed_ctid%'
"""
# Seconds between two looks at pg_stat_activity.
ACTIVITY_POLL = 0.05
# The first sweep deletes the whole backlog, statement after statement, so looks finding it run
# this close together; the later sweeps (every prune interval, nothing to delete) are blips
# further apart, which do not count as pruning.
SWEEP_GAP = 0.5

SEED_WORKER_ID = "bench-history:1:00000000"


async def seed_history(dsn: str, rows: int, age: float, span: float = KEPT_SPAN) -> dict[str, Any]:
    """``rows`` completed rows finished over ``span`` seconds ending ``age`` seconds ago, then
    ``VACUUM ANALYZE`` and ``CHECKPOINT``; the seconds each step took."""
    conn = await asyncpg.connect(dsn)
    try:
        oldest = await conn.fetchval("SELECT now() - make_interval(secs => $1::float8)", age + span)
        step = span / max(rows, 1)
        started = time.perf_counter()
        for first in range(1, rows + 1, SEED_CHUNK):
            last = min(first + SEED_CHUNK - 1, rows)
            await conn.execute(
                SEED_HISTORY_SQL,
                QUEUE,
                JOB_TYPE,
                first,
                last,
                oldest,
                step,
                SEED_WORKER_ID,
                timeout=1800,
            )
        inserted = time.perf_counter()
        await conn.execute("VACUUM ANALYZE docko_jobs", timeout=1800)
        vacuumed = time.perf_counter()
        size = await conn.fetchval("SELECT pg_total_relation_size('docko_jobs')")
    finally:
        await conn.close()
    checkpoint_seconds = await checkpoint(dsn)
    return {
        "rows": rows,
        "insert_seconds": inserted - started,
        "vacuum_seconds": vacuumed - inserted,
        "checkpoint_seconds": checkpoint_seconds,
        "seconds": time.perf_counter() - started,
        "table_mb": size / 2**20,
    }


async def run_kept(
    admin_dsn: str,
    options: Options,
    kept: int,
    runs: int,
    log: Log,
    attempt: Attempt,
) -> dict[str, Any]:
    """``kept`` history rows seeded once, then ``runs`` burn-downs of ``options.jobs`` on them
    with the default retention; each run's results go through ``attempt`` into the entry."""
    entry: dict[str, Any] = {"label": f"docko {kept:,} kept", "kept": kept, "runs": []}
    system = Docko(retention=DEFAULT_RETENTION)
    async with scratch_database(admin_dsn, "docko_kept") as dsn:
        await system.install(dsn)
        seed = await seed_history(dsn, kept, age=0.0)
        entry["seed"] = seed
        log(
            f"  docko {kept:,} kept: seeded in {seed['seconds']:.0f} s (insert "
            f"{seed['insert_seconds']:.0f} s, VACUUM ANALYZE {seed['vacuum_seconds']:.0f} s, "
            f"CHECKPOINT {seed['checkpoint_seconds']:.1f} s), table {seed['table_mb']:,.0f} MiB"
        )
        for run in range(1, runs + 1):
            await attempt(entry, _kept_run(system, admin_dsn, dsn, options, kept, run, log))
    return entry


async def _kept_run(
    system: Docko, admin_dsn: str, dsn: str, options: Options, kept: int, run: int, log: Log
) -> dict[str, Any]:
    """One burn-down beside the history, and one on a fresh table right before or after it
    (alternately), so the two are compared at the same moment of a shared machine."""
    if run > 1:  # the previous run's claimed and completed row versions, as autovacuum would
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE docko_jobs", timeout=1800)
        finally:
            await conn.close()
    fresh_first = run % 2 == 0
    if fresh_first:
        fresh = await _fresh_burn_down(admin_dsn, options, f"docko-fresh{kept}-run{run}")
    await system.open(dsn)
    try:
        enqueue = await measure_enqueue(system, options.jobs)
    finally:
        await system.close()
    burn = await measure_burn_down(system, dsn, options, f"docko-kept{kept}-run{run}", options.jobs)
    if not fresh_first:
        fresh = await _fresh_burn_down(admin_dsn, options, f"docko-fresh{kept}-run{run}")
    log(
        f"  docko {kept:,} kept + {options.jobs:,} queued (run {run}): burn-down "
        f"{burn['throughput']:,.0f} jobs/s, {burn.get('processing_rate') or 0:,.0f} jobs/s "
        f"processing (fresh table alongside: {fresh['throughput']:,.0f}, "
        f"{fresh.get('processing_rate') or 0:,.0f}), exactly once: {burn['exactly_once']}"
    )
    return {"kept": kept, "enqueue": enqueue, "burn_down": burn, "fresh_burn_down": fresh}


async def _fresh_burn_down(admin_dsn: str, options: Options, name: str) -> dict[str, Any]:
    """The default-retention burn-down of ``options.jobs`` on a fresh table."""
    system = Docko(retention=DEFAULT_RETENTION)
    async with scratch_database(admin_dsn, "docko_fresh") as dsn:
        await system.install(dsn)
        await system.open(dsn)
        try:
            await measure_enqueue(system, options.jobs)
        finally:
            await system.close()
        return await measure_burn_down(system, dsn, options, name, options.jobs)


class PruningDocko(Docko):
    """docko-worker with the default retention, pruning every ``prune_interval`` seconds."""

    def __init__(self, prune_interval: float) -> None:
        super().__init__(retention=DEFAULT_RETENTION)
        self.prune_interval = prune_interval
        self.key, self.label = "docko-prune", "docko-worker (pruning)"

    def worker_command(self, dsn: str) -> WorkerCommand:
        command = super().worker_command(dsn)
        env = {**command.env, "DOCKO_PRUNE_INTERVAL": f"{self.prune_interval:g}"}
        return WorkerCommand(command.argv, env)


async def _prunable(conn: Any) -> int:
    return int(await conn.fetchval(PRUNABLE_SQL, DEFAULT_RETENTION))


async def _watch_pruner(dsn: str, seen: list[float]) -> None:
    """Append the moment (``perf_counter``) of every look that finds the prune statement
    running, until cancelled."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            if await conn.fetchval(PRUNE_ACTIVE_SQL):
                seen.append(time.perf_counter())
            await asyncio.sleep(ACTIVITY_POLL)
    finally:
        await conn.close()


async def run_pruning(
    admin_dsn: str, options: Options, rows: int, prune_interval: float, run: int, log: Log
) -> dict[str, Any]:
    """``rows`` prunable rows seeded, then the latency scenario while the daemon prunes them."""
    system = PruningDocko(prune_interval)
    async with scratch_database(admin_dsn, "docko_prune") as dsn:
        await system.install(dsn)
        seed = await seed_history(dsn, rows, age=PRUNABLE_AGE)
        await system.open(dsn)
        try:
            result = await _latency_while_pruning(system, dsn, options, rows, run)
        finally:
            await system.close()
    result["seed"] = seed
    latency, after, pruning = result["latency"], result["latency_after"], result["pruning"]
    log(
        f"  docko latency while pruning {rows:,} rows (run {run}): p50 "
        f"{latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms (after pruning: "
        f"{after['p50_ms']:.1f}, {after['p99_ms']:.1f} ms); "
        f"{pruning['pruned_in_window']:,} pruned in the window; pruning ran "
        f"{pruning['pruning_seen_from'] or float('nan'):.1f}-"
        f"{pruning['pruning_seen_until'] or float('nan'):.1f} s after worker start; "
        f"exactly once: {latency['exactly_once']}"
    )
    return result


def first_sweep(seen: list[float], gap: float = SWEEP_GAP) -> list[float]:
    """The looks of ``seen`` up to the first pause longer than ``gap``: the backlog's sweep."""
    for index in range(1, len(seen)):
        if seen[index] - seen[index - 1] > gap:
            return seen[:index]
    return seen


async def _window(
    system: PruningDocko, conn: Any, worker: Any, options: Options, first_seq: int
) -> tuple[float, float]:
    """``measure_latency``'s window: ``latency_jobs`` single enqueues ``latency_interval``
    apart, waited for; its start and end (``perf_counter``)."""
    start = time.perf_counter()
    for index in range(options.latency_jobs):
        delay = start + index * options.latency_interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await system.enqueue_one(payload(first_seq + index, time.time()))
    await wait_until_finished(conn, system, worker, options.poll_interval, limit=120)
    return start, time.perf_counter()


def _latency(records: list[Any], seqs: range, options: Options) -> dict[str, Any]:
    latencies = [(r.started_at - r.enqueued_at) * 1000 for r in records if r.seq in seqs]
    return {
        "jobs": len(seqs),
        "interval_ms": options.latency_interval * 1000,
        **_percentiles(latencies),
    }


async def _latency_while_pruning(
    system: PruningDocko, dsn: str, options: Options, rows: int, run: int
) -> dict[str, Any]:
    """A settled worker, the latency window with the prunable rows counted at its start and end,
    then those polled until none is left, and the same window again once the pruner is done:
    the clean latency of the same daemon, at the same moment of the shared machine."""
    worker = _worker(system, dsn, options, f"docko-prune-run{run}")
    conn = await asyncpg.connect(dsn)
    count = options.latency_jobs
    all_pruned_after: float | None = None
    seen: list[float] = []
    watch = asyncio.create_task(_watch_pruner(dsn, seen))
    try:
        await _start_settled(system, conn, worker, options)
        left_at_start = await _prunable(conn)
        window_start, window_end = await _window(system, conn, worker, options, 0)
        left_at_end = await _prunable(conn)
        left = left_at_end
        while left and time.perf_counter() - worker.started_at < PRUNE_LIMIT:
            worker.check_alive()
            await asyncio.sleep(PRUNE_POLL)
            left = await _prunable(conn)
        if not left:
            all_pruned_after = time.perf_counter() - worker.started_at
        await asyncio.sleep(options.settle_seconds)
        await _window(system, conn, worker, options, count)
        exit_code = await worker.stop()
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        worker.kill()
        await conn.close()
    records = worker.records()
    sweep = first_sweep(seen)
    return {
        "latency": {
            **_latency(records, range(count), options),
            "exit_code": exit_code,
            **verify(records, [WARM_UP_SEQ, *range(2 * count)]),
        },
        "latency_after": _latency(records, range(count, 2 * count), options),
        "pruning": {
            "rows": rows,
            "prune_interval_s": system.prune_interval,
            "window_started_after": window_start - worker.started_at,
            "window_seconds": window_end - window_start,
            "left_at_window_start": left_at_start,
            "left_at_window_end": left_at_end,
            "pruned_in_window": left_at_start - left_at_end,
            "all_pruned_after": all_pruned_after,
            # First and last look (every 50 ms) that found the backlog's sweep running.
            "pruning_seen_from": sweep[0] - worker.started_at if sweep else None,
            "pruning_seen_until": sweep[-1] - worker.started_at if sweep else None,
            "pruning_seconds": sweep[-1] - sweep[0] if sweep else None,
            "prune_rate": rows / (sweep[-1] - sweep[0]) if len(sweep) > 1 else None,
            "prune_statement_seen": len(seen),
        },
    }
