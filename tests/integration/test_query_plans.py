"""Query plans on a table of 1,000,000 jobs: the hot statements use their partial indexes.

A plan regression (a predicate the partial index cannot serve, a lost CTE fence) turns a
millisecond claim into a sequential scan of the whole table; these tests fail CI when that
happens. Plans are checked both as custom plans and as the generic plans asyncpg's prepared
statements fall back to after a few executions. The operator's statements are checked too: a
page of the job list reads a few thousand rows at most whatever its filter, and the queue
overview reads partial indexes, never the completed history.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from docko_worker.lanes import Lanes
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


def claim_args(
    queues: list[str], job_types: list[str], limit: int, lanes: Lanes | None = None
) -> tuple[Any, ...]:
    """The arguments of claim_jobs and claim_jobs_merged: every lane of ``queues`` x
    ``job_types`` from where ``lanes`` says it begins (by default, from its start)."""
    bounds = (lanes or Lanes(queues, job_types)).bounds()
    return (
        bounds.queues,
        bounds.job_types,
        limit,
        "worker-1",
        300.0,
        bounds.after_priority,
        bounds.after_run_at,
    )


HOT_STATEMENTS: dict[str, tuple[tuple[Any, ...], str]] = {
    "claim_jobs": (claim_args(["default"], ["ocr"], 500), "docko_jobs_lane_idx"),
    "claim_jobs_merged": (
        claim_args(["default", "other"], ["ocr", "pdf", "thumbnail"], 500),
        "docko_jobs_lane_idx",
    ),
    "rescue_expired_jobs": ((1000, "docko_jobs"), "docko_jobs_lease_idx"),
    "prune_finished_jobs": (("completed", 3600.0, 1000), "docko_jobs_finished_idx"),
}
# Statements that read without locking: checked on a million rows only.
READ_STATEMENTS: dict[str, tuple[tuple[Any, ...], str]] = {
    "waiting_unknown_types": ((["default"], ["pdf"], 60.0, 1000), "docko_jobs_lane_idx"),
    "sample_queues": ((["default", "other"], 10_000, 1_000), "docko_jobs_lane_idx"),
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


@pytest.mark.parametrize("name", ["claim_jobs", "claim_jobs_merged"])
async def test_claim_updates_no_more_rows_than_asked_on_a_million_rows(
    million_jobs: asyncpg.Connection, name: str
) -> None:
    transaction = million_jobs.transaction()
    await transaction.start()
    try:
        raw = await million_jobs.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()[name],
            *claim_args(["default", "other"], ["ocr", "pdf"], 100),
        )
    finally:
        await transaction.rollback()  # leave the shared table as it was
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    updates = [node for node in nodes if node["Node Type"] == "ModifyTable"]
    assert [node["Actual Rows"] for node in updates] == [100]
    # Only the merged claim reads a lane's head without locking it: it locks what it takes.
    locks = [node for node in nodes if node["Node Type"] == "LockRows"]
    if name == "claim_jobs_merged":
        assert [node["Actual Rows"] for node in locks] == [100]


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", ["claim_jobs", "claim_jobs_merged", "waiting_unknown_types"])
async def test_a_backlog_of_other_types_is_not_read(
    million_jobs: asyncpg.Connection, name: str, plan_cache_mode: str
) -> None:
    """A daemon that handles none of the queue's 100,000 available 'ocr' jobs (a rolling deploy,
    a shared queue) claims its own type, and looks for waiting unknown types, without reading
    that backlog: the type leads each lane of the index."""
    await million_jobs.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    args: tuple[Any, ...] = (
        (["default"], ["pdf"], 60.0, 1000)
        if name == "waiting_unknown_types"
        else claim_args(["default"], ["pdf"], 100)
    )
    transaction = million_jobs.transaction()
    await transaction.start()
    try:
        raw = await million_jobs.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()[name], *args
        )
    finally:
        await transaction.rollback()
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    read = sum(
        node["Actual Rows"] * node["Actual Loops"]
        for node in nodes
        if node.get("Relation Name") == "docko_jobs"
    )
    # The unknown-type look reads up to its sample of 1,000 of them, as it should.
    assert read <= (1_001 if name == "waiting_unknown_types" else 0), [
        (node["Node Type"], node.get("Index Name"), node["Actual Rows"]) for node in nodes
    ]


OUTCOME_STATEMENTS: dict[str, tuple[Any, ...]] = {
    "complete_jobs": ([], []),
    "delete_completed_jobs": ([], []),
    "retry_jobs": ([], [], [], []),
    "fail_jobs": ([], [], []),
    "cancel_running_jobs": ([], [], []),
    "release_jobs": ([], [], "docko_jobs"),
    "extend_leases": ([], [], "worker-1", 300.0),
    # The operator's writes by id, planned the same way.
    "cancel_jobs": ([], None, "docko_control"),
    "requeue_jobs": ([], "docko_jobs"),
}

# Indexes a statement may read besides the primary key: the retry's check that no unfinished job
# holds the dedupe key it would take.
OUTCOME_EXTRA_INDEXES: dict[str, set[str]] = {"requeue_jobs": {"docko_jobs_dedupe_idx"}}


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
    assert indexes == {"docko_jobs_pkey"} | OUTCOME_EXTRA_INDEXES.get(name, set()), (
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
        if node.get("Relation Name") == "docko_jobs" and "Scan" in node["Node Type"]
    ]
    # The merged claim finds its locked rows again by ctid twice: to lock them, then to update.
    tid_scans = [("Tid Scan", None)] * (2 if name == "claim_jobs_merged" else 1)
    assert sorted(scans) == [("Index Scan", index), *tid_scans], f"{name}: {scans}"
    # The claim's one look-up per served queue of its paused flag.
    others = {
        (node["Relation Name"], node.get("Index Name"))
        for node in nodes
        if node.get("Relation Name") not in (None, "docko_jobs")
    }
    claims = ("claim_jobs", "claim_jobs_merged")
    assert others == ({("docko_queues", "docko_queues_pkey")} if name in claims else set())


# list_jobs and list_job_ids run with custom plans (use_custom_plans): each filter reaches the
# planner as a value. Arguments: queue, job type, state, before, limit.
LIST_FILTERS: dict[str, tuple[Any, ...]] = {
    "no filter": (None, None, None, None, 50),
    "queue": ("default", None, None, None, 50),
    "job type": (None, "ocr", None, None, 50),
    "queue and job type": ("default", "ocr", None, None, 50),
    "available": (None, None, "available", None, 50),
    "running": (None, None, "running", None, 50),
    "completed": (None, None, "completed", None, 50),
    "failed": (None, None, "failed", None, 50),
    "cancelled": (None, None, "cancelled", None, 50),
    "failed of a job type": (None, "ocr", "failed", None, 50),
    "a page deep in the table": (None, None, None, "80000000-0000-4000-8000-000000000000", 50),
    "a deep page of completed": (
        None,
        None,
        "completed",
        "40000000-0000-4000-8000-000000000000",
        50,
    ),
    "bulk page of ids": ("default", None, "available", None, 1000),
}

# Rows a page of 50 (or a bulk page of 1,000) may read on the way: a plan that walks or sorts a
# large part of the table reads hundreds of thousands.
MOST_ROWS_READ = 20_000


def _rows_read(nodes: list[dict[str, Any]]) -> int:
    return sum(
        node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
        for node in nodes
        if node.get("Relation Name") == "docko_jobs"
    )


@pytest.mark.parametrize("statement", ["list_jobs", "list_job_ids"])
@pytest.mark.parametrize("case", sorted(LIST_FILTERS))
async def test_a_page_of_the_job_list_reads_few_rows_of_a_million(
    million_jobs: asyncpg.Connection, statement: str, case: str
) -> None:
    args = LIST_FILTERS[case]
    async with million_jobs.transaction():
        await million_jobs.execute(load_statements()["use_custom_plans"])
        raw = await million_jobs.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()[statement], *args
        )
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    described = [(n["Node Type"], n.get("Index Name"), n.get("Actual Rows")) for n in nodes]
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], f"{case}: {described}"
    assert _rows_read(nodes) <= MOST_ROWS_READ, f"{case}: {described}"
    state = args[2]
    if state in ("failed", "cancelled"):
        assert "docko_jobs_stopped_idx" in {n.get("Index Name") for n in nodes}, described


@pytest.fixture
async def time_ordered(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Jobs whose ids ascend with time, as they do in use: an older history of completed jobs
    with failed and cancelled ones among it, then the oldest of the backlog running, the rest
    of it newest. A plan that expects the running or failed rows spread evenly among the ids
    walks the whole table to find them."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(TIME_ORDERED_FILL)
    await conn.execute("ANALYZE docko_jobs")
    try:
        yield conn
    finally:
        await conn.close()


TIME_ORDERED_FILL = """
INSERT INTO docko_jobs (id, queue_name, job_type, payload, max_attempts, state, attempt,
                        lease_expires_at, finished_at, worker_id)
