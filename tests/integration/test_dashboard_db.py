"""The dashboard against a real PostgreSQL, without a browser: its bounded reads of recent
activity (and their plans), the bulk confirmation's count, the application mounted under a
prefix inside another one, who may connect without a password, a read-only database role, and a
database that does not answer. Requests go straight to the ASGI application."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from docko_worker import Config, Queue
from docko_worker.dashboard import create_app
from docko_worker.dashboard import data as dashboard_data
from docko_worker.dashboard.data import DashboardData
from docko_worker.statements import load_statements
from docko_worker.store import ActivityStore, JobFilter, JobStore
from tests.conftest import fast_config, run_admin

Response = tuple[int, dict[str, str], str]


async def call(
    app: Any,
    method: str,
    target: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    client: str = "127.0.0.1",
) -> Response:
    """One HTTP request to an ASGI application, as uvicorn would pass it."""
    parts = urlsplit(target)
    sent = {"host": "127.0.0.1:8080", **(headers or {})}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
        "client": (client, 50000),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["headers"], answer["body"].decode()


FINISHED = """
INSERT INTO docko_jobs (id, queue_name, job_type, payload, max_attempts, state, attempt,
                        worker_id, finished_at)
SELECT gen_random_uuid(), $1, 'ocr', '{}', 1, $2::docko_job_state, 1, $3,
       now() - make_interval(secs => $4::float8)
