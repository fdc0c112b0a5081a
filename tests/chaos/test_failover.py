"""Fault: the primary lost mid-run and a synchronous standby promoted (clusters of the test's own).

The test makes a primary (``initdb``) and a streaming standby of it (``pg_basebackup -R``) on two
ports of this machine, the primary committing synchronously (``synchronous_standby_names = '*'``,
``synchronous_commit = on``: a commit is acknowledged once the standby has flushed it). Two daemons
and a producer (``Queue.connect``, one ``enqueue`` and one ``enqueue_many`` per tick) run on the
multi-host DSN ``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/db?target_session_attrs=read-write``.
Once jobs are flowing, the primary is stopped hard (``pg_ctl stop -m immediate``: no checkpoint,
every connection cut); the jobs the standby holds as ``running`` at that moment are read from it
(hot standby, replay caught up); then it is promoted (``pg_ctl promote``), and the producer keeps
going for a few seconds.

Checked, besides the chaos checker's rules (nothing left ``running`` or ``available``, each attempt
run once unless explained): every job whose enqueue returned is in the new primary and completed;
a job in the table whose enqueue returned no answer belongs to a call that failed; every duplicate,
interrupted run or unexecuted claim is of a job the standby held as ``running`` at the failover (a
job not running then has exactly one execution per attempt); and every error the producer saw is
transient. Reported: promotion → first completion written on the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from chaos_checker import RUNS_QUERY, ChaosReport, Faults
from chaos_harness import (
    FINISH_TIMEOUT,
    QUEUE,
    WORK,
    Fleet,
    connect,
    daemon_env,
    free_port,
    stop_and_check,
    wait_until_final,
)
from chaos_harness import workload as make_workload
from chaos_recovery import (
    create_database,
    first_completion_since,
    first_fresh_completion_since,
    producer_config,
    start_listening,
)
from chaos_servers import OwnCluster, owned_temp_dir

from docko_worker import Queue
from docko_worker.db import is_transient
from docko_worker.errors import describe_error
from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

DATABASE = "chaos_failover"
# The primary's own settings: every commit waits for the standby to flush it.
SYNCHRONOUS = {"synchronous_standby_names": "*", "synchronous_commit": "on"}
# Jobs completed before the primary is stopped.
DONE_BEFORE = 300
# The producer: one enqueue and one enqueue_many of BATCH - 1 jobs every TICK seconds.
BATCH = 40
TICK = 0.1
# Seconds the producer goes on after the first completion on the new primary.
PRODUCE_AFTER = 2.0
# Each attempt fails 10 % of the time: with 10 attempts no job fails for good.
MAX_ATTEMPTS = "10"

RUNNING_JOBS = "SELECT id FROM docko_jobs WHERE state = 'running'"
REPLAY_CAUGHT_UP = "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()"
SYNC_STANDBYS = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
# Every job with the number its payload carries.
JOB_NUMBERS = "SELECT id, (payload->>'n')::integer AS n FROM docko_jobs"


@pytest.fixture
def failover_pair() -> Iterator[tuple[OwnCluster, OwnCluster]]:
    """A primary committing synchronously and its streaming standby; removed afterwards."""
    primary_port = free_port()
    standby_port = free_port()
    while standby_port == primary_port:
        standby_port = free_port()
    primary = OwnCluster(owned_temp_dir("docko-chaos-primary-"), primary_port, SYNCHRONOUS)
    standby_dir = owned_temp_dir("docko-chaos-standby-")
    clusters = [primary]
    try:
        primary.initdb()
        primary.start()
        standby = primary.standby(standby_dir, standby_port)
        clusters.append(standby)
        standby.start()
        asyncio.run(_wait_for_sync_standby(primary))
        yield primary, standby
    finally:
        for cluster in reversed(clusters):
            if cluster.running():
                with contextlib.suppress(Exception):
                    cluster.stop("immediate")
        shutil.rmtree(primary.directory, ignore_errors=True)
        shutil.rmtree(standby_dir, ignore_errors=True)


async def _wait_for_sync_standby(primary: OwnCluster) -> None:
    conn = await connect(primary.dsn())
    try:

        async def streaming_synchronously() -> bool:
            return bool(await conn.fetchval(SYNC_STANDBYS))

        await wait_until(streaming_synchronously, 60, message="the standby to stream synchronously")
    finally:
        await conn.close()


def failover_dsn(primary: OwnCluster, standby: OwnCluster, database: str) -> str:
    return (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{database}"
        "?target_session_attrs=read-write"
    )


@dataclass
class Production:
    """What the producer's calls returned, and which numbers went into calls that raised."""

    returned: list[UUID] = field(default_factory=list)
    unanswered: set[int] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)

    async def run(self, queue: Queue, stop: asyncio.Event) -> None:
        number = 0
        while not stop.is_set():
            single, *batch = make_workload(BATCH, start=number)
            number += BATCH
            await self._call(queue.enqueue(QUEUE, WORK, single), [single])
            await self._call(queue.enqueue_many(QUEUE, WORK, batch), batch)
            await asyncio.sleep(TICK)

    async def _call(self, call: Any, payloads: list[dict[str, Any]]) -> None:
        try:
            async with asyncio.timeout(30):
                done = await call
        except Exception as exc:
            self.errors.append(exc)
            self.unanswered.update(payload["n"] for payload in payloads)
            return
        self.returned += done if isinstance(done, list) else [done.id]


