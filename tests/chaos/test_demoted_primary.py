"""Fault: the primary demoted in place, under open connections, and later made writable again.

What a failover tool that demotes the old primary without restarting it does, or a single DNS name
or proxy that still leads to it: the server stays up and keeps every connection, but refuses
writes. Here the suite's own cluster is switched read-only (``ALTER SYSTEM SET
default_transaction_read_only = on`` and ``pg_reload_conf()``; no backend is terminated) while two
daemons and a producer (``Queue.connect``) are connected by a single-host DSN.

Checked: the producer's enqueue fails once with "read-only" and the connection it ran on is
closed; each daemon drops its pool's connections as its statements are refused (every connection
from before the demotion that ran a statement after it is closed by the daemon itself) and its
LISTEN connection; nothing exits. Then the server is made writable again, and the same producer
and daemons, not restarted, enqueue and run jobs again, LISTENing anew; the chaos checker runs over
everything.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    FINISH_TIMEOUT,
    QUEUE,
    WORK,
    Fleet,
    connect,
    daemon_env,
    stop_and_check,
    wait_until_final,
)
from chaos_harness import workload as make_workload
from chaos_recovery import create_database, producer_config, start_listening
from chaos_servers import OwnCluster

from docko_worker import Queue
from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

JOBS = 100

DEMOTE = "ALTER SYSTEM SET default_transaction_read_only = on"
RESTORE = "ALTER SYSTEM RESET default_transaction_read_only"
RELOAD = "SELECT pg_reload_conf()"
# The daemons' LISTEN connections: their last statement a LISTEN or the waker's ping.
LISTENERS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'docko-worker'
  AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')
"""
# Connections opened before the demotion that ran a statement after it.
OLD_CONNECTIONS_IN_USE = """
SELECT pid, left(query, 60) AS query FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'docko-worker'
  AND backend_start < $1 AND state_change > $1
"""
STILL_OPEN = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])"


async def switch(conn: Any, statement: str, *, read_only: bool) -> None:
    """Apply ``statement`` and reload; returns once this session sees the new state.

    The postmaster signals every backend at once, so when this one has the new setting every
    other backend applies it before its next statement.
    """
    await conn.execute(statement)
    await conn.execute(RELOAD)
    wanted = "on" if read_only else "off"

    async def applied() -> bool:
        await conn.fetchval("SELECT 1")  # its reply carries the changed setting
        return bool(conn.get_settings().default_transaction_read_only == wanted)

    await wait_until(applied, 30, message=f"default_transaction_read_only = {wanted}")


async def test_a_primary_demoted_in_place_is_left_and_found_again(
    own_cluster: OwnCluster, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    name = f"chaos_demoted_{uuid.uuid4().hex[:10]}"
    await create_database(own_cluster.dsn(), name)
    dsn = own_cluster.dsn(name)
    conn = await connect(dsn)
    try:
        daemons = await start_listening(fleet, daemon_env(base_env, dsn))
        async with await Queue.connect(producer_config(dsn)) as queue:
            ids = await queue.enqueue_many(QUEUE, WORK, make_workload(JOBS))
            await wait_until_final(conn, fleet, len(ids))
            listeners = {row["pid"] for row in await conn.fetch(LISTENERS)}
            assert len(listeners) == 2, "each daemon LISTENs on one connection"
            async with queue.pool.acquire() as pooled:
                producer_pid = pooled.get_server_pid()

            await switch(conn, DEMOTE, read_only=True)
            demoted_at = await conn.fetchval("SELECT clock_timestamp()")

            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await queue.enqueue(QUEUE, WORK, {"n": -1})

            async def producer_connection_closed() -> bool:
                return await conn.fetchval(STILL_OPEN, [producer_pid]) == 0

            await wait_until(
                producer_connection_closed, 30, message="the producer's connection to close"
            )

            async def each_daemon_dropped_its_pool() -> bool:
                return all(d.event_count("server_read_only_reconnecting") >= 1 for d in daemons)

            await wait_until(
                each_daemon_dropped_its_pool,
                30,
                message="each daemon to drop its pool's connections",
                watch=fleet,
            )
            in_use: list[Any] = []

            async def old_connections_closed() -> bool:
                in_use[:] = await conn.fetch(OLD_CONNECTIONS_IN_USE, demoted_at)
                return not in_use

            await wait_until(
                old_connections_closed,
                30,
                message="every connection from before the demotion that ran a statement since"
                " to close",
                watch=fleet,
            )

            async def listeners_closed() -> bool:
                return await conn.fetchval(STILL_OPEN, list(listeners)) == 0

            await wait_until(
                listeners_closed, 30, message="the old LISTEN connections to close", watch=fleet
            )
            for daemon in daemons:
                lost = [e for e in daemon.events() if e.get("event") == "listen_connection_lost"]
                assert any("read-only" in str(e.get("error")) for e in lost), daemon.describe()
            dropped = sum(d.event_count("server_read_only_reconnecting") for d in daemons)
            fleet.check("the demoted primary")

            await switch(conn, RESTORE, read_only=False)
            again: list[Any] = []

            async def accepted_again() -> bool:
                try:
                    again[:] = await queue.enqueue_many(
                        QUEUE, WORK, make_workload(JOBS, start=JOBS)
                    )
                except asyncpg.ReadOnlySQLTransactionError:
                    return False
                return True

            await wait_until(
                accepted_again, FINISH_TIMEOUT, message="the producer to enqueue again", watch=fleet
            )
            ids += again
            await wait_until_final(conn, fleet, len(ids))

        async def listening_again() -> bool:
            return all(d.event_count("listen_connected") >= 2 for d in daemons)

        await wait_until(
            listening_again, FINISH_TIMEOUT, message="each daemon to LISTEN again", watch=fleet
        )
        result = await stop_and_check("primary demoted in place", dsn, fleet, ids, Faults())
        result.notes["pool connections dropped on a read-only error"] = str(dropped)
        result.notes["terminated by the test"] = "none (pg_terminate_backend not used)"
        chaos_report.add(result)
        result.assert_ok()
    finally:
        if own_cluster.running():
            await conn.execute(RESTORE)
            await conn.execute(RELOAD)
        await conn.close()
        admin = await connect(own_cluster.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
