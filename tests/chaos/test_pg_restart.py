"""Fault 3: PostgreSQL restarted mid-run (the suite's own cluster, never the shared server).

Two daemons work through the workload on a database of the ``own_cluster`` fixture; once a
quarter of the jobs are done the server is stopped (``pg_ctl stop -m fast``: every connection is
cut), kept down for a second and started again. The daemons must survive the outage, reconnect
(pool and LISTEN), write the outcomes they were holding or let the leases expire, and finish with
nothing lost. The time from the server being back (``pg_postmaster_start_time()``) to the first
job completing after it is measured and reported, not asserted. The daemons' stderr must stay
JSON lines (``DOCKO_LOG_FORMAT=json``) through the outage.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    FINISH_TIMEOUT,
    Fleet,
    Producer,
    connect,
    create_runs_table,
    daemon_env,
    stop_and_check,
    wait_until_final,
)
from chaos_harness import workload as make_workload
from chaos_recovery import FIRST_COMPLETION, FIRST_FRESH_COMPLETION
from chaos_servers import OwnCluster

from tests.daemon_process import run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

JOBS = 2000
DOWNTIME = 1.0


async def test_postgres_restart_mid_run(
    own_cluster: OwnCluster, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    name = f"chaos_restart_{uuid.uuid4().hex[:10]}"
    admin = await connect(own_cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = own_cluster.dsn(name)
    env = daemon_env(base_env, dsn)
    try:
        migrated = run_cli(["migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        await create_runs_table(dsn)
        faults = Faults()
        async with Producer(dsn) as producer:
            ids = await producer.enqueue(make_workload(JOBS))
        for _ in range(2):
            fleet.start(env)

        conn = await connect(dsn)
        try:

            async def a_quarter_done() -> bool:
                done = await conn.fetchval(
                    "SELECT count(*) FROM docko_jobs WHERE state IN ('completed', 'failed')"
                )
                return bool(done >= JOBS // 4)

            await wait_until(
                a_quarter_done,
                FINISH_TIMEOUT,
                message="a quarter of the jobs to finish",
                watch=fleet,
            )
        finally:
            await conn.close()

        down_at = time.time()
        await asyncio.to_thread(own_cluster.stop, "fast")
        await asyncio.sleep(DOWNTIME)
        fleet.check()
        await asyncio.to_thread(own_cluster.start)
        up_at = time.time()
        faults.restarts.append((down_at, up_at))

        conn = await connect(dsn)
        try:
            started = float(
                await conn.fetchval("SELECT extract(epoch FROM pg_postmaster_start_time())")
            )

            async def first_completion_after_restart() -> float | None:
                value = await conn.fetchval(FIRST_COMPLETION, started)
                return None if value is None else float(value)

            first_write = await wait_until(
                first_completion_after_restart,
                90,
                message="a job to complete after the restart",
                watch=fleet,
            )
            await wait_until_final(conn, fleet, JOBS)
            first_fresh = float(await conn.fetchval(FIRST_FRESH_COMPLETION, started))
        finally:
            await conn.close()

        result = await stop_and_check("PostgreSQL restart", dsn, fleet, ids, faults)
        result.notes["server down"] = f"{up_at - down_at:.2f}s (pg_ctl stop -m fast, 1 s, start -w)"
        result.notes["time to recover (postmaster start -> first completion written)"] = (
            f"{first_write - started:.2f}s"
        )
        result.notes["(-> first job claimed and completed after the restart)"] = (
            f"{first_fresh - started:.2f}s"
        )
        reconnects = sum(d.event_count("listen_connected") for d in fleet.started)
        result.notes["LISTEN connects"] = str(reconnects)
        chaos_report.add(result)
        result.assert_ok()
        # DOCKO_LOG_FORMAT=json promises JSON lines: an outage must not break the format.
        stray = [
            line
            for daemon in fleet.started
            for line in daemon.stderr().splitlines()
            if line.strip() and not line.startswith("{")
        ]
        assert not stray, (
            f"{len(stray)} stderr lines of the daemons are not JSON (DOCKO_LOG_FORMAT=json):\n"
            + "\n".join(stray[:12])
        )
    finally:
        if not own_cluster.running():
            own_cluster.start()
        admin = await connect(own_cluster.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
