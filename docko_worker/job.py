"""The ``Job`` record handed to handlers, and the ``JobState`` lifecycle.

    enqueue ──> available ──claim──> running ──success──> completed
                   ^                    │
                   │                    ├── error, attempts left ──> available (run_at += backoff)
                   │                    ├── error on last attempt, PermanentError ──> failed
                   ├──── lease expired ─┤   (no attempts left: failed, "lease expired")
                   └──── shutdown ──────┘   (handed back; the attempt is not spent)

A claim increments ``attempt``, so a handler sees 1 on its first run. Every write that finishes a
job names the attempt it was claimed with, so a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

# UUIDv7 below the 48-bit millisecond timestamp: version (4 bits), 12 random bits, variant
# (2 bits), 62 random bits. The mask keeps the random bits of 80 and clears version and variant.
_V7_RANDOM_MASK = 0x0FFF_3FFF_FFFF_FFFF_FFFF
_V7_VERSION_AND_VARIANT = (0x7 << 76) | (0x2 << 62)


def new_job_ids(count: int) -> list[UUID]:
    """Time-ordered UUIDs (version 7): ids made together sit together in the primary key index,
    so bulk inserts touch few index pages."""
    head = (time.time_ns() // 1_000_000) << 80 | _V7_VERSION_AND_VARIANT
    noise = os.urandom(10 * count)
    return [
        UUID(int=head | int.from_bytes(noise[i : i + 10], "big") & _V7_RANDOM_MASK)
        for i in range(0, 10 * count, 10)
    ]


def new_job_id() -> UUID:
    return new_job_ids(1)[0]


class JobState(StrEnum):
    AVAILABLE = "available"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


_STATES = {state.value: state for state in JobState}


@dataclass(slots=True)
class Job:
    """One job as stored. Handlers receive it and read ``payload``."""

    id: UUID
    queue_name: str
    job_type: str
    payload: Any
    state: JobState
    attempt: int
    max_attempts: int
    priority: int
    run_at: datetime
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None
    dedupe_key: str | None = None
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @classmethod
    def from_record(cls, record: Any) -> Job:
        """Build a job from a row of the ``job_columns`` shape (payload as JSON text)."""
        return cls(
            id=record["id"],
            queue_name=record["queue_name"],
            job_type=record["job_type"],
            payload=json.loads(record["payload"]),
            state=_STATES.get(record["state"]) or JobState(record["state"]),
            attempt=record["attempt"],
            max_attempts=record["max_attempts"],
            priority=record["priority"],
            run_at=record["run_at"],
            created_at=record["created_at"],
            updated_at=record["updated_at"],
            last_error=record["last_error"],
            dedupe_key=record["dedupe_key"],
            worker_id=record["worker_id"],
            lease_expires_at=record["lease_expires_at"],
            finished_at=record["finished_at"],
        )