SELECT (lpad(to_hex(n), 12, '0') || '7000' || '8000' || lpad(to_hex(n), 12, '0'))::uuid,
       'default', 'ocr', '{}', 5, kind::docko_job_state,
       CASE WHEN kind = 'available' THEN 0 ELSE 1 END,
       CASE WHEN kind = 'running' THEN now() + interval '5 minutes' END,
       CASE WHEN kind IN ('completed', 'failed', 'cancelled') THEN now() END,
       CASE WHEN kind = 'running' THEN 'worker-1' END
FROM (
    SELECT n, CASE WHEN n <= 200000 AND n % 100 = 0 THEN 'failed'
                   WHEN n <= 200000 AND n % 1000 = 1 THEN 'cancelled'
                   WHEN n <= 200000 THEN 'completed'
                   WHEN n <= 200200 THEN 'running'
                   ELSE 'available' END AS kind
    FROM generate_series(1, 300000) AS n
) AS fill
"""


@pytest.mark.parametrize("state", ["running", "failed", "cancelled"])
async def test_few_jobs_of_a_state_are_found_without_walking_the_newer_ones(
    time_ordered: asyncpg.Connection, state: str
) -> None:
    async with time_ordered.transaction():
        await time_ordered.execute(load_statements()["use_custom_plans"])
        raw = await time_ordered.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()["list_jobs"],
            None,
            None,
            state,
            None,
            50,
        )
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    described = [(n["Node Type"], n.get("Index Name"), n.get("Actual Rows")) for n in nodes]
    assert _rows_read(nodes) <= 5_000, described


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_queue_overview_reads_partial_indexes_not_the_completed_history(
    long_history: asyncpg.Connection, plan_cache_mode: str
) -> None:
    """200,000 completed jobs beside a few of each other state: the overview reads those few."""
    await long_history.execute(
        "UPDATE docko_jobs SET state = CASE WHEN n % 4 = 0 THEN 'available' WHEN n % 4 = 1 "
        "THEN 'running' WHEN n % 4 = 2 THEN 'failed' ELSE 'cancelled' END::docko_job_state, "
        "finished_at = CASE WHEN n % 4 >= 2 THEN now() END, "
        "lease_expires_at = CASE WHEN n % 4 = 1 THEN now() END "
        "FROM (SELECT id, row_number() OVER () AS n FROM docko_jobs LIMIT 400) AS few "
        "WHERE docko_jobs.id = few.id"
    )
    await long_history.execute("ANALYZE docko_jobs")
    await long_history.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    raw = await long_history.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()["queue_overview"]
    )
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    described = [(n["Node Type"], n.get("Index Name"), n.get("Actual Rows")) for n in nodes]
    jobs_scans = {n.get("Index Name") for n in nodes if n.get("Relation Name") == "docko_jobs"}
    assert jobs_scans == {
        "docko_jobs_lane_idx",
        "docko_jobs_lease_idx",
        "docko_jobs_stopped_idx",
    }, described
    assert _rows_read(nodes) <= 1_000, described


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
        "docko_jobs_lane_idx",
        "docko_jobs_lease_idx",
    }, [(node["Node Type"], node.get("Index Name")) for node in scans]
    for node in scans:
        assert node["Actual Rows"] * node["Actual Loops"] <= cap, node
    rows = await million_jobs.fetch(load_statements()["sample_queues"], ["default"], cap, 1_000)
    assert [(row["available"], row["running"]) for row in rows] == [(cap, cap)]
    assert rows[0]["oldest_due_age"] >= 0


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", ["claim_jobs", "claim_jobs_merged"])
async def test_a_claim_starts_each_lane_where_its_cursor_says(
    million_jobs: asyncpg.Connection, name: str, plan_cache_mode: str
) -> None:
    """The lane's bound starts the index scan (an index condition, not a filter over the
    entries before it): entries a held snapshot keeps in the index are not visited."""
    await million_jobs.execute(f"SET plan_cache_mode = {plan_cache_mode}")
    queues, job_types, *rest, _, _ = claim_args(["default"], ["ocr"], 100)
    transaction = million_jobs.transaction()
    await transaction.start()
    try:
        raw = await million_jobs.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + load_statements()[name],
            queues,
            job_types,
            *rest,
            [7],  # the 800,000 jobs' priorities are 0-9: start at 7
            [float("-inf")],
        )
    finally:
        await transaction.rollback()
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    [scan] = [node for node in nodes if node.get("Index Name") == "docko_jobs_lane_idx"]
    assert "priority" in scan["Index Cond"], scan
    assert scan.get("Rows Removed by Filter", 0) == 0, scan
    assert scan["Actual Rows"] == 100, scan
    updates = [node for node in nodes if node["Node Type"] == "ModifyTable"]
    assert [node["Actual Rows"] for node in updates] == [100]


async def test_plans_made_on_a_nearly_empty_table_still_use_indexes_once_it_grew(
    database_url: str,
) -> None:
    """A daemon started on a new table plans each statement once, while the table holds a few
    rows and was never analyzed; those plans serve it as the table grows until an ANALYZE. A
    sequential scan looked cheapest then, and every claim and outcome write went on scanning the
    whole table."""
    conn = await asyncpg.connect(database_url)
    try:
        statements = load_statements()
        await conn.execute(statements["use_generic_plans"])
        await conn.execute(FILL, 30, 0, 0)

        async def run_hot_statements() -> None:
            lanes = claim_args(["default"], ["ocr"], 10)
            claimed = await conn.fetch(statements["claim_jobs"], *lanes)
            ids, attempts = [row["id"] for row in claimed], [row["attempt"] for row in claimed]
            await conn.fetch(statements["claim_jobs_merged"], *lanes)
            await conn.fetch(statements["extend_leases"], ids[:3], attempts[:3], "worker-1", 60.0)
            await conn.fetch(statements["complete_jobs"], ids[3:6], attempts[3:6])
            await conn.fetch(statements["delete_completed_jobs"], ids[6:], attempts[6:])
            await conn.fetch(statements["rescue_expired_jobs"], 100, "docko_jobs")

        await run_hot_statements()  # planned now, on 30 rows
        await conn.execute(FILL, 20_000, 0, 30_000)  # no ANALYZE
        async with conn.transaction():  # pg_stat_xact_* counts this transaction's scans
            await run_hot_statements()
            scans = await conn.fetchval(
                "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'docko_jobs'"
            )
        assert scans == 0
    finally:
        await conn.close()