async def running_at_failover(standby: OwnCluster) -> set[UUID]:
    """The jobs the standby holds as running once it has replayed all it received."""
    conn = await connect(standby.dsn(DATABASE))
    try:

        async def replayed() -> bool:
            return bool(await conn.fetchval(REPLAY_CAUGHT_UP))

        await wait_until(replayed, 30, message="the standby to replay what it received")
        return {row["id"] for row in await conn.fetch(RUNNING_JOBS)}
    finally:
        await conn.close()


def clean_history_problems(
    job_rows: list[Any], run_rows: list[Any], running: set[UUID]
) -> list[str]:
    """Jobs not running at the failover whose attempts did not run exactly once each."""
    runs: dict[UUID, list[Any]] = defaultdict(list)
    for row in run_rows:
        runs[row["job_id"]].append(row)
    problems = []
    for job in job_rows:
        if job["id"] in running:
            continue
        attempts = Counter(row["attempt"] for row in runs[job["id"]])
        unfinished = [row for row in runs[job["id"]] if row["outcome"] is None]
        if attempts != Counter(range(1, job["attempt"] + 1)) or unfinished:
            problems.append(
                f"job {job['id']} was not running at the failover but its attempts ran "
                f"{dict(attempts)} times (attempt {job['attempt']}, {len(unfinished)} unfinished)"
            )
    return problems


async def test_failover_to_a_synchronous_standby_mid_run(
    failover_pair: tuple[OwnCluster, OwnCluster],
    base_env: dict[str, str],
    fleet: Fleet,
    chaos_report: ChaosReport,
) -> None:
    primary, standby = failover_pair
    await create_database(primary.dsn(), DATABASE)
    dsn = failover_dsn(primary, standby, DATABASE)
    await start_listening(fleet, daemon_env(base_env, dsn, DOCKO_MAX_ATTEMPTS=MAX_ATTEMPTS))

    production = Production()
    stop_producing = asyncio.Event()
    config = producer_config(dsn, max_attempts=int(MAX_ATTEMPTS))
    async with await Queue.connect(config) as queue:
        producing = asyncio.create_task(production.run(queue, stop_producing))
        try:
            conn = await connect(dsn)
            try:

                async def enough_done() -> bool:
                    done = await conn.fetchval(
                        "SELECT count(*) FROM docko_jobs WHERE state = 'completed'"
                    )
                    return bool(done >= DONE_BEFORE)

                await wait_until(
                    enough_done,
                    FINISH_TIMEOUT,
                    message=f"{DONE_BEFORE} jobs to complete",
                    watch=fleet,
                )
            finally:
                await conn.close()

            stopped_at = time.time()
            await asyncio.to_thread(primary.stop, "immediate")
            running = await running_at_failover(standby)
            promoting_at = time.time()
            await asyncio.to_thread(standby.promote)
            promoted_at = time.time()

            conn = await connect(dsn)
            try:
                first_write = await first_completion_since(
                    conn, promoting_at, fleet, "a job to complete on the new primary"
                )
                await asyncio.sleep(PRODUCE_AFTER)
            finally:
                await conn.close()
        finally:
            stop_producing.set()
            await producing

    conn = await connect(dsn)
    try:
        numbers = {row["id"]: row["n"] for row in await conn.fetch(JOB_NUMBERS)}
        returned = set(production.returned)
        unconfirmed = [job_id for job_id in numbers if job_id not in returned]
        jobs = production.returned + unconfirmed
        await wait_until_final(conn, fleet, len(jobs))
        first_fresh = await first_fresh_completion_since(conn, promoting_at)
    finally:
        await conn.close()

    faults = Faults()
    result = await stop_and_check("failover to a synchronous standby", dsn, fleet, jobs, faults)
    conn = await connect(dsn)
    try:
        job_rows = await conn.fetch("SELECT id, attempt, state::text AS state FROM docko_jobs")
        run_rows = await conn.fetch(RUNS_QUERY)
    finally:
        await conn.close()
    result.problems += clean_history_problems(job_rows, run_rows, running)
    result.problems += [
        f"job {job_id} (n={numbers[job_id]}) is in the table, but no enqueue call holding it "
        "raised, and none returned it"
        for job_id in unconfirmed
        if numbers[job_id] not in production.unanswered
    ]
    result.problems += [
        f"the producer saw an error that is not transient: {describe_error(exc)}"
        for exc in production.errors
        if not is_transient(exc)
    ]
    if result.failed:
        result.problems.append(f"{result.failed} jobs failed for good; every job must complete")

    promote_took = promoted_at - promoting_at
    result.notes["primary stopped -> standby promoted"] = (
        f"{promoting_at - stopped_at:.2f}s (stop -m immediate, replay check), "
        f"pg_ctl promote -w {promote_took:.2f}s"
    )
    result.notes["time to recover (promote issued -> first completion written)"] = (
        f"{first_write - promoting_at:.2f}s"
    )
    result.notes["(-> first job claimed and completed on the new primary)"] = (
        f"{first_fresh - promoting_at:.2f}s"
    )
    result.notes["running at the failover"] = str(len(running))
    result.notes["enqueue calls that raised"] = (
        f"{len(production.errors)} "
        f"({', '.join(sorted({type(e).__name__ for e in production.errors})) or 'none'}); "
        f"their jobs found committed: {len(unconfirmed)}"
    )
    chaos_report.add(result)
    result.assert_ok()
