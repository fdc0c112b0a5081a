"""Producers and transactional completion on the caller's own connection and transaction.

    docko_worker.enqueue(conn, queue_name, job_type, payload, **options) -> Job
    docko_worker.enqueue_many(conn, queue_name, job_type, payloads, **options) -> list[UUID]
    docko_worker.complete(conn, job)
    await docko_worker.enqueue_async(...), enqueue_many_async(...), complete_async(conn, job)

The sync forms take a psycopg 3 ``Connection``, a SQLAlchemy 2 ``Connection`` or ``Session``, or
Django's ``connection``; they need no event loop. The async forms take a psycopg
``AsyncConnection``, a SQLAlchemy ``AsyncConnection`` or ``AsyncSession``, or an asyncpg
connection. ``dispatch.py`` finds the driver; each is imported only when used.

Enqueueing is ``Queue.enqueue`` / ``Queue.enqueue_many`` with ``conn=``, the very code, on the
caller's connection: the same statements, validation, dedupe, delays and bulk COPY, and the same
promise. The job exists, and idle daemons are woken (the NOTIFY is transactional), if and only if
the caller's transaction commits. ``options`` are ``Queue.enqueue``'s keywords; ``max_attempts``
defaults to ``Config``'s default (5): these functions read no environment.

``complete`` marks the job completed inside the caller's transaction, guarded by the attempt (and
the daemon) the ``Job`` names, so a handler's writes and its job's completion commit together or
not at all. If that attempt no longer holds the job, it raises ``LeaseLost`` and writes nothing;
the caller lets its transaction roll back. It marks the ``Job`` (``completed_in_transaction``), so
the daemon does not report the refusal of its own completion write as a lost lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

from ..config import Config
from ..db import Runner
from ..errors import LeaseLost
from ..job import Job
from ..queue import Queue
from ..store import JobStore
from .dispatch import async_runner, sync_runner
from .loopless import run_without_loop

__all__ = [
    "complete",
    "complete_async",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
]


class _NoPool:
    """The producers' ``Queue`` has no pool: every call passes the caller's connection."""

    def _never(self, *_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a producer on the caller's connection used a pool")

    execute = fetch = fetchrow = fetchval = close = terminate = _never

    def acquire(self) -> AbstractAsyncContextManager[Any]:
        return self._never()  # type: ignore[no-any-return]


_QUEUE = Queue(_NoPool(), Config.model_construct())


def enqueue(conn: Any, queue_name: str, job_type: str, payload: Any, **options: Any) -> Job:
    """``Queue.enqueue`` on a sync connection, inside its transaction."""
    runner = sync_runner(conn)
    return run_without_loop(_QUEUE.enqueue(queue_name, job_type, payload, conn=runner, **options))


def enqueue_many(
    conn: Any, queue_name: str, job_type: str, payloads: Iterable[Any], **options: Any
) -> list[UUID]:
    """``Queue.enqueue_many`` on a sync connection, inside its transaction."""
    runner = sync_runner(conn)
    return run_without_loop(
        _QUEUE.enqueue_many(queue_name, job_type, payloads, conn=runner, **options)
    )


async def enqueue_async(
    conn: Any, queue_name: str, job_type: str, payload: Any, **options: Any
) -> Job:
    """``Queue.enqueue`` on an async connection, inside its transaction."""
    runner = await async_runner(conn)
    return await _QUEUE.enqueue(queue_name, job_type, payload, conn=runner, **options)


async def enqueue_many_async(
    conn: Any, queue_name: str, job_type: str, payloads: Iterable[Any], **options: Any
) -> list[UUID]:
    """``Queue.enqueue_many`` on an async connection, inside its transaction."""
    runner = await async_runner(conn)
    return await _QUEUE.enqueue_many(queue_name, job_type, payloads, conn=runner, **options)


def complete(conn: Any, job: Job) -> None:
    """Complete ``job`` inside the sync connection's transaction, or raise ``LeaseLost``."""
    run_without_loop(_complete(sync_runner(conn), job))


async def complete_async(conn: Any, job: Job) -> None:
    """Complete ``job`` inside the async connection's transaction, or raise ``LeaseLost``."""
    await _complete(await async_runner(conn), job)


async def _complete(runner: Runner, job: Job) -> None:
    if not await JobStore(runner).complete_job(job.id, job.attempt, job.worker_id):
        raise LeaseLost(
            f"job {job.id}: attempt {job.attempt} no longer holds it (its lease expired and "
            "another attempt claimed it, or it already finished); roll this transaction back"
        )
    job.completed_in_transaction = True
