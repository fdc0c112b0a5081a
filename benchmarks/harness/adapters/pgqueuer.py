"""pgqueuer 1.x: ``Queries.enqueue`` with lists, and the ``pgq run`` worker.

Configured as its docs advise for throughput (docs/guides/performance-tuning.md): a large
``--batch-size`` (100) for short jobs, no ``max_concurrent_tasks`` cap (the default: unlimited),
``pgq autovac`` applied after ``pgq install``, asyncpg driver (about 1.7x psycopg per its
benchmarks page), one direct connection for the QueueManager. Durability is a row parameter:
``balanced`` keeps the jobs table WAL-logged (crash-safe like docko's) and makes only the log and
statistics tables UNLOGGED ("~2x"); ``volatile`` makes every table UNLOGGED ("Highest").
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from .base import (
    JOB_TYPE,
    Payload,
    System,
    WorkerCommand,
    run_tool,
    venv_script,
    worker_environment,
)


class PgQueuer(System):
    package = "pgqueuer"
    chunk_size = 5000

    def __init__(self, *, durability: str, batch_size: int = 100) -> None:
        self.durability = durability
        self.batch_size = batch_size
        self.key = f"pgqueuer-{durability}"
        self.label = f"pgqueuer ({durability})"
        self._conn: Any = None
        self._queries: Any = None

    def settings(self) -> dict[str, str]:
        return {
            "worker environment": worker_environment("pgqueuer"),
            "command": f"pgq run docko_bench_handlers.pgqueuer_app:create_pgqueuer "
            f"--batch-size {self.batch_size} --log-level WARNING",
            "durability": f"{self.durability} (pgq install --durability {self.durability})",
            "autovac": "pgq autovac",
            "max_concurrent_tasks": "unlimited (default)",
            "driver": "AsyncpgDriver, one connection",
            "dequeue_timeout": "30 s (default; NOTIFY wakes it)",
            "enqueue": f"Queries.enqueue with lists, {self.chunk_size} per call; "
            "scalar Queries.enqueue for latency",
        }

    async def install(self, dsn: str) -> None:
        pgq = venv_script("pgq", "pgqueuer")
        for args in (["install", "--durability", self.durability], ["autovac"]):
            await run_tool(f"pgq {' '.join(args)}", [pgq, "--pg-dsn", dsn, *args])

    async def open(self, dsn: str) -> None:
        from pgqueuer import Queries
        from pgqueuer.db import AsyncpgDriver

        self._conn = await asyncpg.connect(dsn)
        self._queries = Queries(AsyncpgDriver(self._conn))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = self._queries = None

    async def enqueue_bulk(self, payloads: list[Payload]) -> None:
        count = len(payloads)
        await self._queries.enqueue(
            [JOB_TYPE] * count,
            [json.dumps(item).encode() for item in payloads],
            [0] * count,
        )

    async def enqueue_one(self, item: Payload) -> None:
        await self._queries.enqueue(JOB_TYPE, json.dumps(item).encode())

    def worker_command(self, dsn: str) -> WorkerCommand:
        argv = [
            venv_script("pgq", "pgqueuer"),
            "run",
            "docko_bench_handlers.pgqueuer_app:create_pgqueuer",
            "--batch-size",
            str(self.batch_size),
            "--log-level",
            "WARNING",
        ]
        return WorkerCommand(argv, {"PGDSN": dsn})

    unfinished_sql = "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')"
