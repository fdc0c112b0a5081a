"""``Queue``: the façade users hold to enqueue jobs, register handlers and run workers.

    async with await Queue.connect(config) as queue:
        queue.register_handler("ocr", ocr)
        await queue.enqueue("documents", "ocr", {"document_id": 42})
        await queue.start()
        ...
        await queue.stop()

``enqueue(..., conn=conn)`` runs on the caller's asyncpg connection, inside the caller's
transaction: the job exists, and workers are woken, only if that transaction commits.
``enqueue(..., headers={...})`` stores string metadata with the job (see ``headers.py``);
``add_middleware`` wraps every handler call (see ``middleware.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any
from uuid import UUID

import structlog

from . import operations
from .config import Config, load_config
from .db import Pool, Runner
from .errors import DockoError
from .headers import encode_headers
from .job import Job, JobState
from .middleware import Middleware, check_middleware, load_middleware
from .migrations import Migration, migrate
from .operations import QueueInfo, parse_job_id, parse_state
from .payloads import (
    check_max_attempts,
    check_priority,
    check_schedule,
    check_text,
    encode_payload,
    encode_payloads,
    optional_text,
)
from .periodic import Periodic, PeriodicInfo, parse_schedule
from .pool import connect, create_pool, wait_for_pool
from .recorder import Counters
from .registry import Handler, HandlerOptions, HandlerRegistry, load_periodic_entry_points
from .settle import settle
from .store import JobStore, PeriodicStore
from .supervisor import Supervisor

log = structlog.get_logger("docko_worker.queue")

# Seconds ``close`` waits for the pool's connections before terminating them.
POOL_CLOSE_GRACE = 10.0

# Attempts to resolve a dedupe conflict whose holder finished between insert and look-up.
_DEDUPE_RETRIES = 5


class Queue:
    """Enqueue jobs and run workers against one PostgreSQL database."""

    def __init__(
        self,
        pool: Pool,
        config: Config | None = None,
        *,
        registry: HandlerRegistry | None = None,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        self.config = config or load_config()
        self._registry = registry or HandlerRegistry()
        self._store = JobStore(pool)
        self._owns_pool = owns_pool
        self._supervisor: Supervisor | None = None
        self._periodics: dict[str, Periodic] = {}
        self._middleware: list[Middleware] = []

    @classmethod
    async def connect(
        cls, config: Config | None = None, *, wait: float | None = None, **kwargs: Any
    ) -> Queue:
        """A queue with its own pool (closed by ``close`` or ``async with``).

        ``wait``: seconds to keep trying, with backoff, while the database does not answer yet
        (one that is still starting, say); by default the first failure raises.
        """
        config = config or load_config()
        if wait is None:
            pool = await create_pool(config)
        else:
            waited = await wait_for_pool(config, deadline=wait)
            assert waited is not None  # only a stop event ends the wait without a pool
            pool = waited
        return cls(pool, config, owns_pool=True, **kwargs)

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop workers if started, then close the pool if this queue created it."""
        await self.stop()
        if self._owns_pool:
            # Bounded: a connection stuck on a dead database must not hang the exit.
            closing = asyncio.create_task(self.pool.close())
            if await settle({closing}, grace=POOL_CLOSE_GRACE, cancel_first=False):
                log.warning("pool_terminated", waited=POOL_CLOSE_GRACE)
                self.pool.terminate()

    # Schema

    async def migrate(self) -> list[Migration]:
        async with self.pool.acquire() as conn:
            return await migrate(conn)

    # Producing

    async def enqueue(
        self,
        queue_name: str,
        job_type: str,
        payload: Any,
        *,
        conn: Runner | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job:
        """Insert one job (lower ``priority`` runs first) and wake idle workers on commit.

        With ``dedupe_key``, an unfinished job holding that key is returned instead of a new one.
        ``priority`` and ``max_attempts`` left out take the defaults of the job type's registered
        handler (``handler_options``), else 0 and ``DOCKO_MAX_ATTEMPTS``.
        ``headers``: string metadata stored with the job, read back as ``job.headers``.
        """
        payload_json = encode_payload(payload)
        headers_json = encode_headers(headers)
        rank, attempts = self._defaults(job_type, priority, max_attempts)
        if dedupe_key is not None:
            check_text("dedupe_key", dedupe_key)
        start, seconds = check_schedule(run_at, delay)
        insert = partial(
            self._store.enqueue_job,
            queue_name=check_text("queue_name", queue_name),
            job_type=check_text("job_type", job_type),
            payload_json=payload_json,
            priority=rank,
            max_attempts=attempts,
            run_at=start,
            delay=seconds,
            dedupe_key=dedupe_key,
            headers_json=headers_json,
            conn=conn,
        )
        for _ in range(_DEDUPE_RETRIES):
            job = await insert()
            if job is not None:
                return job
            assert dedupe_key is not None
            existing = await self._store.find_unfinished_by_dedupe_key(dedupe_key, conn=conn)
            if existing is not None:
                return existing
        raise DockoError(f"could not enqueue job with dedupe_key {dedupe_key!r}: key kept changing")

    async def enqueue_many(
        self,
        queue_name: str,
        job_type: str,
        payloads: Iterable[Any],
        *,
        conn: Runner | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[UUID]:
        """Insert one job per payload in one transaction; returns their ids in order.

        Jobs due now go in through one streamed binary COPY, on the queue's own pool or on
        ``conn`` (under a savepoint when ``conn`` is in a transaction); with ``run_at`` or
        ``delay`` they go in through one multi-row INSERT. Every job gets the same ``headers``.
        """
        items = list(payloads)
        if not items:
            return []
        check_text("queue_name", queue_name)
        check_text("job_type", job_type)
        start, seconds = check_schedule(run_at, delay)
        rank, attempts = self._defaults(job_type, priority, max_attempts)
        headers_json = encode_headers(headers)
        if start is None and seconds == 0:
            # Encoded while the COPY streams; a payload that cannot be encoded rolls the whole
            # call back.
            return await self._store.copy_jobs(
                queue_name=queue_name,
                job_type=job_type,
                payloads_json=encode_payloads(items),
                count=len(items),
                priority=rank,
                max_attempts=attempts,
                headers_json=headers_json,
                conn=conn,
            )
        encoded = list(encode_payloads(items))
        count = len(encoded)
        return await self._store.enqueue_jobs(
            queue_names=[queue_name] * count,
            job_types=[job_type] * count,
            payloads_json=encoded,
            priorities=[rank] * count,
            max_attempts=[attempts] * count,
            run_ats=[start] * count,
            delay=seconds,
            headers_json=headers_json,
            conn=conn,
        )

    def _defaults(
        self, job_type: str, priority: int | None, max_attempts: int | None
    ) -> tuple[int, int]:
        """The job's priority and attempts: its own, else its type's, else the global ones."""
        registered = self._registry.get(job_type) if isinstance(job_type, str) else None
        options = registered.options if registered is not None else None
        if priority is None:
            priority = (options.priority if options else None) or 0
        if max_attempts is None:
            max_attempts = (options.max_attempts if options else None) or self.config.max_attempts
        return check_priority(priority), check_max_attempts(max_attempts)

    async def get_job(self, job_id: UUID | str) -> Job | None:
        return await self._store.get_job(UUID(str(job_id)))

    async def job_counts(self) -> list[tuple[str, str, str, int]]:
        """(queue, job type, state, count) rows."""
        return await self._store.job_counts()

    # Operating (the logic lives in docko_worker.operations)

    async def cancel(self, job_id: UUID | str, *, reason: str | None = None) -> Job | None:
        """Cancel one job; returns it as it is now, or None when there is no such job.

        An available (or scheduled) job is cancelled at once and never runs. A running job is
        asked to stop: the daemon holding it cancels its handler, and the job ends ``cancelled``,
        not retried. If the handler finishes first, its outcome stands; if the daemon died, the
        lease sweep ends the job ``cancelled``. ``last_error`` reads ``Cancelled`` or
        ``Cancelled: <reason>``. A finished job is returned unchanged. A cancelled job's dedupe key
        is free again. A malformed id raises ``DockoError``.
        """
        job, _ = await operations.cancel(
            self._store, parse_job_id(job_id), optional_text("reason", reason or None)
        )
        return job

    async def cancel_jobs(
        self,
        *,
        queue_name: str | None = None,
        job_type: str | None = None,
        reason: str | None = None,
    ) -> int:
        """``cancel`` every available and running job matching the filters (None: any);
        returns how many were cancelled or asked to stop."""
        return await operations.cancel_jobs(
            self._store,
            queue_name=optional_text("queue_name", queue_name),
            job_type=optional_text("job_type", job_type),
            reason=optional_text("reason", reason or None),
        )

    async def retry(self, job_id: UUID | str) -> Job | None:
        """Run a failed or cancelled job again; returns it as it is now, or None when there is
        no such job.

        It becomes available and due now, with one more attempt allowed when its attempts are
        spent; its ``attempt`` keeps counting and its ``errors`` are kept. A job in any other
        state is returned unchanged. If an unfinished job holds its dedupe key, nothing changes
        and ``DockoError`` names that job. Two retries of one job at once change it once.
        """
        job, _ = await operations.retry(self._store, parse_job_id(job_id))
        return job

    async def retry_jobs(
        self,
        *,
        queue_name: str | None = None,
        job_type: str | None = None,
        state: JobState | str = "failed",
    ) -> int:
        """``retry`` every job in ``state`` (``failed`` or ``cancelled``) matching the filters;
        returns how many were retried. Jobs whose dedupe key is held are left as they are."""
        return await operations.retry_jobs(
            self._store,
            queue_name=optional_text("queue_name", queue_name),
            job_type=optional_text("job_type", job_type),
            state=parse_state(state) or JobState.FAILED,
        )

    async def list_jobs(
        self,
        *,
        queue_name: str | None = None,
        job_type: str | None = None,
        state: JobState | str | None = None,
        limit: int = 50,
        before: UUID | str | None = None,
    ) -> list[Job]:
        """Jobs matching the filters (None: any), newest first, at most ``limit`` (1 to 10,000).

        For the next page pass the last id of this one as ``before``. An unknown state name or
        a malformed id raises ``DockoError``.
        """
        return await operations.list_jobs(
            self._store,
            queue_name=optional_text("queue_name", queue_name),
            job_type=optional_text("job_type", job_type),
            state=parse_state(state),
            limit=limit,
            before=None if before is None else parse_job_id(before),
        )

    async def queues(self) -> list[QueueInfo]:
        """Every queue that has a job (not counting completed ones), was paused, or was served.

        ``counts`` holds the number of available, running, failed and cancelled jobs: each read
        from a partial index, so the cost follows those jobs, never the completed history
        (``job_counts`` counts that too, by reading all of it).
        """
        return await operations.queues(self._store)

    async def pause(self, queue_name: str) -> None:
        """Stop every daemon claiming from ``queue_name`` (running jobs finish); the flag is
        stored, so it survives restarts. A queue never used may be paused too."""
        await self._store.pause_queue(check_text("queue_name", queue_name))

    async def resume(self, queue_name: str) -> None:
        """Let daemons claim from ``queue_name`` again."""
        await self._store.resume_queue(check_text("queue_name", queue_name))

    # Consuming

    def register_handler(
        self,
        job_type: str,
        handler: Handler,
        *,
        timeout: float | None = None,
        options: HandlerOptions | None = None,
    ) -> None:
        """Run ``handler`` for jobs of ``job_type``; ``timeout`` overrides ``job_timeout``.

        ``options`` (or ``handler_options`` on the handler) set the type's defaults: timeout,
        max attempts and priority at enqueue, and its retry backoff.
        """
        if self._supervisor is not None:
            raise DockoError("register handlers before start()")
        self._registry.register(job_type, handler, timeout=timeout, options=options)

    def add_middleware(self, middleware: Middleware) -> None:
        """Wrap every handler call in ``middleware``: ``async def mw(job, call_next)`` that
        awaits ``call_next(job)``. The first added is the outermost (see ``middleware.py``)."""
        if self._supervisor is not None:
            raise DockoError("add middleware before start()")
        self._middleware.append(check_middleware(middleware))

    def load_entry_points(self) -> list[str]:
        """Register the handlers of every installed ``docko_worker.handlers`` entry point."""
        return self._registry.load_entry_points()

    async def start(self, queue_names: Sequence[str] | None = None) -> None:
        """Start workers for ``queue_names`` (default: ``config.queues``); returns at once.

        Handlers run through ``DOCKO_MIDDLEWARE`` and then ``add_middleware``'s middleware
        (``RegistryError`` if one does not import). With ``DOCKO_HTTP_PORT`` the HTTP endpoint
        starts too (``ConfigError`` if its port cannot be had: nothing is started then).
        """
        if self._supervisor is not None:
            raise DockoError("this queue has already been started")
        if not len(self._registry):
            raise DockoError("no handlers registered: nothing to run")
        queues = list(queue_names or self.config.queues)
        middleware = [load_middleware(path) for path in self.config.middleware]
        supervisor = Supervisor(
            self._store,
            self._registry,
            self.config,
            queues,
            connect=lambda: connect(self.config),
            periodics=list(self._periodics.values()),
            middleware=[*middleware, *self._middleware],
        )
        supervisor.start()  # ConfigError when the HTTP port cannot be had: nothing started
        self._supervisor = supervisor

    async def stop(self) -> list[Job]:
        """Graceful stop: see ``Supervisor.stop``. Safe to call when not started.

        Returns the jobs whose outcomes could not be written in time (logged as
        ``outcomes_not_written``): they run again once their lease expires.
        """
        if self._supervisor is None:
            return []
        return await self._supervisor.stop()

    # What the running daemon has done

    @property
    def worker_id(self) -> str | None:
        """This process's worker id once started (stamped on the jobs it claims)."""
        return None if self._supervisor is None else self._supervisor.worker_id

    @property
    def counters(self) -> Counters:
        """A snapshot of what the workers have done since ``start`` (all zero before)."""
        if self._supervisor is None:
            return Counters()
        return dataclasses.replace(self._supervisor.counters)

    @property
    def idle(self) -> bool:
        """Started, and holding no job: nothing claimed, running or awaiting its write."""
        return self._supervisor is not None and self._supervisor.idle

    # Periodic jobs

    def register_periodic(self, periodic: Periodic) -> None:
        """Enqueue ``periodic``'s job at each of its slots while this queue runs (``start``).

        However many daemons register it, each slot is enqueued once; see ``docko_worker.periodic``.
        """
        if self._supervisor is not None:
            raise DockoError("register periodic jobs before start()")
        if not isinstance(periodic, Periodic):
            raise DockoError(f"register_periodic takes a Periodic, got {type(periodic).__name__}")
        if periodic.name in self._periodics:
            raise DockoError(f"two periodic jobs named {periodic.name!r}")
        self._periodics[periodic.name] = periodic

    def load_periodic_entry_points(self) -> list[str]:
        """Register the periodic jobs of every installed ``docko_worker.periodic`` entry point."""
        periodics = load_periodic_entry_points()
        for periodic in periodics:
            self.register_periodic(periodic)
        return [periodic.name for periodic in periodics]

    @property
    def periodics(self) -> list[Periodic]:
        """The periodic jobs registered with this queue."""
        return list(self._periodics.values())

    async def list_periodic(self) -> list[PeriodicInfo]:
        """Every schedule some daemon has declared in this database, with its next slot (by the
        database's clock) and its last enqueued slot and job."""
        store = PeriodicStore(self.pool)
        now = await store.database_now()
        infos = []
        for row in await store.list_periodic():
            try:
                next_slot = parse_schedule(row.schedule, row.timezone).next_slot(now)
            except ValueError:  # written by a version that reads it differently
                next_slot = None
            infos.append(
                PeriodicInfo(
                    name=row.name,
                    schedule=row.schedule,
                    timezone=row.timezone,
                    next_slot=next_slot,
                    last_slot=row.last_slot,
                    last_job_id=row.last_job_id,
                    seen_at=row.seen_at,
                )
            )
        return infos
