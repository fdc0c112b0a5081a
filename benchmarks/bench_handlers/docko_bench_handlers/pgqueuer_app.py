"""pgqueuer worker factory for ``pgq run docko_bench_handlers.pgqueuer_app:create_pgqueuer``.

The DSN comes from ``PGDSN`` (the variable ``pgq --pg-dsn`` also reads). Payloads are the
JSON bytes the harness enqueued; decoding them is the handler's job in pgqueuer.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import Job, PgQueuer
from pgqueuer.db import AsyncpgDriver

from .recorder import record


@asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[PgQueuer]:
    """One asyncpg connection, as pgqueuer's docs recommend for the QueueManager."""
    connection = await asyncpg.connect(os.environ["PGDSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        payload = json.loads(job.payload or b"{}")
        record(payload["seq"], payload["t"])

    try:
        yield pgq
    finally:
        await connection.close()