FROM generate_series(1, $5::int)
"""


async def finish(
    db: asyncpg.Connection, queue: str, state: str, seconds_ago: float, count: int, worker: str
) -> None:
    await db.execute(FINISHED, queue, state, worker, seconds_ago, count)


async def test_recent_finishes_count_per_queue_and_minute_and_stop_at_their_limit(
    db: asyncpg.Connection, queue: Queue
) -> None:
    await finish(db, "documents", "completed", 5, 30, "w-1")
    await finish(db, "documents", "failed", 70, 4, "w-1")
    await finish(db, "emails", "completed", 600, 7, "w-2")
    await finish(db, "emails", "completed", 7200, 50, "w-3")  # more than an hour ago
    store = ActivityStore(queue.pool)
    rows = {
        (r.queue_name, r.minute): (r.completed, r.failed)
        for r in await store.recent_finishes(1000, 3600)
    }
    assert rows == {("documents", 0): (30, 0), ("documents", 1): (0, 4), ("emails", 10): (7, 0)}
    # At most the limit of each outcome, newest first.
    capped = await store.recent_finishes(20, 3600)
    assert sum(r.completed for r in capped) == 20 and sum(r.failed for r in capped) == 4
    assert {r.minute for r in capped if r.completed} == {0}


async def test_the_overview_says_which_minutes_a_capped_read_covers(
    db: asyncpg.Connection, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    for minute in range(10):
        await finish(db, "documents", "completed", minute * 60 + 30, 10, "w-1")
    monkeypatch.setattr(dashboard_data, "ACTIVITY_LIMIT", 45)
    data = DashboardData.of(config, None)
    try:
        activity = await data.activity()
    finally:
        await data.close()
    assert activity.covered_minutes == 4  # minutes 0-3 whole, minute 4 cut by the limit
    chart = activity.chart("documents")
    assert chart.completed == 40 and chart.uncounted_width > 0


async def test_daemons_seen_are_those_running_or_finishing_jobs_lately(
    db: asyncpg.Connection, queue: Queue
) -> None:
    await finish(db, "documents", "completed", 10, 3, "w-recent")
    await finish(db, "emails", "failed", 10, 1, "w-recent")
    await finish(db, "documents", "completed", 900, 3, "w-gone")
    job = await queue.enqueue("previews", "thumb", {})
    await db.execute(
        "UPDATE docko_jobs SET state = 'running', attempt = 1, worker_id = 'w-busy', "
        "lease_expires_at = now() + interval '1 minute' WHERE id = $1",
        job.id,
    )
    seen = {w.worker_id: w for w in await ActivityStore(queue.pool).recent_workers(1000, 300)}
    assert set(seen) == {"w-recent", "w-busy"}
    assert seen["w-recent"].queues == ["documents", "emails"] and seen["w-recent"].running == 0
    assert seen["w-busy"].queues == ["previews"] and seen["w-busy"].running == 1


async def test_count_jobs_counts_what_the_list_would_page_through(queue: Queue) -> None:
    for n in range(7):
        await queue.enqueue("documents" if n % 2 else "emails", "ocr", {"n": n})
    store = JobStore(queue.pool)
    assert await store.count_jobs(JobFilter(state="available")) == 7
    assert await store.count_jobs(JobFilter("documents", "ocr", "available")) == 3
    assert await store.count_jobs(JobFilter(state="failed")) == 0


async def test_the_activity_reads_scan_a_bounded_range_of_the_finished_index(
    db: asyncpg.Connection,
) -> None:
    # A busy hour, and a day's history of each outcome kept for inspection.
    for state in ("completed", "failed"):
        await finish(db, "documents", state, 30, 20_000, "w-1")
        await finish(db, "documents", state, 86_000, 50_000, "w-1")
    await db.execute("ANALYZE docko_jobs")
    statements = load_statements()
    for name in ("recent_finishes", "recent_workers"):
        plan = await db.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statements[name]}", 500, 3600.0)
        nodes = _nodes(json.loads(plan)[0]["Plan"])
        scans = [n for n in nodes if n.get("Index Name") == "docko_jobs_finished_idx"]
        assert len(scans) == 2, name  # one bounded range per outcome
        assert all(n["Scan Direction"] == "Backward" for n in scans), name
        assert sum(n["Actual Rows"] for n in scans) <= 2 * 500, name  # 500 of each outcome
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], name


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


TOKEN = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


async def test_mounted_under_a_prefix_its_links_forms_and_actions_stay_under_it(
    queue: Queue,
) -> None:
    await queue.enqueue("documents", "ocr", {"document_id": 1})
    dashboard = create_app(queue.config, queue=queue)
    outer = Starlette(routes=[Mount("/admin/docko", app=dashboard)])
    status, headers, page = await call(outer, "GET", "/admin/docko/")
    assert status == 200
    assert 'href="/admin/docko/static/dashboard.css' in page
    assert 'action="/admin/docko/queues/pause"' in page
    assert 'href="/admin/docko/jobs?queue=documents"' in page
    cookie = headers["set-cookie"].split(";")[0]
    assert "Path=/admin/docko" in headers["set-cookie"]
    token = TOKEN.search(page)
    assert token is not None
    for path in ["/admin/docko/jobs", "/admin/docko/periodic", "/admin/docko/static/dashboard.js"]:
        status, answer, _ = await call(outer, "GET", path)
        assert status == 200 and "script-src 'self'" in answer["content-security-policy"], path
    body = urlencode({"queue": "documents", "csrf": token.group(1)}).encode()
    status, answer, _ = await call(
        outer, "POST", "/admin/docko/queues/pause", body=body, headers={"cookie": cookie}
    )
    assert status == 303 and answer["location"] == "/admin/docko/?notice=paused"
    assert (await queue.queues())[0].paused
    # The token of one session does not open another.
    status, _, _ = await call(
        outer,
        "POST",
        "/admin/docko/queues/resume",
        body=body,
        headers={"cookie": "docko_csrf=" + "x" * 43},
    )
    assert status == 403 and (await queue.queues())[0].paused


async def test_without_a_password_only_loopback_clients_under_a_loopback_host_get_in(
    queue: Queue,
) -> None:
    app = create_app(queue.config, queue=queue)
    assert (await call(app, "GET", "/"))[0] == 200
    assert (await call(app, "GET", "/", headers={"host": "localhost:8080"}))[0] == 200
    assert (await call(app, "GET", "/", client="10.1.2.3"))[0] == 403
    # DNS rebinding: a page of another site whose name now leads here.
    assert (await call(app, "GET", "/", headers={"host": "evil.example:8080"}))[0] == 403
    trusting = create_app(queue.config, queue=queue, external_auth=True)
    assert (await call(trusting, "GET", "/", client="10.1.2.3"))[0] == 200


async def test_a_database_that_does_not_answer_gives_one_line_and_a_503() -> None:
    config = fast_config("postgresql://postgres@127.0.0.1:1/none")
    app = create_app(config)
    async with app.router.lifespan_context(app):
        status, _, page = await call(app, "GET", "/jobs")
    assert status == 503
    assert re.search(r'<p class="refusal">database unavailable: [^<\n]+</p>', page)


@pytest.fixture
async def reader_config(server_dsn: str, database_url: str) -> AsyncIterator[Config]:
    """A role that may only read docko's tables, on this test's database."""
    role = f"docko_reader_{uuid.uuid4().hex[:8]}"
    await run_admin(server_dsn, f'CREATE ROLE "{role}" LOGIN')
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'GRANT SELECT ON docko_jobs, docko_queues, docko_periodic TO "{role}"')
        parts = urlsplit(database_url)
        netloc = f"{role}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        yield fast_config(parts._replace(netloc=netloc).geturl(), dashboard_read_only=True)
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.close()
        await run_admin(server_dsn, f'DROP ROLE IF EXISTS "{role}"')


async def test_a_read_only_role_serves_the_read_only_dashboard(
    reader_config: Config, queue: Queue
) -> None:
    job = await queue.enqueue("documents", "ocr", {"document_id": 1})
    app = create_app(reader_config)
    async with app.router.lifespan_context(app):  # closes the dashboard's own pool
        for path in ["/", "/jobs", "/jobs?state=available", f"/jobs/{job.id}", "/periodic"]:
            status, _, page = await call(app, "GET", path)
            assert status == 200, (path, page[-500:])
            assert 'method="post"' not in page
        assert (await call(app, "POST", "/queues/pause", body=b"queue=documents"))[0] == 403
