"""Fault 6: payloads the handler cannot parse, mixed into the ordinary workload.

Two daemons run 1,500 ordinary jobs and, among them, jobs whose payload the handler cannot use:
not a JSON object, missing the key ``n`` (the handler raises ``BadPayload``, a ``PermanentError``:
the job fails at once), or ``n`` / ``slow`` of the wrong type (the handler raises ``TypeError``:
retried until its last attempt, then failed). Each bad job must end ``failed`` with a
``last_error`` naming the problem, after one attempt or after all of them respectively; the
ordinary jobs must be unaffected.
"""

from __future__ import annotations

from typing import Any

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import Fleet, Producer, connect, daemon_env, stop_and_check, wait_until_final
from chaos_harness import workload as make_workload

pytestmark = pytest.mark.chaos

GOOD = 1500
MAX_ATTEMPTS = 3

# (payload, the start of the last_error it must fail with)
UNUSABLE: list[tuple[Any, str]] = [
    ([1, 2, 3], "BadPayload: payload must be a JSON object, got list"),
    ("just text", "BadPayload: payload must be a JSON object, got str"),
    (42, "BadPayload: payload must be a JSON object, got int"),
    (None, "BadPayload: payload must be a JSON object, got NoneType"),
    ({}, "BadPayload: payload has no 'n'"),
    ({"m": 1, "N": 2}, "BadPayload: payload has no 'n'"),
]
WRONG_TYPES: list[tuple[Any, str]] = [
    ({"n": "seven"}, "TypeError: payload 'n' must be an integer, got str"),
    ({"n": 7.5}, "TypeError: payload 'n' must be an integer, got float"),
    ({"n": True}, "TypeError: payload 'n' must be an integer, got bool"),
    ({"n": None}, "TypeError: payload 'n' must be an integer, got NoneType"),
    ({"n": [1]}, "TypeError: payload 'n' must be an integer, got list"),
    ({"n": 1, "slow": "fast"}, "TypeError: payload 'slow' must be a number, got str"),
]
COPIES = 10


async def test_unparseable_payloads_fail_with_last_error_and_others_are_unaffected(
    chaos_db: str, base_env: dict[str, str], fleet: Fleet, chaos_report: ChaosReport
) -> None:
    env = daemon_env(base_env, chaos_db)
    expected: dict[Any, tuple[int, str]] = {}
    async with Producer(chaos_db) as producer:
        good = await producer.enqueue(make_workload(GOOD // 2), max_attempts=MAX_ATTEMPTS)
        for payload, error in UNUSABLE * COPIES:
            [job_id] = await producer.enqueue([payload], max_attempts=MAX_ATTEMPTS)
            expected[job_id] = (1, error)
        for payload, error in WRONG_TYPES * COPIES:
            [job_id] = await producer.enqueue([payload], max_attempts=MAX_ATTEMPTS)
            expected[job_id] = (MAX_ATTEMPTS, error)
        good += await producer.enqueue(
            make_workload(GOOD - GOOD // 2, start=GOOD // 2), max_attempts=MAX_ATTEMPTS
        )
        ids = producer.enqueued
    for _ in range(2):
        fleet.start(env)
    conn = await connect(chaos_db)
    try:
        await wait_until_final(conn, fleet, len(ids))
        rows = {
            row["id"]: row
            for row in await conn.fetch(
                "SELECT id, state::text AS state, attempt, last_error FROM docko_jobs"
            )
        }
    finally:
        await conn.close()

    result = await stop_and_check("unparseable payloads", chaos_db, fleet, ids, Faults())
    wrong = []
    for job_id, (attempt, error) in expected.items():
        row = rows[job_id]
        if (row["state"], row["attempt"]) != ("failed", attempt) or not (
            row["last_error"] or ""
        ).startswith(error):
            wrong.append((job_id, row["state"], row["attempt"], row["last_error"], error))
    # Ordinary jobs fail only through the simulated failures, after all their attempts.
    hurt = [
        (job_id, rows[job_id]["state"], rows[job_id]["last_error"])
        for job_id in good
        if rows[job_id]["state"] != "completed"
        and not (rows[job_id]["last_error"] or "").startswith("ChaosFailure")
    ]
    result.notes["unparseable"] = (
        f"{len(UNUSABLE) * COPIES} failed permanently after 1 attempt, "
        f"{len(WRONG_TYPES) * COPIES} failed after {MAX_ATTEMPTS} attempts"
    )
    chaos_report.add(result)
    assert not wrong, f"{len(wrong)} bad jobs ended otherwise than expected: {wrong[:5]}"
    assert not hurt, f"ordinary jobs hurt: {hurt[:5]}"
    result.assert_ok()
