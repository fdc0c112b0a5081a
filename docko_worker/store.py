"""``JobStore``: one method per named statement, the only code that talks SQL to the jobs table.

Methods take plain values and return plain values or ``Job``s; the batch methods take parallel
lists, so one round trip writes many outcomes. Each write that finishes a job is guarded by the
attempt it was claimed with and returns the ids it actually changed, so callers can tell a lost
lease from a write that landed. The operator's statements (cancel, requeue, lists, queues) come
last; those that list run with custom plans, in a transaction of their own.

On a pool, every statement runs through ``ReadWritePool``: the daemon's claims, outcome writes,
heartbeats and sweeps and a producer's enqueues all let go of their connections once the server
turns read-only (a failover that demoted it), so the pool reconnects to wherever the DSN leads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from .copy_format import COPY_COLUMNS, encode_copy_stream
from .db import Runner
from .job import Job, new_job_id_bytes, uuids_from_bytes
from .lanes import LaneBounds, Lanes
from .pool import ReadWritePool, read_write
from .statements import SQL

NOTIFY_CHANNEL = "docko_jobs"
# Operators' requests to the daemons: JSON text, {"cancel": "<job id>", "worker_id": "<holder>"},
# {"pause": "<queue>"} or {"resume": "<queue>"}.
CONTROL_CHANNEL = "docko_control"

JOBS_TABLE = "docko_jobs"

# Most lanes (served queues x handled job types) a claim locks as it reads them (claim_jobs);
# beyond, it reads them unlocked and locks only what it takes (claim_jobs_merged). Measured on the
# bare claim loop: with every lane backlogged, locking while reading is the faster of the two
# up to a few lanes; 200 queues of 100 jobs each burned down about 1.5 times faster merged.
LOCKED_LANES = 4


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs ``list_jobs`` and ``list_job_ids`` return: the given filters (None: any), newest
    first, at most ``limit``, after the job ``before`` (the last of the previous page)."""

    queue_name: str | None = None
    job_type: str | None = None
    state: str | None = None
    before: UUID | None = None
    limit: int = 50


class QueueSample(NamedTuple):
    """One queue as ``sample_queues`` saw it."""

    queue_name: str
    available: int
    running: int
    oldest_due_age: float | None
    schema_version: int | None
    paused: bool = False


