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
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from types import TracebackType
from typing import Any
from uuid import UUID

import structlog

from .config import Config, load_config
from .db import Pool, Runner
from .errors import DockoError, PayloadError
from .headers import encode_headers
from .job import Job
from .middleware import Middleware, check_middleware, load_middleware
from .migrations import Migration, migrate
from .pool import connect, create_pool, wait_for_pool
from .recorder import Counters
from .registry import Handler, HandlerRegistry
from .settle import settle
from .store import JobStore
from .supervisor import Supervisor

log = structlog.get_logger("docko_worker.queue")

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
        priority: int = 0,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job:
        """Insert one job (lower ``priority`` runs first) and wake idle workers on commit.

        With ``dedupe_key``, an unfinished job holding that key is returned instead of a new one.
        ``headers``: string metadata stored with the job, read back as ``job.headers``.
        """
        payload_json = encode_payload(payload)
        headers_json = encode_headers(headers)
        attempts = self._max_attempts(max_attempts)
        if dedupe_key is not None:
            _check_text("dedupe_key", dedupe_key)
        insert = partial(
            self._store.enqueue_job,
            queue_name=_check_text("queue_name", queue_name),
            job_type=_check_text("job_type", job_type),
            payload_json=payload_json,
            priority=int(priority),
            max_attempts=attempts,
            run_at=_check_run_at(run_at),
            delay=_delay_seconds(delay),
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
        priority: int = 0,
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
        _check_text("queue_name", queue_name)
        _check_text("job_type", job_type)
        start = _check_run_at(run_at)
        seconds = _delay_seconds(delay)
        attempts = self._max_attempts(max_attempts)
        headers_json = encode_headers(headers)
        if start is None and seconds == 0:
            # Encoded while the COPY streams; a payload that cannot be encoded rolls the whole
            # call back.
            return await self._store.copy_jobs(
                queue_name=queue_name,
                job_type=job_type,
                payloads_json=map(encode_payload, items),
                count=len(items),
                priority=int(priority),
                max_attempts=attempts,
                headers_json=headers_json,
                conn=conn,
            )
        encoded = [encode_payload(payload) for payload in items]
        count = len(encoded)
        return await self._store.enqueue_jobs(
            queue_names=[queue_name] * count,
            job_types=[job_type] * count,
            payloads_json=encoded,
            priorities=[int(priority)] * count,
            max_attempts=[attempts] * count,
            run_ats=[start] * count,
            delay=seconds,
            headers_json=headers_json,
            conn=conn,
        )

    def _max_attempts(self, max_attempts: int | None) -> int:
        attempts = self.config.max_attempts if max_attempts is None else int(max_attempts)
        if attempts < 1:
            raise DockoError(f"max_attempts must be at least 1, got {max_attempts!r}")
        return attempts

    async def get_job(self, job_id: UUID | str) -> Job | None:
        return await self._store.get_job(UUID(str(job_id)))

    async def job_counts(self) -> list[tuple[str, str, str, int]]:
        """(queue, job type, state, count) rows."""
        return await self._store.job_counts()

    # Consuming

    def register_handler(
        self, job_type: str, handler: Handler, *, timeout: float | None = None
    ) -> None:
        """Run ``handler`` for jobs of ``job_type``; ``timeout`` overrides ``job_timeout``."""
        if self._supervisor is not None:
            raise DockoError("register handlers before start()")
        self._registry.register(job_type, handler, timeout=timeout)

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
