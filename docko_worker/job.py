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


def new_job_id() -> UUID:
    """A time-ordered UUID (version 7): ids made together sit together in the primary key index,
    so bulk inserts touch few index pages."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return UUID(int=value)


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
