"""Exactly-once effects through transactional completion, under SIGKILL of random daemons.

Handlers (``chaos_once``, async on asyncpg, and ``chaos_once_sync``, a plain def on psycopg in the
daemon's threads) insert one row per job into ``chaos_effects`` and complete the job in the same
transaction. Daemons are SIGKILLed every ~2 s, mid-handler: the killed runs' transactions roll
back with their connections, their jobs run again after their lease, so some handlers run twice,
yet every job's effect exists exactly once. The chaos checker also holds every run to its rules.
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

JOBS_PER_HANDLER = 1000
DAEMONS = 3

EFFECTS_TABLE = """
CREATE TABLE chaos_effects (
    job_id  uuid    NOT NULL,
    attempt integer NOT NULL,
    pid     integer NOT NULL
)
"""


async def test_effects_exactly_once_under_sigkill(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db)
    rng = random.Random(20240717)
    faults = Faults()
    conn = await connect(chaos_db)
    await conn.execute(EFFECTS_TABLE)
    async with Producer(chaos_db) as producer:
        ids = await producer.enqueue(make_workload(JOBS_PER_HANDLER), job_type="chaos_once")
        ids += await producer.enqueue(make_workload(JOBS_PER_HANDLER), job_type="chaos_once_sync")
    for _ in range(DAEMONS):
        fleet.start(env)

    task = asyncio.create_task(kill_random_daemons(fleet, env, rng, faults))
    try:
        await wait_until_final(conn, fleet, len(ids))
    finally:
        killer_failed = await stop_task(task)
    assert killer_failed is None, f"the killer failed: {killer_failed!r}"

    try:
        result = await stop_and_check(
            "exactly once, SIGKILL every ~2 s", chaos_db, fleet, ids, faults
        )
        effects = {
            row["job_id"]: row["n"]
            for row in await conn.fetch(
                "SELECT job_id, count(*) AS n FROM chaos_effects GROUP BY job_id"
            )
        }
        runs = {
            row["job_id"]: row["n"]
            for row in await conn.fetch(
                "SELECT job_id, count(*) AS n FROM chaos_runs GROUP BY job_id"
            )
        }
    finally:
        await conn.close()
    ran_twice = sum(1 for n in runs.values() if n > 1)
    result.notes["daemons killed"] = str(len(faults.killed))
    result.notes["jobs whose handler ran more than once"] = str(ran_twice)
    chaos_report.add(result)
    result.assert_ok()
    assert result.completed == len(ids)
    assert effects == dict.fromkeys(ids, 1), "a job's effect is missing or repeated"
    assert result.duplicate_count == 0
    assert faults.killed, "the run ended before any daemon was killed: enlarge the workload"
    assert ran_twice, "no handler was cut off mid-run: nothing was proven"
