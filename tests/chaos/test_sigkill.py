"""Fault 1: SIGKILL of a random daemon every ~2 s, restarted at once, three daemons running.

A killed daemon's jobs stay ``running`` until their lease (2 s here) expires and a surviving
daemon's rescuer makes them claimable again; a job whose success was recorded by the handler but
whose completion write died with the process runs again (at-least-once). The checker counts those
duplicates and matches each to the pid that was killed.
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

JOBS = 2500
DAEMONS = 3


async def test_sigkill_a_random_daemon_every_two_seconds(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db)
    rng = random.Random(20240601)
    faults = Faults()
    async with Producer(chaos_db) as producer:
        ids = await producer.enqueue(make_workload(JOBS))
    for _ in range(DAEMONS):
        fleet.start(env)

    conn = await connect(chaos_db)
    task = asyncio.create_task(kill_random_daemons(fleet, env, rng, faults))
    try:
        await wait_until_final(conn, fleet, JOBS)
    finally:
        killer_failed = await stop_task(task)
        await conn.close()
    assert killer_failed is None, f"the killer failed: {killer_failed!r}"

    result = await stop_and_check("SIGKILL every ~2 s", chaos_db, fleet, ids, faults)
    result.notes["daemons killed"] = str(len(faults.killed))
    chaos_report.add(result)
    result.assert_ok()
    assert faults.killed, "the run ended before any daemon was killed: enlarge the workload"
