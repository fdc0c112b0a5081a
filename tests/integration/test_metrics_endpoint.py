"""The HTTP endpoint of a started queue (``DOCKO_HTTP_PORT``): ``/metrics`` after a known
workload, read with prometheus_client's own parser; ``/readyz`` through start, a stale schema and
shutdown; ``/healthz``; and a port that cannot be had."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from docko_worker import Config, ConfigError, Job, PermanentError, Queue
from docko_worker.migrations import available_migrations
from tests.http_probe import Scrape, get, scrape
from tests.integration.support import running_queue, supervisor_of, wait_until

QUEUE = "default"


def base_url(queue: Queue) -> str:
    endpoint = supervisor_of(queue).endpoint
    assert endpoint is not None and endpoint.address is not None
    host, port = endpoint.address
    return f"http://{host}:{port}"


async def fetch(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, url)


async def read_metrics(url: str) -> Scrape:
    return await asyncio.to_thread(scrape, url)


@pytest.fixture
def http_config(make_config: Callable[..., Config]) -> Config:
    return make_config(http_port=0, metrics_sample_interval=0.2)


async def ok(_job: Job) -> None:
    pass


async def bad(_job: Job) -> None:
    raise RuntimeError("bad")


async def permanent(_job: Job) -> None:
    raise PermanentError("corrupt")


async def flaky(job: Job) -> None:
    if job.attempt == 1:
        raise RuntimeError("first attempt fails")


async def test_metrics_count_a_known_workload_by_queue_type_and_outcome(
    http_config: Config, queue: Queue
) -> None:
    await queue.enqueue_many(QUEUE, "ok", [{"n": n} for n in range(30)])
    for _ in range(2):
        await queue.enqueue(QUEUE, "bad", {}, max_attempts=1)
    await queue.enqueue(QUEUE, "permanent", {})
    for _ in range(3):
        await queue.enqueue(QUEUE, "flaky", {}, max_attempts=3)
    # Not due for an hour, and due for a minute with no handler: waiting, counted, lagging.
    await queue.enqueue_many(QUEUE, "ok", [{}] * 4, delay=3600)
    await queue.enqueue(QUEUE, "nobody", {}, run_at=datetime.now(UTC) - timedelta(seconds=60))
    handlers = {"ok": ok, "bad": bad, "permanent": permanent, "flaky": flaky}

    async with running_queue(http_config, handlers) as daemon:
        url = base_url(daemon)

        async def settled() -> Scrape | None:
            metrics = await read_metrics(url)
            done = metrics.total("docko_jobs_total", outcome="completed") == 33
            written = metrics.value("docko_outcome_write_size_sum") == 39
            waiting = metrics.total("docko_queue_jobs", state="available") == 5
            idle = metrics.total("docko_queue_jobs", state="running") == 0
            return metrics if done and written and waiting and idle else None

        metrics = await wait_until(settled, message="every outcome counted and written")

    def jobs(job_type: str, outcome: str) -> float:
        return metrics.value("docko_jobs_total", queue=QUEUE, job_type=job_type, outcome=outcome)

    assert jobs("ok", "completed") == 30
    assert (jobs("flaky", "retried"), jobs("flaky", "completed")) == (3, 3)
    assert jobs("bad", "failed") == 2
    assert jobs("permanent", "failed") == 1
    for outcome in ("cancelled", "released", "lease_lost", "write_rejected"):
        assert metrics.total("docko_jobs_total", outcome=outcome) == 0, outcome
    # Every run was timed and every claim's wait measured: 39 runs of 39 claimed attempts.
    assert metrics.total("docko_job_duration_seconds_count") == 39
    assert metrics.value("docko_job_duration_seconds_count", queue=QUEUE, job_type="ok") == 30
    assert metrics.total("docko_job_wait_seconds_count") == 39
    assert metrics.value("docko_claim_size_sum") == 39
    assert metrics.value("docko_claim_size_count") >= 1
    inf_bucket = metrics.value(
        "docko_job_duration_seconds_bucket", queue=QUEUE, job_type="ok", le="+Inf"
    )
    assert inf_bucket == 30
    # Sampled from the database: 4 scheduled plus 1 due of an unknown type, the latter waiting.
    assert metrics.value("docko_queue_jobs", queue=QUEUE, state="available") == 5
    assert metrics.value("docko_queue_jobs", queue=QUEUE, state="running") == 0
    assert metrics.value("docko_queue_oldest_due_age_seconds", queue=QUEUE) >= 60
    assert metrics.value("docko_worker_slots") == http_config.worker_count
    assert metrics.value("docko_ready") == 1
    assert metrics.value("docko_listen_connected") == 1
    assert metrics.value("docko_jobs_running", queue=QUEUE, job_type="ok") == 0
    assert "process_cpu_seconds_total" in metrics.names()
    docko = {name for name in metrics.names() if not name.startswith(("process_", "python_"))}
    assert all(name.startswith("docko_") for name in docko), docko
    labels = {key for name, labels in metrics.samples if name in docko for key, _ in labels}
    # Bounded: no job id, payload or worker id among them.
    assert labels <= {"queue", "job_type", "outcome", "state", "le", "version"}, labels


async def test_metrics_speak_openmetrics_when_asked(http_config: Config) -> None:
    async with running_queue(http_config, {"ok": ok}) as daemon:
        text = await asyncio.to_thread(
            scrape, base_url(daemon), {"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert text.text.rstrip().endswith("# EOF")
    assert text.value("docko_worker_slots") == http_config.worker_count


async def test_readyz_turns_503_as_soon_as_shutdown_starts_before_the_drain_ends(
    make_config: Callable[..., Config], queue: Queue
) -> None:
    http_config = make_config(http_port=0, metrics_sample_interval=0.2, shutdown_timeout=60)
    started, release = asyncio.Event(), asyncio.Event()

    async def held(_job: Job) -> None:
        started.set()
        await release.wait()

    job = await queue.enqueue(QUEUE, "held", {})
    async with running_queue(http_config, {"held": held}) as daemon:
        url = base_url(daemon)
        await asyncio.wait_for(started.wait(), timeout=10)
        assert await wait_until(_answer_is(url + "/readyz", 200)) == (200, "ready\n")

        stopping = asyncio.create_task(daemon.stop())
        _, reason = await wait_until(
            _answer_is(url + "/readyz", 503), message="/readyz turning 503"
        )
        assert reason == "shutting down\n"
        assert not stopping.done(), "the drain has not ended: the handler still runs"
        assert await fetch(url + "/healthz") == (200, "ok\n")

        release.set()
        assert await stopping == []
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.state.value == "completed"


def _answer_is(url: str, status: int, containing: str = "") -> Callable[[], Any]:
    async def check() -> tuple[int, str] | None:
        answer = await fetch(url)
        return answer if answer[0] == status and containing in answer[1] else None

    return check


async def test_readyz_says_so_while_the_schema_lacks_a_migration(
    http_config: Config, db: asyncpg.Connection
) -> None:
    latest = max(m.version for m in available_migrations())
    await db.execute("DELETE FROM docko_schema_migrations WHERE version = $1", latest)
    async with running_queue(http_config, {"ok": ok}) as daemon:
        url = base_url(daemon) + "/readyz"
        _, reason = await wait_until(_answer_is(url, 503, "schema"), message="a schema reason")
    assert f"this daemon needs {latest} (run docko-worker migrate)" in reason


async def test_routes_methods_and_unknown_paths(http_config: Config) -> None:
    async with running_queue(http_config, {"ok": ok}) as daemon:
        url = base_url(daemon)
        assert await fetch(url + "/healthz") == (200, "ok\n")
        assert (await fetch(url + "/nowhere"))[0] == 404


async def test_a_port_in_use_stops_the_start_before_anything_runs(
    make_config: Callable[..., Config], queue: Queue
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        config = make_config(http_port=taken.getsockname()[1])
        job = await queue.enqueue(QUEUE, "ok", {})
        async with await Queue.connect(config) as daemon:
            daemon.register_handler("ok", ok)
            with pytest.raises(ConfigError, match="address already in use"):
                await daemon.start()
            assert daemon.worker_id is None, "nothing was started"
        stored = await queue.get_job(job.id)
        assert stored is not None and stored.state.value == "available"
    finally:
        taken.close()


async def test_an_address_that_is_not_this_hosts_stops_the_start(
    make_config: Callable[..., Config],
) -> None:
    # TEST-NET-1 (RFC 5737): never an address of this machine, so bind() refuses it.
    config = make_config(http_port=0, http_host="192.0.2.1")
    async with await Queue.connect(config) as daemon:
        daemon.register_handler("ok", ok)
        with pytest.raises(ConfigError, match=r"cannot serve HTTP on 192\.0\.2\.1"):
            await daemon.start()


async def test_a_paused_queue_shows_in_its_gauge(http_config: Config) -> None:
    async with running_queue(http_config, {"ok": ok}) as daemon:
        url = base_url(daemon)
        await daemon.pause(QUEUE)

        def gauge_at(wanted: float) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                metrics = await read_metrics(url)
                try:
                    return metrics.value("docko_queue_paused", queue=QUEUE) == wanted
                except KeyError:  # not sampled yet
                    return False

            return check

        await wait_until(gauge_at(1), message="the paused gauge at 1")
        await daemon.resume(QUEUE)
        await wait_until(gauge_at(0), message="the paused gauge back at 0")
