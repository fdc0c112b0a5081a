"""Fault: hostile handlers under SIGKILL. Every exception shape that once stranded a job.

Three daemons run the ordinary workload beside ``chaos_hostile`` jobs whose first two attempts end
with one of: an error whose ``__str__`` raises, a ``CancelledError`` of the handler's own, a
``SystemExit``, a ``BaseException`` that is no ``Exception``, an error message with NUL
characters, and one with a lone surrogate; a random daemon is SIGKILLed every ~2 s. The checker
proves every job final (nothing left ``running``), each attempt executed once or explained, and
the hostile jobs completed on their third attempt: a hostile ending spent its attempt, never a
worker.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    Fleet,
    Producer,
    connect,
    daemon_env,
    kill_random_daemons,
    stop_and_check,
    stop_task,
    wait_until_final,
)
from chaos_harness import workload as make_workload

pytestmark = pytest.mark.chaos

ORDINARY = 900
PER_SHAPE = 50
SHAPES = ("unprintable", "own_cancel", "system_exit", "base_exception", "nul", "surrogate")
DAEMONS = 3


async def test_hostile_handlers_under_sigkill_strand_nothing(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db)
    rng = random.Random(20261130)
    faults = Faults()
    hostile = [{"shape": shape, "n": n} for n in range(PER_SHAPE) for shape in SHAPES]
    rng.shuffle(hostile)
    async with Producer(chaos_db) as producer:
        hostile_ids = await producer.enqueue(hostile, job_type="chaos_hostile", max_attempts=5)
        ids = hostile_ids + await producer.enqueue(make_workload(ORDINARY))
    for _ in range(DAEMONS):
        fleet.start(env)

    conn = await connect(chaos_db)
    task = asyncio.create_task(kill_random_daemons(fleet, env, rng, faults))
    try:
        await wait_until_final(conn, fleet, len(ids))
        rows = await conn.fetch(
            "SELECT state::text AS state, attempt, last_error FROM docko_jobs"
            " WHERE id = ANY($1::uuid[])",
            hostile_ids,
        )
    finally:
        killer_failed = await stop_task(task)
        await conn.close()
    assert killer_failed is None, f"the killer failed: {killer_failed!r}"

    result = await stop_and_check("hostile handlers + SIGKILL", chaos_db, fleet, ids, faults)
    result.notes["hostile shapes"] = ", ".join(SHAPES)
    result.notes["daemons killed"] = str(len(faults.killed))
    chaos_report.add(result)
    result.assert_ok()
    assert {row["state"] for row in rows} == {"completed"}
    # Each hostile ending spent an attempt (none was handed back unspent).
    assert min(row["attempt"] for row in rows) >= 3
