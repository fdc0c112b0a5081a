"""The workload through PgBouncer in transaction pooling mode, poll-only, without a statement cache.

PgBouncer (Debian's package, installed by the session fixture if missing) runs on a spare port in
front of the shared server with ``pool_mode = transaction`` and a small server pool, so
consecutive statements of one client land on different server connections. The producer enqueues
through it and two daemons run through it with ``DOCKO_LISTEN=false`` (LISTEN cannot work through
transaction pooling) and ``DOCKO_STATEMENT_CACHE_SIZE=0`` (asyncpg then uses unnamed prepared
statements, which PgBouncer before 1.21 cannot track by name). The handlers record their runs
directly on the server. Nothing may be lost, and no statement may fail on the way.
"""

from __future__ import annotations

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import Fleet, Producer, connect, daemon_env, stop_and_check, wait_until_final
from chaos_harness import workload as make_workload
from chaos_servers import PgBouncer

pytestmark = pytest.mark.chaos

JOBS = 2000
# Log events that would mean a statement failed through PgBouncer.
FAILURES = ("claim_failed", "outcome_write_failed", "heartbeat_failed", "maintenance_failed")


async def test_workload_through_pgbouncer_transaction_pooling(
    chaos_db: str,
    pgbouncer: PgBouncer,
    base_env: dict[str, str],
    fleet: Fleet,
    chaos_report: ChaosReport,
) -> None:
    database = chaos_db.rsplit("/", 1)[1]
    through = pgbouncer.dsn(database)
    async with Producer(through, statement_cache_size=0) as producer:
        ids = await producer.enqueue(make_workload(JOBS))
    env = daemon_env(
        base_env,
        through,
        DOCKO_LISTEN="false",
        DOCKO_STATEMENT_CACHE_SIZE="0",
        DOCKO_POLL_INTERVAL="0.2",
        CHAOS_RUNS_DSN=chaos_db,
    )
    for _ in range(2):
        fleet.start(env)
    conn = await connect(chaos_db)
    try:
        await wait_until_final(conn, fleet, JOBS)
    finally:
        await conn.close()
    result = await stop_and_check(
        f"PgBouncer ({pgbouncer.version.split(' ')[-1]}, transaction pool)",
        chaos_db,
        fleet,
        ids,
        Faults(),
    )
    result.notes["pgbouncer"] = f"{pgbouncer.version}; DOCKO_LISTEN=false, cache 0"
    chaos_report.add(result)
    result.assert_ok()
    failed = [
        record
        for record in fleet.events()
        if record.get("event") in FAILURES or "prepared statement" in str(record)
    ]
    assert not failed, f"statements failed through PgBouncer: {failed[:5]}"
    assert not any(record.get("event") == "listen_connected" for record in fleet.events())
