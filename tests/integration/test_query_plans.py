"""Query plans on a table of 1,000,000 jobs: the hot statements use their partial indexes.

A plan regression (a predicate the partial index cannot serve, a lost CTE fence) turns a
millisecond claim into a sequential scan of the whole table; these tests fail CI when that
happens. Plans are checked both as custom plans and as the generic plans asyncpg's prepared
statements fall back to after a few executions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from docko_worker.statements import load_statements
from tests.conftest import scratch_database

AVAILABLE = 800_000
RUNNING = 100_000
COMPLETED = 100_000

# Named statement -> the arguments it is explained with, and the index it must use.
FILL = """
INSERT INTO docko_jobs (id, queue_name, job_type, payload, max_attempts, state,
                        attempt, lease_expires_at, finished_at, priority)
SELECT gen_random_uuid(), 'default', 'ocr', '{}'::jsonb, 5,
       CASE WHEN n <= $1::int THEN 'available'
            WHEN n <= $1 + $2 THEN 'running'
            ELSE 'completed' END::docko_job_state,
       CASE WHEN n <= $1 THEN 0 ELSE 1 END,
       CASE WHEN n > $1 AND n <= $1 + $2 THEN now() + interval '5 minutes' END,
       CASE WHEN n > $1 + $2 THEN now() END,
       n % 10
