"""docko-worker: ``Queue.enqueue_many`` / ``Queue.enqueue``, and the ``docko-worker run`` daemon.

Three rows use this adapter: the fast configuration (completed jobs deleted at once,
``DOCKO_COMPLETED_RETENTION=0``), the default retention users get out of the box (completed
rows kept for a day), the fast configuration with plain-def handlers (``noop_sync``, run in the
daemon's thread pool at its default size), and the fast configuration with the HTTP endpoint on
(``DOCKO_HTTP_PORT``: every claim and outcome counted for ``/metrics``, the queue sampler
running), to measure what metrics cost against the first row in the same run. All run 2,000
concurrent workers claiming up to 1,000 jobs per statement and writing up to 1,000 outcomes per
statement: twice the batch, so one claim is in flight while the previous batch runs. Measured
here, claims of 1,000 processed 20,000 jobs about 35% faster than claims of 500 (per-statement
costs: planning, round trips), and claims of 2,000 no faster.

The first two take part in the scheduled-job lateness scenario: ``Queue.enqueue(..., delay=...)``
returns the job with its ``run_at``; ``Queue.enqueue_many(..., delay=...)`` returns ids, whose
``run_at`` is read back at once (the jobs are not due yet, so no worker has taken or deleted them).
"""

from __future__ import annotations

import socket
from typing import Any

from .base import JOB_TYPE, QUEUE, Payload, System, WorkerCommand, venv_script, worker_environment

SYNC_JOB_TYPE = "noop_sync"

DEFAULT_RETENTION = 86_400

# The due times of jobs just enqueued, by id.
DUE_TIMES_SQL = "SELECT id, date_part('epoch', run_at) FROM docko_jobs WHERE id = ANY($1::uuid[])"


def _thread_pool_size() -> int:
    from docko_worker.config import Config

    size: int = Config.model_fields["thread_pool_size"].default
    return size


class Docko(System):
    package = "docko-worker"
    chunk_size = 5000

    def __init__(
        self,
        *,
        retention: int,
        worker_count: int = 2000,
        claim_batch: int = 1000,
        sync_handlers: bool = False,
        metrics: bool = False,
    ) -> None:
        self.retention = retention
        self.worker_count = worker_count
        self.claim_batch = claim_batch
        self.sync_handlers = sync_handlers
        self.job_type = SYNC_JOB_TYPE if sync_handlers else JOB_TYPE
        self.metrics = metrics
        if sync_handlers:
            self.key, self.label = "docko-sync", "docko-worker (sync handlers)"
        elif metrics:
            self.key, self.label = "docko-metrics", "docko-worker (metrics on)"
        elif retention == 0:
            self.key, self.label = "docko", "docko-worker"
        else:
            self.key, self.label = "docko-retain", "docko-worker (default retention)"
        self._queue: Any = None

    def _daemon_settings(self) -> dict[str, str]:
        """The daemon's DOCKO_* settings other than the database and queue."""
        settings = {
            "DOCKO_WORKER_COUNT": str(self.worker_count),
            "DOCKO_CLAIM_BATCH_SIZE": str(self.claim_batch),
            "DOCKO_COMPLETION_BATCH_SIZE": str(self.claim_batch),
            "DOCKO_COMPLETED_RETENTION": str(self.retention),
            "DOCKO_LOG_LEVEL": "warning",
            "DOCKO_LOG_FORMAT": "json",
        }
        if self.metrics:
            settings["DOCKO_HTTP_PORT"] = "<a free port>"
        return settings

    def settings(self) -> dict[str, str]:
        return {
            "worker environment": worker_environment("docko"),
            **self._daemon_settings(),
            "handler": f"{self.job_type} ({'a plain def' if self.sync_handlers else 'async def'})",
            "others": "defaults (LISTEN on, poll 1 s, pool 10, flush 5 ms, "
            f"{_thread_pool_size()} handler threads)",
            "enqueue": f"Queue.enqueue_many, {self.chunk_size} per call; Queue.enqueue for latency",
            "lateness": "DOCKO_POLL_INTERVAL=60; Queue.enqueue and Queue.enqueue_many with delay",
        }

    def _config(self, dsn: str) -> Any:
        from docko_worker.config import load_config

        return load_config(database_url=dsn, log_level="warning")

    async def install(self, dsn: str) -> None:
        from docko_worker import Queue

        async with await Queue.connect(self._config(dsn)) as queue:
            await queue.migrate()

    async def open(self, dsn: str) -> None:
        from docko_worker import Queue

        self._queue = await Queue.connect(self._config(dsn))

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.close()
            self._queue = None

    async def enqueue_bulk(self, payloads: list[Payload]) -> None:
        await self._queue.enqueue_many(QUEUE, self.job_type, payloads)

    async def enqueue_one(self, item: Payload) -> None:
        await self._queue.enqueue(QUEUE, self.job_type, item)

    def worker_command(self, dsn: str) -> WorkerCommand:
        env = {"DOCKO_DATABASE_URL": dsn, "DOCKO_QUEUES": QUEUE, **self._daemon_settings()}
        if self.metrics:
            env["DOCKO_HTTP_PORT"] = str(_free_port())
        return WorkerCommand([venv_script("docko-worker", "docko"), "run"], env)

    # Each state counted through its partial index (claim, lease): written as one IN list the
    # planner has no index for, and scans the whole table in parallel, a history kept included
    # (~0.2 s of two cores at 1,000,000 rows, ~1 s at 5,000,000), at every poll of a burn-down.
    unfinished_sql = (
        "SELECT (SELECT count(*) FROM docko_jobs WHERE state = 'available')"
        " + (SELECT count(*) FROM docko_jobs WHERE state = 'running')"
    )

    measures_lateness = True

    async def enqueue_one_delayed(self, item: Payload, delay: float) -> float:
        job = await self._queue.enqueue(QUEUE, JOB_TYPE, item, delay=delay)
        return float(job.run_at.timestamp())

    async def enqueue_bulk_delayed(self, payloads: list[Payload], delay: float) -> list[float]:
        ids = await self._queue.enqueue_many(QUEUE, JOB_TYPE, payloads, delay=delay)
        due = dict(await self._queue.pool.fetch(DUE_TIMES_SQL, ids))
        if len(due) != len(ids):
            raise RuntimeError(f"{len(ids) - len(due)} jobs gone before they were due")
        return [float(due[job_id]) for job_id in ids]

    def lateness_worker_command(self, dsn: str, poll_interval: float) -> WorkerCommand:
        command = self.worker_command(dsn)
        env = {**command.env, "DOCKO_POLL_INTERVAL": f"{poll_interval:g}"}
        return WorkerCommand(command.argv, env)


def _free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
