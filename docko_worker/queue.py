"""``Queue``: the façade users hold to enqueue jobs, register handlers and run workers.

    async with await Queue.connect(config) as queue:
        queue.register_handler("ocr", ocr)
        await queue.enqueue("documents", "ocr", {"document_id": 42})
        await queue.start()
        ...
        await queue.stop()

``enqueue(..., conn=conn)`` runs on the caller's asyncpg connection, inside the caller's
transaction: the job exists, and workers are woken, only if that transaction commits.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from types import TracebackType
from typing import Any
from uuid import UUID

import structlog

from . import operations
from .config import Config, load_config
from .errors import DockoError, PayloadError
from .job import Job, JobState
from .maintenance import Pruner, Rescuer
from .migrations import Migration, migrate
from .operations import QueueInfo, parse_job_id, parse_state
from .pool import connect, create_pool
from .registry import Handler, HandlerRegistry
from .settle import settle
from .store import JobStore
from .supervisor import Supervisor
from .waker import Waker

log = structlog.get_logger("docko_worker.queue")

# Seconds ``stop`` waits for the LISTEN connection to close.
WAKER_STOP_GRACE = 5.0
# Seconds ``close`` waits for the pool's connections before terminating them.
POOL_CLOSE_GRACE = 10.0

# Attempts to resolve a dedupe conflict whose holder finished between insert and look-up.
_DEDUPE_RETRIES = 5


# One encoder for every payload: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
# The C encoder behind it, built once: ``JSONEncoder.encode`` builds it anew on every call, which
# is most of the cost of the small payloads jobs carry. No circular-reference markers: a marker
# table shared across calls keeps stale entries after an error, so a cycle is caught as
# RecursionError instead.
_C_ENCODE = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, False
    )
)


def encode_payload(payload: Any) -> str:
    """The payload as JSON text, or ``PayloadError`` before anything is written."""
    try:
        text = _ENCODER.encode(payload) if _C_ENCODE is None else "".join(_C_ENCODE(payload, 0))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON-serializable: {exc}") from None
    except RecursionError:
        raise PayloadError(
            "payload is not JSON-serializable: it contains itself or is nested too deeply"
        ) from None
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(
            "payload contains text that is not valid Unicode (a lone surrogate)"
        ) from None
    return text


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise DockoError(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise DockoError(f"{name} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DockoError(f"{name} must be valid Unicode text (it has a lone surrogate)") from None
    return value


def _optional_text(name: str, value: str | None) -> str | None:
    return None if value is None else _check_text(name, value)


def _delay_seconds(delay: float | timedelta | None) -> float:
    if delay is None:
        return 0.0
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if not math.isfinite(seconds) or seconds < 0:
        raise DockoError(f"delay must be a non-negative number of seconds, got {delay!r}")
    return seconds


def _check_run_at(run_at: datetime | None) -> datetime | None:
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
        raise DockoError("run_at must be a timezone-aware datetime")
    return run_at


class Queue:
    """Enqueue jobs and run workers against one PostgreSQL database."""

    def __init__(
        self,
        pool: Any,
        config: Config | None = None,
        *,
        registry: HandlerRegistry | None = None,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        self.config = config or load_config()
        self.registry = registry or HandlerRegistry()
        self.store = JobStore(pool)
        self._owns_pool = owns_pool
        self._supervisor: Supervisor | None = None
        self._waker_task: asyncio.Task[None] | None = None
        self.waker: Waker | None = None

    @classmethod
    async def connect(cls, config: Config | None = None, **kwargs: Any) -> Queue:
        """A queue with its own pool (closed by ``close`` or ``async with``)."""
        config = config or load_config()
        pool = await create_pool(config)
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
        conn: Any = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
    ) -> Job:
        """Insert one job (lower ``priority`` runs first) and wake idle workers on commit.

        With ``dedupe_key``, an unfinished job holding that key is returned instead of a new one.
        """
        payload_json = encode_payload(payload)
        attempts = self._max_attempts(max_attempts)
        if dedupe_key is not None:
            _check_text("dedupe_key", dedupe_key)
        insert = partial(
            self.store.enqueue_job,
            queue_name=_check_text("queue_name", queue_name),
            job_type=_check_text("job_type", job_type),
            payload_json=payload_json,
            priority=int(priority),
            max_attempts=attempts,
            run_at=_check_run_at(run_at),
            delay=_delay_seconds(delay),
            dedupe_key=dedupe_key,
            conn=conn,
        )
        for _ in range(_DEDUPE_RETRIES):
            job = await insert()
            if job is not None:
                return job
            assert dedupe_key is not None
            existing = await self.store.find_unfinished_by_dedupe_key(dedupe_key, conn=conn)
            if existing is not None:
                return existing
        raise DockoError(f"could not enqueue job with dedupe_key {dedupe_key!r}: key kept changing")

    async def enqueue_many(
        self,
        queue_name: str,
        job_type: str,
        payloads: Iterable[Any],
        *,
        conn: Any = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
    ) -> list[UUID]:
        """Insert one job per payload in one transaction; returns their ids in order.

        Jobs due now go in through one streamed binary COPY, on the queue's own pool or on
        ``conn`` (under a savepoint when ``conn`` is in a transaction); with ``run_at`` or
        ``delay`` they go in through one multi-row INSERT.
        """
        items = list(payloads)
        if not items:
            return []
        _check_text("queue_name", queue_name)
        _check_text("job_type", job_type)
        start = _check_run_at(run_at)
        seconds = _delay_seconds(delay)
        attempts = self._max_attempts(max_attempts)
        if start is None and seconds == 0:
            # Encoded while the COPY streams; a payload that cannot be encoded rolls the whole
            # call back.
            return await self.store.copy_jobs(
                queue_name=queue_name,
                job_type=job_type,
                payloads_json=map(encode_payload, items),
                count=len(items),
                priority=int(priority),
                max_attempts=attempts,
                conn=conn,
            )
        encoded = [encode_payload(payload) for payload in items]
        count = len(encoded)
        return await self.store.enqueue_jobs(
            queue_names=[queue_name] * count,
            job_types=[job_type] * count,
            payloads_json=encoded,
            priorities=[int(priority)] * count,
            max_attempts=[attempts] * count,
            run_ats=[start] * count,
            delay=seconds,
            conn=conn,
        )

    def _max_attempts(self, max_attempts: int | None) -> int:
        attempts = self.config.max_attempts if max_attempts is None else int(max_attempts)
        if attempts < 1:
            raise DockoError(f"max_attempts must be at least 1, got {max_attempts!r}")
        return attempts

    async def get_job(self, job_id: UUID | str) -> Job | None:
        return await self.store.get_job(UUID(str(job_id)))

    async def job_counts(self) -> list[tuple[str, str, str, int]]:
        """(queue, job type, state, count) rows."""
        return await self.store.job_counts()

    # Operating (the logic lives in docko_worker.operations)

    def _operating_store(self) -> JobStore:
        """The named statements on this queue's pool, for the operator's calls."""
        return JobStore(self.pool)

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
            self._operating_store(), parse_job_id(job_id), _optional_text("reason", reason or None)
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
            self._operating_store(),
            queue_name=_optional_text("queue_name", queue_name),
            job_type=_optional_text("job_type", job_type),
            reason=_optional_text("reason", reason or None),
        )

    async def retry(self, job_id: UUID | str) -> Job | None:
        """Run a failed or cancelled job again; returns it as it is now, or None when there is
        no such job.

        It becomes available and due now, with one more attempt allowed when its attempts are
        spent; its ``attempt`` keeps counting and its ``errors`` are kept. A job in any other
        state is returned unchanged. If an unfinished job holds its dedupe key, nothing changes
        and ``DockoError`` names that job. Two retries of one job at once change it once.
        """
        job, _ = await operations.retry(self._operating_store(), parse_job_id(job_id))
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
            self._operating_store(),
            queue_name=_optional_text("queue_name", queue_name),
            job_type=_optional_text("job_type", job_type),
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
            self._operating_store(),
            queue_name=_optional_text("queue_name", queue_name),
            job_type=_optional_text("job_type", job_type),
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
        return await operations.queues(self._operating_store())

    async def pause(self, queue_name: str) -> None:
        """Stop every daemon claiming from ``queue_name`` (running jobs finish); the flag is
        stored, so it survives restarts. A queue never used may be paused too."""
        await self._operating_store().pause_queue(_check_text("queue_name", queue_name))

    async def resume(self, queue_name: str) -> None:
        """Let daemons claim from ``queue_name`` again."""
        await self._operating_store().resume_queue(_check_text("queue_name", queue_name))

    # Consuming

    def register_handler(
        self, job_type: str, handler: Handler, *, timeout: float | None = None
    ) -> None:
        """Run ``handler`` for jobs of ``job_type``; ``timeout`` overrides ``job_timeout``."""
        if self._supervisor is not None:
            raise DockoError("register handlers before start()")
        self.registry.register(job_type, handler, timeout=timeout)

    def load_entry_points(self) -> list[str]:
        """Register the handlers of every installed ``docko_worker.handlers`` entry point."""
        return self.registry.load_entry_points()

    @property
    def supervisor(self) -> Supervisor | None:
        return self._supervisor

    async def start(self, queue_names: Sequence[str] | None = None) -> None:
        """Start workers for ``queue_names`` (default: ``config.queues``); returns at once."""
        if self._supervisor is not None:
            raise DockoError("this queue has already been started")
        if not len(self.registry):
            raise DockoError("no handlers registered: nothing to run")
        queues = list(queue_names or self.config.queues)
        supervisor = Supervisor(self.store, self.registry, self.config, queues)
        self._supervisor = supervisor
        rescuer = Rescuer(self.store, self.config)
        pruner = Pruner(self.store, self.config)
        supervisor.start(extra=[rescuer.run, pruner.run])
        if self.config.listen:
            self.waker = Waker(self.config, lambda: connect(self.config), supervisor.wake)
            self._waker_task = asyncio.create_task(self.waker.run(), name="docko-waker")

    async def stop(self) -> None:
        """Graceful stop: see ``Supervisor.stop``. Safe to call when not started."""
        supervisor = self._supervisor
        if supervisor is None:
            return
        if self._waker_task is not None:
            await settle({self._waker_task}, grace=WAKER_STOP_GRACE)
            self._waker_task = None
        await supervisor.stop()