FROM generate_series(1, $1::int + $2::int + $3::int) AS n
"""

HOT_STATEMENTS: dict[str, tuple[tuple[Any, ...], str]] = {
    "claim_jobs": ((["default"], ["ocr"], 500, "worker-1", 300.0), "docko_jobs_claim_idx"),
    "rescue_expired_jobs": ((1000,), "docko_jobs_lease_idx"),
    "prune_finished_jobs": (("completed", 3600.0, 1000), "docko_jobs_finished_idx"),
}
# Statements that read without locking: checked on a million rows only.
READ_STATEMENTS: dict[str, tuple[tuple[Any, ...], str]] = {
    "waiting_unknown_types": ((["default"], ["pdf"], 60.0, 1000), "docko_jobs_claim_idx"),
    "sample_queues": ((["default", "other"], 10_000, 1_000), "docko_jobs_claim_idx"),
}


@pytest.fixture(scope="module")
def million_jobs_url(server_dsn: str, template_database: str) -> Iterator[str]:
    """One database for the whole module: filling a million rows takes seconds."""

    async def fill(url: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(FILL, AVAILABLE, RUNNING, COMPLETED)
            await conn.execute("ANALYZE docko_jobs")
        finally:
            await conn.close()

    with scratch_database(server_dsn, "docko_plans", template_database) as url:
        asyncio.run(fill(url))
        yield url


@pytest.fixture
async def million_jobs(million_jobs_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(million_jobs_url)
    try:
        yield conn
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def _plan(conn: asyncpg.Connection, name: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + load_statements()[name], *args)
    return _nodes(json.loads(raw)[0]["Plan"])


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", sorted(HOT_STATEMENTS | READ_STATEMENTS))
async def test_hot_statement_uses_its_partial_index_on_a_million_rows(
    million_jobs: asyncpg.Connection, name: str, plan_cache_mode: str
) -> None:
    args, index = (HOT_STATEMENTS | READ_STATEMENTS)[name]
    await million_jobs.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    nodes = await _plan(million_jobs, name, args)

    scans_of_jobs = [node for node in nodes if node.get("Relation Name") == "docko_jobs"]
    assert scans_of_jobs, f"{name}: no scan of docko_jobs in the plan"
    assert not [node for node in scans_of_jobs if node["Node Type"] == "Seq Scan"], (
        f"{name} scans docko_jobs sequentially: {[n['Node Type'] for n in nodes]}"
    )
    assert index in {node.get("Index Name") for node in nodes}, (
        f"{name} does not use {index}: {[(n['Node Type'], n.get('Index Name')) for n in nodes]}"
    )


async def test_claim_updates_no_more_rows_than_asked_on_a_million_rows(
    million_jobs: asyncpg.Connection,
) -> None:
    transaction = million_jobs.transaction()
    await transaction.start()
    try:
        raw = await million_jobs.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()["claim_jobs"],
            ["default"],
            ["ocr"],
            100,
            "worker-1",
            300.0,
        )
    finally:
        await transaction.rollback()  # leave the shared table as it was
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    updates = [node for node in nodes if node["Node Type"] == "ModifyTable"]
    assert [node["Actual Rows"] for node in updates] == [100]


OUTCOME_STATEMENTS: dict[str, tuple[Any, ...]] = {
    "complete_jobs": ([], []),
    "delete_completed_jobs": ([], []),
    "retry_jobs": ([], [], [], []),
    "fail_jobs": ([], [], []),
    "release_jobs": ([], []),
    "extend_leases": ([], [], "worker-1", 300.0),
}


@asynccontextmanager
async def _filled_and_analyzed(
    database_url: str, available: int, running: int, completed: int
) -> AsyncIterator[asyncpg.Connection]:
    """A connection planning generically over a table filled by ``FILL`` and analyzed."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(FILL, available, running, completed)
    await conn.execute("ANALYZE docko_jobs")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def long_history(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """200,000 completed jobs and statistics that show no running job: a kept history."""
    async with _filled_and_analyzed(database_url, 0, 0, 200_000) as conn:
        yield conn


@pytest.mark.parametrize("name", sorted(OUTCOME_STATEMENTS))
async def test_outcome_writes_find_jobs_by_primary_key_beside_a_long_history(
    long_history: asyncpg.Connection, name: str
) -> None:
    nodes = await _plan(long_history, name, OUTCOME_STATEMENTS[name])
    scans = [node for node in nodes if node.get("Relation Name") and "Scan" in node["Node Type"]]
    indexes = {node.get("Index Name") for node in scans}
    assert indexes == {"docko_jobs_pkey"}, (
        f"{name}: {[(n['Node Type'], n.get('Index Name')) for n in nodes]}"
    )


@pytest.fixture
async def small_table(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """20,000 jobs, analyzed: the size at which a hash join over the whole table looks cheap."""
    async with _filled_and_analyzed(database_url, 18_000, 1_000, 1_000) as conn:
        yield conn


@pytest.mark.parametrize("name", sorted(HOT_STATEMENTS))
async def test_hot_statements_find_locked_rows_again_without_scanning_a_small_table(
    small_table: asyncpg.Connection, name: str
) -> None:
    args, index = HOT_STATEMENTS[name]
    nodes = await _plan(small_table, name, args)

    scans = [
        (node["Node Type"], node.get("Index Name"))
        for node in nodes
        if node.get("Relation Name") and "Scan" in node["Node Type"]
    ]
    assert sorted(scans) == [("Index Scan", index), ("Tid Scan", None)], f"{name}: {scans}"


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_queue_sample_reads_a_bounded_number_of_rows_on_a_million(
    million_jobs: asyncpg.Connection, plan_cache_mode: str
) -> None:
    """The metrics sampler counts up to its cap through the partial indexes, and finds the
    oldest due job with one probe per priority: never a walk of the whole backlog."""
    cap = 10_000
    await million_jobs.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    raw = await million_jobs.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()["sample_queues"],
        ["default"],
        cap,
        1_000,
    )
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    scans = [node for node in nodes if node.get("Relation Name") == "docko_jobs"]
    assert {node["Index Name"] for node in scans} == {
        "docko_jobs_claim_idx",
        "docko_jobs_lease_idx",
    }, [(node["Node Type"], node.get("Index Name")) for node in scans]
    for node in scans:
        assert node["Actual Rows"] * node["Actual Loops"] <= cap, node
    rows = await million_jobs.fetch(load_statements()["sample_queues"], ["default"], cap, 1_000)
    assert [(row["available"], row["running"]) for row in rows] == [(cap, cap)]
    assert rows[0]["oldest_due_age"] >= 0
