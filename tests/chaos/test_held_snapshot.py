"""A snapshot held open while a stream of jobs runs, with a daemon SIGKILLed mid-hold.

Another connection opens a ``REPEATABLE READ`` transaction, reads ``docko_jobs`` and stays idle in
transaction: its snapshot holds back the xmin horizon, so no dead row version of the jobs table can
be pruned or vacuumed while it lasts, and every claim and completion walks past the versions that
pile up. Meanwhile jobs arrive in small bursts to two daemons; halfway, a burst of slow jobs (1 s,
``CHAOS_SLOW=1``), and a daemon found running one of them is SIGKILLed and a new one started (its
jobs come back when their 2 s leases expire, and the cut-off run runs again). Everything runs to a
final state while the snapshot is still held, which the holder proves at the end by still seeing
the table as it was; then it rolls back and one more burst must run too. The chaos checker holds
every run to its rules: no job lost, every one completed (``CHAOS_FAIL_PERCENT=0``), a job run
twice only where its daemon was killed.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
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

BURSTS = 30
BURST_SIZE = 10
BURST_INTERVAL = 0.1
# The burst after which a daemon is killed: halfway through the stream.
KILL_AFTER = BURSTS // 2
SLOW_SECONDS = 1.0

# The pid of a daemon with a run in progress, recorded by the chaos handlers.
RUNNING_PID = "SELECT pid FROM chaos_runs WHERE finished_at IS NULL LIMIT 1"


async def test_a_held_snapshot_loses_no_job_even_with_a_daemon_killed(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db, CHAOS_FAIL_PERCENT="0", CHAOS_SLOW="1")
    faults = Faults()
    for _ in range(2):
        fleet.start(env)
    conn = await connect(chaos_db)
    holder = await connect(chaos_db)
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        seen_at_start = await holder.fetchval("SELECT count(*) FROM docko_jobs")
        async with Producer(chaos_db) as producer:
            for burst in range(BURSTS):
                slow = SLOW_SECONDS if burst == KILL_AFTER else 0
                await producer.enqueue(
                    make_workload(BURST_SIZE, start=burst * BURST_SIZE, slow=slow)
                )
                if burst == KILL_AFTER:
                    pid = await wait_until(
                        lambda: conn.fetchval(RUNNING_PID),
                        30,
                        message="a daemon running one of the slow jobs",
                        watch=fleet,
                    )
                    [victim] = [daemon for daemon in fleet.running if daemon.pid == pid]
                    victim.send(signal.SIGKILL)
                    faults.killed[victim.pid] = time.time()
                    assert await victim.wait_exit() == -signal.SIGKILL
                    fleet.start(env)
                await asyncio.sleep(BURST_INTERVAL)
            await wait_until_final(conn, fleet, len(producer.enqueued))
            # The snapshot was held throughout: the holder still sees the table as it was.
            assert await holder.fetchval("SELECT count(*) FROM docko_jobs") == seen_at_start
            held_xmin = await conn.fetchval(
                "SELECT backend_xmin IS NOT NULL FROM pg_stat_activity "
                "WHERE pid = $1 AND state = 'idle in transaction'",
                holder.get_server_pid(),
            )
            assert held_xmin, "the holder's snapshot was not holding back the xmin horizon"
            await holder.execute("ROLLBACK")
            await producer.enqueue(make_workload(BURST_SIZE, start=BURSTS * BURST_SIZE))
            ids = producer.enqueued
        await wait_until_final(conn, fleet, len(ids))
    finally:
        await holder.close()
        await conn.close()

    result = await stop_and_check("snapshot held, SIGKILL mid-hold", chaos_db, fleet, ids, faults)
    result.notes["daemons killed"] = str(len(faults.killed))
    chaos_report.add(result)
    result.assert_ok()
    assert result.lost == 0
    assert sum(result.interrupted.values()) >= 1, "the kill cut no run off: nothing was proven"
    assert result.completed == len(ids), f"{len(ids) - result.completed} jobs did not complete"
