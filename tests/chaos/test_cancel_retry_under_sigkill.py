"""Cancels and retries fired at random while a random daemon is SIGKILLed every ~2 s.

Three daemons run the ordinary workload in waves two seconds apart (scheduled by ``delay``),
every tenth job slow enough (``slow`` with ``CHAOS_SLOW=1``) to be running when it is cancelled,
some with a single attempt so that jobs end ``failed``; a second queue's jobs wait to be cancelled
in bulk. Meanwhile the operator (``chaos_operator.py``) cancels running and random jobs, retries
failed and cancelled ones, and once cancels the whole second queue. When every job has ended it
stops, and the run goes on until the jobs it retried have ended too.

The checker, told every action, proves every cancelled job stopped (no attempt claimed after its
cancel took effect, the execution it found running interrupted or finished first), ``cancelled``
only where the test cancelled, retried jobs counting their attempts on, every other job run as in
the plain SIGKILL run, and nothing left ``running`` or ``available``.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    QUEUE,
    Fleet,
    Producer,
    connect,
    daemon_env,
    kill_random_daemons,
    stop_and_check,
    stop_task,
    wait_until_final,
)
from chaos_operator import Operator

pytestmark = pytest.mark.chaos

DAEMONS = 3
WAVES = 5
WAVE_EVERY = 2.0
# Per wave: ordinary jobs (every tenth slow), single-attempt jobs, jobs of the bulk queue.
WORK_JOBS, SINGLE_ATTEMPT_JOBS, BULK_JOBS = 300, 40, 20
SLOW, BULK_SLOW = 0.8, 0.6
BULK_QUEUE = "chaos_bulk"
# The bulk cancel: when waves 0 and 1 have run and later ones wait.
BULK_AFTER = 3.0


async def test_cancels_and_retries_at_random_during_sigkills(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db, DOCKO_QUEUES=f"{QUEUE},{BULK_QUEUE}", CHAOS_SLOW="1")
    faults = Faults()
    conn = await connect(chaos_db)
    async with Producer(chaos_db) as producer:
        n = 0
        for wave in range(WAVES):
            delay = wave * WAVE_EVERY
            await producer.enqueue(
                [{"n": n + i, **({"slow": SLOW} if i % 10 == 0 else {})} for i in range(WORK_JOBS)],
                delay=delay,
            )
            n += WORK_JOBS
            await producer.enqueue(
                [{"n": n + i} for i in range(SINGLE_ATTEMPT_JOBS)], max_attempts=1, delay=delay
            )
            n += SINGLE_ATTEMPT_JOBS
            await producer.enqueue(
                [{"n": n + i, "slow": BULK_SLOW} for i in range(BULK_JOBS)],
                queue_name=BULK_QUEUE,
                delay=delay,
            )
            n += BULK_JOBS
        ids = list(producer.enqueued)
        for _ in range(DAEMONS):
            fleet.start(env)
        operator = Operator(producer.queue, faults, random.Random(20250301), ids)
        killing = asyncio.create_task(
            kill_random_daemons(fleet, env, random.Random(20250302), faults)
        )
        operating = asyncio.create_task(operator.run(BULK_QUEUE, BULK_AFTER))
        try:
            await wait_until_final(conn, fleet, len(ids))
            operator.stop()
            await operating
            await wait_until_final(conn, fleet, len(ids), what="every retried job to end")
        finally:
            operator_failed = await stop_task(operating)
            killer_failed = await stop_task(killing)
            await conn.close()
    assert operator_failed is None, f"the operator failed: {operator_failed!r}"
    assert killer_failed is None, f"the killer failed: {killer_failed!r}"

    result = await stop_and_check(
        "cancels and retries, SIGKILL every ~2 s", chaos_db, fleet, ids, faults
    )
    result.notes["daemons killed"] = str(len(faults.killed))
    result.notes["operator"] = ", ".join(
        f"{count} {what}" for what, count in sorted(operator.counts.items())
    )
    chaos_report.add(result)
    result.assert_ok()
    assert faults.killed, "the run ended before any daemon was killed: enlarge the workload"
    assert operator.counts["cancel found running"], "no cancel found its job running"
    assert operator.counts["bulk cancel: jobs changed"], "the bulk cancel reached no job"
    assert result.cancelled_runs["interrupted by the cancel"], "no handler was interrupted"
    assert result.retried_completed, "no retried job completed"
