"""Fault 2: ``pg_terminate_backend`` on every daemon connection, LISTEN included, several times.

Two daemons run while jobs arrive in bursts; every ~1.2 s the test terminates every backend whose
``application_name`` is ``docko-worker`` in the test database (pool connections mid-claim or
mid-completion, and the LISTEN connection). The daemons must reconnect, LISTEN again, keep every
outcome they could not write, and lose nothing. The test's own connections are named otherwise.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    FINISH_TIMEOUT,
    Fleet,
    Producer,
    connect,
    daemon_env,
    stop_and_check,
    wait_until_final,
)
from chaos_harness import workload as make_workload

from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

BURSTS = 8
BURST_SIZE = 250
ROUNDS = 5

TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS terminated,
       count(*) FILTER (WHERE query ILIKE 'LISTEN%' OR query = 'SELECT 1') AS listeners
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'docko-worker'
  AND pid <> pg_backend_pid()
"""


async def test_terminating_the_daemons_backends_repeatedly_loses_nothing(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db, DOCKO_POLL_INTERVAL="2")
    faults = Faults()
    daemons = [fleet.start(env) for _ in range(2)]
    conn = await connect(chaos_db)
    listeners_hit = 0

    async def all_listening() -> bool:
        return all(d.event_count("listen_connected") >= 1 for d in daemons)

    try:
        await wait_until(
            all_listening, FINISH_TIMEOUT, message="both daemons to LISTEN", watch=fleet
        )
        async with Producer(chaos_db) as producer:

            async def produce() -> None:
                for burst in range(BURSTS):
                    await producer.enqueue(make_workload(BURST_SIZE, start=burst * BURST_SIZE))
                    await asyncio.sleep(0.5)

            producing = asyncio.create_task(produce())
            for _ in range(ROUNDS):
                await asyncio.sleep(1.2)
                row = await conn.fetchrow(TERMINATE)
                faults.terminations.append((time.time(), row["terminated"]))
                listeners_hit += row["listeners"]
            await producing
            ids = producer.enqueued
        await wait_until_final(conn, fleet, len(ids))

        async def listening_again() -> bool:
            return all(
                d.event_count("listen_connected") > d.event_count("listen_connection_lost") >= 1
                for d in daemons
            )

        await wait_until(
            listening_again,
            30,
            message="each daemon to lose its LISTEN connection and LISTEN again",
            watch=fleet,
        )
    finally:
        await conn.close()

    result = await stop_and_check("pg_terminate_backend x5", chaos_db, fleet, ids, faults)
    terminated = [count for _, count in faults.terminations]
    result.notes["backends terminated per round"] = ",".join(map(str, terminated))
    result.notes["LISTEN backends terminated"] = str(listeners_hit)
    chaos_report.add(result)
    result.assert_ok()
    assert all(count > 0 for count in terminated), f"a round found no backend: {terminated}"