class JobStore:
    """Named-statement access to ``docko_jobs`` through an asyncpg pool or connection."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        # What the statements run on: the runner, a pool watched for a read-only server.
        self._db: Runner = read_write(runner)

    def _on(self, conn: Runner | None) -> Runner:
        return self._db if conn is None else conn

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
        headers_json: str | None = None,
        conn: Runner | None = None,
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
            headers_json,
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
        headers_json: str | None = None,
        conn: Runner | None = None,
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
            headers_json,
        )
        return [row[0] for row in rows]

    async def copy_jobs(
        self,
        *,
        queue_name: str,
        job_type: str,
        payloads_json: Iterable[str],
        count: int,
        priority: int,
        max_attempts: int,
        headers_json: str | None = None,
        conn: Runner | None = None,
    ) -> list[UUID]:
        """Bulk insert ``count`` jobs, due now, through one binary COPY and one NOTIFY.

        ``payloads_json`` may encode lazily: it is read while the COPY streams, so the client's
        encoding overlaps the server's inserts. Without ``conn`` (or with a pool) the rows go in
        on a pooled connection, in a transaction of their own. On ``conn`` they go in under a
        savepoint when it is in a transaction (its NOTIFY delivered when the caller commits), in
        a transaction of their own when it is not. Either way an error, such as a payload that
        cannot be encoded, leaves nothing of the call written, and a caller's transaction
        usable. The stream carries raw bytes, so a JSON codec set on ``conn`` plays no part.
        """
        id_bytes = new_job_id_bytes(count)
        stream = encode_copy_stream(
            id_bytes,
            payloads_json,
            queue_name=queue_name,
            job_type=job_type,
            priority=priority,
            max_attempts=max_attempts,
            headers_json=headers_json,
        )
        if conn is None or isinstance(conn, asyncpg.Pool):
            pool: Any = conn or self._db
            async with pool.acquire() as pooled:
                await _copy_and_notify(pooled, stream, queue_name, job_type, priority)
        else:
            await _copy_and_notify(conn, stream, queue_name, job_type, priority)
        return uuids_from_bytes(id_bytes)

    async def find_unfinished_by_dedupe_key(
        self, dedupe_key: str, conn: Runner | None = None
    ) -> Job | None:
        row = await self._on(conn).fetchrow(SQL.find_unfinished_by_dedupe_key, dedupe_key)
        return None if row is None else Job.from_record(row)

    async def get_job(self, job_id: UUID, conn: Runner | None = None) -> Job | None:
        row = await self._on(conn).fetchrow(SQL.get_job, job_id)
        return None if row is None else Job.from_record(row)

    async def claim_jobs(
        self,
        *,
        queues: Sequence[str] = (),
        job_types: Sequence[str] = (),
        lanes: LaneBounds | None = None,
        limit: int,
        worker_id: str,
        lease_seconds: float,
        undecodable: list[tuple[Job, str]] | None = None,
    ) -> list[Job]:
        """The jobs claimed from ``lanes`` (where each begins), or from every lane of ``queues``
        x ``job_types`` from its start. With ``undecodable``, a job whose payload cannot be
        decoded goes there with the reason instead, and the rest are returned; without, the
        claim raises."""
        if lanes is None:
            lanes = Lanes(queues, job_types).bounds(from_start=True)
        statement = SQL.claim_jobs if len(lanes.queues) <= LOCKED_LANES else SQL.claim_jobs_merged
        rows = await self._db.fetch(
            statement,
            lanes.queues,
            lanes.job_types,
            limit,
            worker_id,
            lease_seconds,
            lanes.after_priority,
            lanes.after_run_at,
        )
        if undecodable is None:
            return Job.from_records(rows)
        jobs, spoiled = Job.from_claimed_records(rows)
        undecodable.extend(spoiled)
        return jobs

    async def complete_jobs(
        self, ids: Sequence[UUID], attempts: Sequence[int], *, delete: bool = False
    ) -> set[UUID]:
        statement = SQL.delete_completed_jobs if delete else SQL.complete_jobs
        return await self._ids(statement, ids, attempts)

    async def complete_job(
        self, job_id: UUID, attempt: int, worker_id: str | None, conn: Runner | None = None
    ) -> bool:
        """Complete one job inside ``conn``'s transaction; False when that attempt lost it."""
        row = await self._on(conn).fetchrow(SQL.complete_job, job_id, attempt, worker_id)
        return row is not None

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

    async def cancel_running_jobs(
        self, ids: Sequence[UUID], attempts: Sequence[int], errors: Sequence[str | None]
    ) -> set[UUID]:
        """End jobs whose handler was cancelled on request; ``errors`` (or None) join history."""
        return await self._ids(SQL.cancel_running_jobs, ids, attempts, errors)

    async def release_jobs(self, ids: Sequence[UUID], attempts: Sequence[int]) -> set[UUID]:
        """Hand jobs back (at shutdown), announced to the other daemons."""
        return await self._ids(SQL.release_jobs, ids, attempts, NOTIFY_CHANNEL)

    async def extend_leases(
        self, ids: Sequence[UUID], attempts: Sequence[int], worker_id: str, lease_seconds: float
    ) -> dict[UUID, bool]:
        """The ids still held, each mapped to whether an operator asked it to stop."""
        rows = await self._on(None).fetch(
            SQL.extend_leases, ids, attempts, worker_id, lease_seconds
        )
        return {row[0]: row[1] for row in rows}

    async def rescue_expired_jobs(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._db.fetch(SQL.rescue_expired_jobs, limit, NOTIFY_CHANNEL)
        return [dict(row) for row in rows]

    async def prune_finished_jobs(self, state: str, older_than: float, limit: int) -> int:
        status = await self._db.execute(SQL.prune_finished_jobs, state, older_than, limit)
        return int(status.rsplit(" ", 1)[-1])

    async def next_due_in(self, queues: Sequence[str], job_types: Sequence[str]) -> float | None:
        """Seconds, by the database's clock, until the earliest waiting job of these queues and
        types falls due."""
        due = await self._on(None).fetchval(SQL.next_due_in, queues, job_types)
        return None if due is None else float(due)

    async def waiting_unknown_types(
        self, queues: Sequence[str], job_types: Sequence[str], waited: float, sample: int
    ) -> list[tuple[str, str, int, float]]:
        """(queue, job type, jobs in the sample, oldest wait in seconds) of due jobs of other
        types than ``job_types`` that waited ``waited`` seconds or more."""
        rows = await self.runner.fetch(SQL.waiting_unknown_types, queues, job_types, waited, sample)
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    async def job_counts(self) -> list[tuple[str, str, str, int]]:
        rows = await self._db.fetch(SQL.job_counts)
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    # Operating

    async def cancel_jobs(self, ids: Sequence[UUID], reason: str | None) -> list[Job]:
        """Cancel available jobs, ask running ones to stop; returns the jobs changed."""
        rows = await self._on(None).fetch(SQL.cancel_jobs, ids, reason, CONTROL_CHANNEL)
        return Job.from_records(rows)

    async def requeue_jobs(self, ids: Sequence[UUID]) -> list[Job]:
        """Make failed or cancelled jobs available now; returns the jobs changed."""
        rows = await self._on(None).fetch(SQL.requeue_jobs, ids, NOTIFY_CHANNEL)
        return Job.from_records(rows)

    async def list_jobs(self, where: JobFilter) -> list[Job]:
        return Job.from_records(await self._list(SQL.list_jobs, where))

    async def list_job_ids(self, where: JobFilter) -> list[UUID]:
        return [row[0] for row in await self._list(SQL.list_job_ids, where)]

    async def _list(self, statement: str, where: JobFilter) -> list[Any]:
        async with self._custom_plans() as conn:
            return list(
                await conn.fetch(
                    statement,
                    where.queue_name,
                    where.job_type,
                    where.state,
                    where.before,
                    where.limit,
                )
            )

    async def count_jobs(self, where: JobFilter) -> int:
        """How many jobs match ``where``'s filters (its ``before`` and ``limit`` play no part)."""
        async with self._custom_plans() as conn:
            count: int = await conn.fetchval(
                SQL.count_jobs, where.queue_name, where.job_type, where.state, None
            )
        return count

    @asynccontextmanager
    async def _custom_plans(self) -> AsyncIterator[Any]:
        """A connection in a transaction that plans each statement for its arguments."""
        runner: Any = self._on(None)
        if isinstance(runner, asyncpg.Pool | ReadWritePool):
            async with runner.acquire() as conn, conn.transaction():
                await conn.execute(SQL.use_custom_plans)
                yield conn
        else:
            async with runner.transaction():
                await runner.execute(SQL.use_custom_plans)
                yield runner

    async def queue_overview(self) -> list[dict[str, Any]]:
        rows = await self._on(None).fetch(SQL.queue_overview)
        return [dict(row) for row in rows]

    async def pause_queue(self, queue_name: str) -> None:
        await self._on(None).execute(SQL.pause_queue, queue_name, CONTROL_CHANNEL)

    async def resume_queue(self, queue_name: str) -> None:
        await self._on(None).execute(SQL.resume_queue, queue_name, CONTROL_CHANNEL)

    async def register_queues(self, queue_names: Sequence[str]) -> None:
        await self._on(None).execute(SQL.register_queues, queue_names)

    async def sample_queues(
        self, queues: Sequence[str], count_cap: int, priorities_cap: int
    ) -> list[QueueSample]:
        """Per queue: available and running jobs (each counted up to ``count_cap``), the age in
        seconds of the oldest due job (None: nothing due), and the schema's version."""
        rows = await self._on(None).fetch(SQL.sample_queues, queues, count_cap, priorities_cap)
        return [QueueSample(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]

    async def _ids(self, statement: str, *args: Any) -> set[UUID]:
        rows = await self._db.fetch(statement, *args)
        return {row[0] for row in rows}


async def _copy_and_notify(
    conn: Any, stream: Iterator[bytes], queue_name: str, job_type: str, priority: int
) -> None:
    # A transaction, or a savepoint inside the caller's.
    async with conn.transaction():
        await conn.copy_to_table(
            JOBS_TABLE, source=_aiter(stream), columns=COPY_COLUMNS, format="binary"
        )
        await conn.execute(SQL.notify_queue, NOTIFY_CHANNEL, queue_name, job_type, priority)


async def _aiter(items: Iterator[bytes]) -> AsyncIterator[bytes]:
    """asyncpg reads a COPY source only as an async iterable."""
    for item in items:
        yield item


# Periodic jobs


@dataclass(frozen=True, slots=True)
class PeriodicRow:
    """A row of ``docko_periodic``: one schedule and the slots decided for it."""

    name: str
    schedule: str
    timezone: str
    decided_slot: datetime
    last_slot: datetime | None
    last_job_id: UUID | None
    seen_at: datetime

    @classmethod
    def from_record(cls, row: Any) -> PeriodicRow:
        return cls(
            row["name"],
            row["schedule"],
            row["timezone"],
            row["decided_slot"],
            row["last_slot"],
            row["last_job_id"],
            row["seen_at"],
        )


class PeriodicStore:
    """Named-statement access to ``docko_periodic`` (and the jobs its slots insert)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def database_now(self) -> datetime:
        now: datetime = await self.runner.fetchval(SQL.database_now)
        return now

    async def register_periodic(
        self,
        names: Sequence[str],
        schedules: Sequence[str],
        timezones: Sequence[str],
        latest_slots: Sequence[datetime],
    ) -> list[PeriodicRow]:
        rows = await self.runner.fetch(
            SQL.register_periodic, names, schedules, timezones, latest_slots
        )
        return [PeriodicRow.from_record(row) for row in rows]

    async def enqueue_periodic_slot(
        self,
        *,
        name: str,
        slot: datetime,
        schedule: str,
        timezone: str,
        job_id: UUID,
        queue_name: str,
        job_type: str,
        payload_json: str,
        priority: int,
        max_attempts: int,
        skip_if_running: bool,
    ) -> bool | None:
        """True: this call enqueued the slot's job; False: it decided to skip the slot; None: it
        did not decide the slot (another daemon did, or the row holds another schedule)."""
        enqueued: bool | None = await self.runner.fetchval(
            SQL.enqueue_periodic_slot,
            name,
            slot,
            schedule,
            timezone,
            job_id,
            queue_name,
            job_type,
            payload_json,
            priority,
            max_attempts,
            skip_if_running,
            NOTIFY_CHANNEL,
        )
        return enqueued

    async def get_periodic(self, name: str) -> PeriodicRow | None:
        row = await self.runner.fetchrow(SQL.get_periodic, name)
        return None if row is None else PeriodicRow.from_record(row)

    async def list_periodic(self) -> list[PeriodicRow]:
        return [PeriodicRow.from_record(row) for row in await self.runner.fetch(SQL.list_periodic)]

    async def touch_periodic(self, names: Sequence[str]) -> None:
        await self.runner.execute(SQL.touch_periodic, names)


# What the daemons did lately (the dashboard's overview)


@dataclass(frozen=True, slots=True)
class FinishedCount:
    """Jobs of one queue that completed and failed during one minute: ``minute`` minutes ago
    (0: the last 60 seconds)."""

    queue_name: str
    minute: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A daemon (its worker id) seen lately: when, how many jobs it runs now, which queues."""

    worker_id: str
    seen_at: datetime
    running: int
    queues: list[str]


class ActivityStore:
    """Named-statement reads of recent activity: finished jobs per minute, daemons seen.

    Each reads at most ``limit`` finished jobs of each outcome, newest first, from the finished
    rows' partial index, plus the running rows: bounded whatever the table holds.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def recent_finishes(self, limit: int, seconds: float) -> list[FinishedCount]:
        rows = await self.runner.fetch(SQL.recent_finishes, limit, seconds)
        return [FinishedCount(row[0], row[1], row[2], row[3]) for row in rows]

    async def recent_workers(self, limit: int, seconds: float) -> list[WorkerSeen]:
        rows = await self.runner.fetch(SQL.recent_workers, limit, seconds)
        return [WorkerSeen(row[0], row[1], row[2], list(row[3])) for row in rows]
