"""Helpers for the operator tests: the named statements on a queue's pool, and races between
two sessions decided by row locks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from docko_worker.store import JobStore

T = TypeVar("T")


async def wait_for_lock_wait(db: asyncpg.Connection) -> None:
    """Until another session of this database waits for a lock (the statement racing ours)."""
    for _ in range(500):
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the racing statement never waited for the row lock")


async def after_commit_of(
    db: asyncpg.Connection, first: Callable[[JobStore], Awaitable[object]], second: Awaitable[T]
) -> T:
    """A race decided by row locks: ``first`` runs on ``db`` in a transaction, ``second`` starts
    and waits for its locks, then ``first`` commits; returns what ``second`` returned."""
    async with db.transaction():
        await first(JobStore(db))
        waiting = asyncio.ensure_future(second)
        await wait_for_lock_wait(db)
    return await waiting
