"""Fault 4: SIGTERM in the middle of a burst, with a shutdown timeout shorter than some jobs.

Two daemons (``DOCKO_SHUTDOWN_TIMEOUT=0.5``) work through a burst in which every fifth job sleeps
2 s (``CHAOS_SLOW=1``). Once several of those are mid-run, both daemons get SIGTERM together. They
must exit 0, leaving no job ``running``: jobs that finished are recorded, jobs claimed but not
started and jobs cut off by the shutdown timeout are handed back *without spending an attempt*, so
afterwards every job's ``attempt`` equals the number of its executions that ran to the end. Two
fresh daemons (slow sleeps off) then finish the work, and the checker runs over both phases.
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    FINISH_TIMEOUT,
    Fleet,
    Producer,
    connect,
    daemon_env,
    stop_all,
    stop_and_check,
    wait_until_final,
)

from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

JOBS = 1200
SLOW_EVERY = 5
SLOW_SECONDS = 2.0
SLOW_RUNNING_BEFORE_SIGTERM = 4

SLOW_IN_FLIGHT = """
SELECT count(*) FROM chaos_runs AS runs JOIN docko_jobs AS jobs ON jobs.id = runs.job_id
WHERE runs.finished_at IS NULL AND jobs.payload::jsonb ? 'slow'
"""


async def test_sigterm_mid_burst_hands_back_jobs_without_spending_attempts(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    faults = Faults()
    payloads = [
        {"n": n, "slow": SLOW_SECONDS} if n % SLOW_EVERY == 0 else {"n": n} for n in range(JOBS)
    ]
    async with Producer(chaos_db) as producer:
        ids = await producer.enqueue(payloads)
    first = [
        fleet.start(daemon_env(base_env, chaos_db, DOCKO_SHUTDOWN_TIMEOUT="0.5", CHAOS_SLOW="1"))
        for _ in range(2)
    ]
    conn = await connect(chaos_db)
    try:

        async def slow_jobs_mid_run() -> bool:
            # Both daemons past start-up (their signal handlers are installed by then: a SIGTERM
            # before that kills a daemon the default way), and slow jobs running.
            started = all(d.event_count("supervisor_started") for d in first)
            return started and await conn.fetchval(SLOW_IN_FLIGHT) >= SLOW_RUNNING_BEFORE_SIGTERM

        await wait_until(
            slow_jobs_mid_run, FINISH_TIMEOUT, message="slow jobs to be running", watch=fleet
        )
        statuses = await stop_all(fleet)
        assert set(statuses.values()) == {0}, f"exit statuses {statuses}\n{fleet.describe()}"

        # After the shutdown: nothing running, and no hand-back spent an attempt.
        jobs = {
            row["id"]: row
            for row in await conn.fetch(
                "SELECT id, state::text AS state, attempt, worker_id FROM docko_jobs"
            )
        }
        released_keys = {
            (UUID(record["job_id"]), record["attempt"])
            for daemon in first
            for record in daemon.events()
            if record.get("event") == "job_released"
        }
        finished_runs: Counter[UUID] = Counter()
        cut_off = 0
        for row in await conn.fetch("SELECT job_id, attempt, finished_at FROM chaos_runs"):
            if row["finished_at"] is None:
                cut_off += 1
            elif (row["job_id"], row["attempt"]) not in released_keys:
                # (A handler cancelled just after its last write finished its run, but its
                # job was handed back all the same: that run spent no attempt.)
                finished_runs[row["job_id"]] += 1
        left_running = [job_id for job_id, job in jobs.items() if job["state"] == "running"]
        assert not left_running, f"{len(left_running)} jobs left running after SIGTERM"
        spent = {
            job_id: (job["attempt"], finished_runs[job_id])
            for job_id, job in jobs.items()
            if job["attempt"] != finished_runs[job_id]
        }
        assert not spent, (
            f"{len(spent)} jobs' attempt differs from their finished executions "
            f"(attempt, finished runs): {list(spent.items())[:10]}"
        )
        released = [
            record
            for daemon in first
            for record in daemon.events()
            if record.get("event") == "job_released"
        ]
        assert released, "SIGTERM mid-burst handed no job back"
        for record in released:
            job = jobs[UUID(record["job_id"])]
            assert (job["state"], job["attempt"]) == ("available", record["attempt"] - 1), (
                f"handed-back job {record['job_id']} is {job['state']} at attempt "
                f"{job['attempt']}, claimed as attempt {record['attempt']}"
            )
            assert job["worker_id"] is None
        assert cut_off > 0, "no handler was cut off by the shutdown timeout"
        assert any(d.event_count("shutdown_timeout_cancelling_jobs") for d in first)

        # Finish the work with fresh daemons.
        for _ in range(2):
            fleet.start(daemon_env(base_env, chaos_db))
        await wait_until_final(conn, fleet, JOBS)
    finally:
        await conn.close()

    result = await stop_and_check("SIGTERM mid-burst", chaos_db, fleet, ids, faults)
    result.notes["handed back at SIGTERM"] = (
        f"{len(released)} jobs ({cut_off} cut off mid-run by the 0.5 s shutdown timeout)"
    )
    chaos_report.add(result)
    result.assert_ok()
