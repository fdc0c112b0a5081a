"""Cliff 3: one daemon serving many queues, against one queue holding the same jobs.

Each run, two fresh databases, one after the other: ``queues x per_queue`` no-op jobs in the
benchmark's single queue, burned down by a daemon serving it (``measure_burn_down``, the
benchmark's settings, retention 0); then ``per_queue`` jobs in each of ``queues`` queues
(``q000``, ``q001``, ...; one ``enqueue_many`` call per queue, in queue order), burned down by one
daemon with all of them in ``DOCKO_QUEUES``. Compared: the burn-down rate (target: the many-queue
rate at least 0.8x the single queue's), and per queue the moment its last job started (from the
first handler start; a no-op job's start is its finish to the millisecond), min/median/max, so a
starved queue shows as a long tail.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .cliff_tools import Tuned, read_records
from .db import scratch_database
from .scenarios import Options, measure_burn_down, measure_enqueue

Log = Callable[[str], None]

RATIO_TARGET = 0.8


def queue_names(count: int) -> list[str]:
    return [f"q{index:03d}" for index in range(count)]


def _spread(options: Options, name: str, per_queue: int) -> dict[str, Any]:
    """Per queue, its first and last handler start after the run's first one (seconds)."""
    records = [r for r in read_records(options, name) if r.seq >= 0]
    if not records:
        return {}
    origin = min(r.started_at for r in records)
    first: dict[int, float] = defaultdict(lambda: float("inf"))
    last: dict[int, float] = defaultdict(float)
    for r in records:
        queue = r.seq // per_queue
        first[queue] = min(first[queue], r.started_at - origin)
        last[queue] = max(last[queue], r.started_at - origin)
    lasts, firsts = sorted(last.values()), sorted(first.values())
    return {
        "queues_seen": len(last),
        "last_start_min_s": lasts[0],
        "last_start_median_s": statistics.median(lasts),
        "last_start_max_s": lasts[-1],
        "first_start_max_s": firsts[-1],
    }


async def measure_many_queues(
    admin_dsn: str, options: Options, queues: int, per_queue: int, run: int, log: Log
) -> dict[str, Any]:
    jobs = queues * per_queue
    single = Tuned(retention=0)
    async with scratch_database(admin_dsn, "docko_one_queue") as dsn:
        await single.install(dsn)
        await single.open(dsn)
        try:
            await measure_enqueue(single, jobs)
        finally:
            await single.close()
        one = await measure_burn_down(single, dsn, options, f"cliff-one-queue-run{run}", jobs)
    names = queue_names(queues)
    many = Tuned(retention=0, queues=names)
    name = f"cliff-many-queues-run{run}"
    async with scratch_database(admin_dsn, "docko_many_queues") as dsn:
        await many.install(dsn)
        await many.open(dsn)
        try:
            started = time.perf_counter()
            for index, queue in enumerate(names):
                now = time.time()
                payloads = [{"seq": index * per_queue + n, "t": now} for n in range(per_queue)]
                await many.enqueue_typed(many.job_type, payloads, queue)
            enqueue_seconds = time.perf_counter() - started
        finally:
            await many.close()
        burn = await measure_burn_down(many, dsn, options, name, jobs)
    burn |= _spread(options, name, per_queue)
    ratio = burn["throughput"] / one["throughput"]
    log(
        f"  {queues} queues x {per_queue}: burn-down {burn['throughput']:,.0f} jobs/s vs "
        f"{one['throughput']:,.0f} in one queue ({ratio:.2f}x); last start per queue "
        f"min/median/max {burn.get('last_start_min_s', 0):.2f}/"
        f"{burn.get('last_start_median_s', 0):.2f}/{burn.get('last_start_max_s', 0):.2f} s, "
        f"exactly once: {burn['exactly_once'] and one['exactly_once']}"
    )
    return {
        "queues": queues,
        "per_queue": per_queue,
        "one_queue": one,
        "many_queues": burn | {"enqueue_seconds": enqueue_seconds},
        "ratio": ratio,
        "processing_ratio": (burn.get("processing_rate") or 0)
        / (one.get("processing_rate") or float("nan")),
        "target_met": ratio >= RATIO_TARGET,
        "exactly_once": burn["exactly_once"] and one["exactly_once"],
    }
