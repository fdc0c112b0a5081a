"""Fault 5: handlers that ignore cancellation, or block the event loop past their lease.

One daemon with ``DOCKO_JOB_TIMEOUT=1`` and a 2 s lease runs the ordinary workload plus, one
after the other,

- ``chaos_stubborn``, which on its first attempt catches every ``CancelledError`` and keeps going
  for 8 s: the daemon must log ``job_ignored_cancellation`` naming the job, give up on that
  attempt, and still bring the job to a final state (the second attempt behaves);
- ``chaos_block``, which on its first attempt calls ``time.sleep(3)``, freezing the event loop
  (heartbeat included) past its 2 s lease: the daemon must log ``event_loop_blocked`` naming the
  job while it is blocked, and the job must still end final.

The freeze also cuts short the ordinary jobs running beside it (their timeouts and leases pass
meanwhile); the checker accounts for each such execution through the daemon's log.
"""

from __future__ import annotations

import json

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

JOBS = 1000
IGNORE_FOR = 8.0
BLOCK_FOR = 3.0


def lines_naming(stderr: str, event: str, job_id: str) -> list[str]:
    found = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event and job_id in line:
            found.append(line)
    return found


async def test_stubborn_and_blocking_handlers_are_named_and_their_jobs_still_finish(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db, DOCKO_JOB_TIMEOUT="1", DOCKO_VISIBILITY_TIMEOUT="2")
    daemon = fleet.start(env)
    conn = await connect(chaos_db)
    try:
        async with Producer(chaos_db) as producer:
            # First the handler that ignores cancellation, among ordinary jobs.
            [stubborn] = await producer.enqueue(
                [{"ignore_for": IGNORE_FOR}], job_type="chaos_stubborn"
            )
            await producer.enqueue(make_workload(JOBS // 2))

            async def ignoring_logged() -> list[str]:
                return lines_naming(daemon.stderr(), "job_ignored_cancellation", str(stubborn))

            ignored = await wait_until(
                ignoring_logged,
                FINISH_TIMEOUT,
                message="job_ignored_cancellation naming the stubborn job",
                watch=fleet,
            )
            # Then the one that blocks the event loop past its lease.
            [blocking] = await producer.enqueue([{"block": BLOCK_FOR}], job_type="chaos_block")
            await producer.enqueue(make_workload(JOBS // 2, start=JOBS // 2))

            async def blocking_logged() -> list[str]:
                return lines_naming(daemon.stderr(), "event_loop_blocked", str(blocking))

            blocked = await wait_until(
                blocking_logged,
                FINISH_TIMEOUT,
                message="event_loop_blocked naming the blocking job",
                watch=fleet,
            )
            ids = producer.enqueued
        await wait_until_final(conn, fleet, len(ids))
        states = {
            row["id"]: row["state"]
            for row in await conn.fetch(
                "SELECT id, state::text AS state FROM docko_jobs WHERE id = ANY($1::uuid[])",
                [stubborn, blocking],
            )
        }
        # The detached first attempt of the stubborn job records its end after IGNORE_FOR s.
        stubborn_run_over = await conn.fetchval(
            "SELECT finished_at IS NOT NULL FROM chaos_runs WHERE job_id = $1 AND attempt = 1",
            stubborn,
        )
    finally:
        await conn.close()

    result = await stop_and_check(
        "cancel-ignoring + loop-blocking handlers", chaos_db, fleet, ids, Faults()
    )
    result.notes["stubborn job"] = (
        f"{states[stubborn]}; abandoned attempt finished before stop: {stubborn_run_over}"
    )
    result.notes["blocking job"] = states[blocking]
    chaos_report.add(result)
    assert ignored and blocked
    assert states[stubborn] in ("completed", "failed")
    assert states[blocking] in ("completed", "failed")
    result.assert_ok()
