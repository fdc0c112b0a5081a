"""``JobStore``: one method per named statement, the only code that talks SQL to the jobs table.

Methods take plain values and return plain values or ``Job``s; the batch methods take parallel
lists, so one round trip writes many outcomes. Each write that finishes a job is guarded by the
attempt it was claimed with and returns the ids it actually changed, so callers can tell a lost
lease from a write that landed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any
from uuid import UUID

from .job import Job, new_job_ids
from .statements import SQL

NOTIFY_CHANNEL = "docko_jobs"

# The columns ``copy_jobs`` fills; the rest take their defaults (run_at = now()).
JOBS_TABLE = "docko_jobs"
COPY_COLUMNS = ("id", "queue_name", "job_type", "payload", "priority", "max_attempts")

# asyncpg's Pool and Connection share the query methods used here.
Executor = Any


class JobStore:
    """Named-statement access to ``docko_jobs`` through an asyncpg pool or connection."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def _on(self, conn: Executor | None) -> Executor:
        return self.executor if conn is None else conn

    async def enqueue_job(
        self,
        *,
        queue_name: str,
        job_type: str,
        payload_json: str,
        priority: int,
        max_attempts: int,
        run_at: datetime | None,
        delay: float,
        dedupe_key: str | None,
        conn: Executor | None = None,
    ) -> Job | None:
        row = await self._on(conn).fetchrow(
            SQL.enqueue_job,
            queue_name,
            job_type,
            payload_json,
            priority,
            max_attempts,
            run_at,
            delay,
            dedupe_key,
            NOTIFY_CHANNEL,
        )
        return None if row is None else Job.from_record(row)

    async def enqueue_jobs(
        self,
        *,
        queue_names: Sequence[str],
        job_types: Sequence[str],
        payloads_json: Sequence[str],
        priorities: Sequence[int],
        max_attempts: Sequence[int],
        run_ats: Sequence[datetime | None],
        delay: float,
        conn: Executor | None = None,
    ) -> list[UUID]:
        rows = await self._on(conn).fetch(
            SQL.enqueue_jobs,
            queue_names,
            job_types,
            payloads_json,
            priorities,
            max_attempts,
            run_ats,
            NOTIFY_CHANNEL,
            delay,
        )
        return [row[0] for row in rows]

    async def copy_jobs(
        self,
        *,
        queue_name: str,
        job_type: str,
        payload_chunks: Iterable[Sequence[str]],
        priority: int,
        max_attempts: int,
    ) -> list[UUID]:
        """Bulk insert through COPY on a pool connection, due now, with one NOTIFY, in one
        transaction.

        ``payload_chunks`` yields the JSON payloads a chunk at a time, one COPY each: while the
        server inserts one chunk, the next is produced (the caller encodes payloads lazily), so
        the client's work and the server's overlap. An error raised while producing a chunk rolls
        the whole transaction back. Only for the store's own pool: COPY encodes json with the
        connection's codec, which a caller's connection may have replaced.
        """
        ids: list[UUID] = []
        async with self.executor.acquire() as conn, conn.transaction():
            in_flight: asyncio.Future[Any] | None = None
            try:
                for chunk in payload_chunks:
                    chunk_ids = new_job_ids(len(chunk))
                    ids += chunk_ids
                    records = zip(
                        chunk_ids,
                        repeat(queue_name),
                        repeat(job_type),
                        chunk,
                        repeat(priority),
                        repeat(max_attempts),
                        strict=False,
                    )
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.ensure_future(
                        conn.copy_records_to_table(
                            JOBS_TABLE, records=records, columns=COPY_COLUMNS
                        )
                    )
                    # Let the COPY send its rows before the next chunk is produced.
                    await asyncio.sleep(0)
                if in_flight is not None:
                    await in_flight
            except BaseException:
                # The connection must be idle before the transaction can roll back; the COPY's
                # own error, if any, is superseded by this one.
                if in_flight is not None:
                    await asyncio.gather(in_flight, return_exceptions=True)
                raise
            await conn.execute(SQL.notify_queue, NOTIFY_CHANNEL, queue_name)
        return ids

    async def find_unfinished_by_dedupe_key(
        self, dedupe_key: str, conn: Executor | None = None
    ) -> Job | None:
        row = await self._on(conn).fetchrow(SQL.find_unfinished_by_dedupe_key, dedupe_key)
        return None if row is None else Job.from_record(row)

    async def get_job(self, job_id: UUID, conn: Executor | None = None) -> Job | None:
        row = await self._on(conn).fetchrow(SQL.get_job, job_id)
        return None if row is None else Job.from_record(row)

    async def claim_jobs(
        self,
        *,
        queues: Sequence[str],
        job_types: Sequence[str],
        limit: int,
        worker_id: str,
        lease_seconds: float,
    ) -> list[Job]:
        rows = await self.executor.fetch(
            SQL.claim_jobs, queues, job_types, limit, worker_id, lease_seconds
        )
        return Job.from_records(rows)

    async def complete_jobs(
        self, ids: Sequence[UUID], attempts: Sequence[int], *, delete: bool = False
    ) -> set[UUID]:
        statement = SQL.delete_completed_jobs if delete else SQL.complete_jobs
        return await self._ids(statement, ids, attempts)

    async def retry_jobs(
        self,
        ids: Sequence[UUID],
        attempts: Sequence[int],
        delays: Sequence[float],
        errors: Sequence[str],
    ) -> set[UUID]:
        return await self._ids(SQL.retry_jobs, ids, attempts, delays, errors)

    async def fail_jobs(
        self, ids: Sequence[UUID], attempts: Sequence[int], errors: Sequence[str]
    ) -> set[UUID]:
        return await self._ids(SQL.fail_jobs, ids, attempts, errors)

    async def release_jobs(self, ids: Sequence[UUID], attempts: Sequence[int]) -> set[UUID]:
        return await self._ids(SQL.release_jobs, ids, attempts)

    async def extend_leases(
        self, ids: Sequence[UUID], attempts: Sequence[int], worker_id: str, lease_seconds: float
    ) -> set[UUID]:
        return await self._ids(SQL.extend_leases, ids, attempts, worker_id, lease_seconds)

    async def rescue_expired_jobs(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.executor.fetch(SQL.rescue_expired_jobs, limit)
        return [dict(row) for row in rows]

    async def prune_finished_jobs(self, state: str, older_than: float, limit: int) -> int:
        status = await self.executor.execute(SQL.prune_finished_jobs, state, older_than, limit)
        return int(status.rsplit(" ", 1)[-1])

    async def job_counts(self) -> list[tuple[str, str, str, int]]:
        rows = await self.executor.fetch(SQL.job_counts)
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def _ids(self, statement: str, *args: Any) -> set[UUID]:
        rows = await self.executor.fetch(statement, *args)
        return {row[0] for row in rows}
