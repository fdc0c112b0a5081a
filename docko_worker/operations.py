"""Operating jobs and queues: cancel, retry, list and pause, over a ``JobStore``.

``Queue`` exposes these as methods (``queue.cancel``, ``queue.retry``, ``queue.list_jobs``, ...);
this module holds their logic and ``QueueInfo``. Every race is decided in the database, by the
statements' guards: a cancel and a completion, two operators retrying one job, a retry and an
enqueue of the same dedupe key each end one defined way (see ``sql/queries.sql``).

The bulk forms work through the matching jobs a page at a time, newest first, with the list's
filters and indexes: each page is one short transaction, so a bulk cancel of a large backlog
never holds its locks for long. They act on the jobs that match when they reach them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from uuid import UUID

import asyncpg

from .errors import DockoError
from .job import Job, JobState
from .store import JobFilter, JobStore

# Jobs acted on per statement by the bulk forms.
BULK_BATCH = 1000
# Most jobs one page of ``list_jobs`` may ask for.
MAX_LIST_LIMIT = 10_000
# Attempts of a retry whose dedupe key's holder finished between the retry and the look-up.
_RETRY_ATTEMPTS = 5

_STATE_NAMES = ", ".join(state.value for state in JobState)
_RETRYABLE = (JobState.FAILED, JobState.CANCELLED)
_CANCELLABLE = (JobState.AVAILABLE, JobState.RUNNING)
# The states ``QueueInfo.counts`` holds, in the order tables show them.
COUNTED_STATES = ("available", "running", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue as ``queue.queues()`` reports it.

    ``counts`` maps ``available``, ``running``, ``failed`` and ``cancelled`` to their number of
    jobs (completed jobs are not counted: see ``Queue.queues``). ``oldest_available_age``: seconds
    since the oldest due, unclaimed job became due (the lag); ``None`` when nothing is due.
    """

    name: str
    paused: bool
    counts: dict[str, int]
    oldest_available_age: float | None


def parse_job_id(value: UUID | str) -> UUID:
    """A job id from a ``UUID`` or its text; anything else is a ``DockoError``."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value.strip()) if isinstance(value, str) else UUID(str(value))
    except ValueError:
        raise DockoError(f"not a job id (a UUID): {value!r}") from None


def parse_state(value: JobState | str | None) -> JobState | None:
    """A state name as a ``JobState``; an unknown name is a ``DockoError`` listing the known."""
    if value is None or isinstance(value, JobState):
        return value
    try:
        return JobState(value)
    except ValueError:
        raise DockoError(f"unknown job state {value!r}: expected one of {_STATE_NAMES}") from None


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise DockoError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit!r}")
    return limit


async def cancel(store: JobStore, job_id: UUID, reason: str | None) -> tuple[Job | None, bool]:
    """See ``Queue.cancel``; also says whether this call changed the job."""
    changed = await store.cancel_jobs([job_id], reason)
    if changed:
        return changed[0], True
    return await store.get_job(job_id), False


async def cancel_jobs(
    store: JobStore, *, queue_name: str | None, job_type: str | None, reason: str | None
) -> int:
    """See ``Queue.cancel_jobs``."""
    total = 0
    for state in _CANCELLABLE:
        async for ids in _pages(store, queue_name=queue_name, job_type=job_type, state=state):
            total += len(await store.cancel_jobs(ids, reason))
    return total


async def retry(store: JobStore, job_id: UUID) -> tuple[Job | None, bool]:
    """See ``Queue.retry``; also says whether this call changed the job."""
    for _ in range(_RETRY_ATTEMPTS):
        changed = await _requeue(store, [job_id])
        if changed:
            return changed[0], True
        job = await store.get_job(job_id)
        if job is None or job.state not in _RETRYABLE or job.dedupe_key is None:
            return job, False
        holder = await store.find_unfinished_by_dedupe_key(job.dedupe_key)
        if holder is not None:
            raise DockoError(
                f"job {job_id} was not retried: its dedupe key {job.dedupe_key!r} is held by "
                f"unfinished job {holder.id}"
            )
    raise DockoError(f"job {job_id} was not retried: its dedupe key kept changing hands")


async def retry_jobs(
    store: JobStore, *, queue_name: str | None, job_type: str | None, state: JobState
) -> int:
    """See ``Queue.retry_jobs``."""
    if state not in _RETRYABLE:
        raise DockoError(f"only failed or cancelled jobs can be retried, not {state.value!r} ones")
    total = 0
    async for ids in _pages(store, queue_name=queue_name, job_type=job_type, state=state):
        try:
            total += len(await _requeue(store, ids, strict=True))
        except asyncpg.UniqueViolationError:
            # Two of the page share a dedupe key, or an enqueue took one meanwhile: one by one,
            # each job whose key is taken left as it is.
            for one in ids:
                total += len(await _requeue(store, [one]))
    return total


async def _requeue(store: JobStore, ids: list[UUID], *, strict: bool = False) -> list[Job]:
    """``requeue_jobs``; a dedupe key taken by an enqueue racing it changes nothing, or raises
    when ``strict``."""
    try:
        return await store.requeue_jobs(ids)
    except asyncpg.UniqueViolationError:
        if strict:
            raise
        return []


async def _pages(
    store: JobStore, *, queue_name: str | None, job_type: str | None, state: JobState
) -> AsyncIterator[list[UUID]]:
    where = JobFilter(queue_name, job_type, state.value, None, BULK_BATCH)
    while True:
        ids = await store.list_job_ids(where)
        if ids:
            yield ids
        if len(ids) < BULK_BATCH:
            return
        where = replace(where, before=ids[-1])


async def list_jobs(
    store: JobStore,
    *,
    queue_name: str | None,
    job_type: str | None,
    state: JobState | None,
    limit: int,
    before: UUID | None,
) -> list[Job]:
    """See ``Queue.list_jobs``."""
    state_name = None if state is None else state.value
    return await store.list_jobs(
        JobFilter(queue_name, job_type, state_name, before, _check_limit(limit))
    )


async def queues(store: JobStore) -> list[QueueInfo]:
    """See ``Queue.queues``."""
    return [
        QueueInfo(
            name=row["name"],
            paused=row["paused"],
            counts={state: row[state] for state in COUNTED_STATES},
            oldest_available_age=row["oldest_available_age"],
        )
        for row in await store.queue_overview()
    ]
