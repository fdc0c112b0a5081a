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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

try:
    from asyncpg.pgproto.pgproto import UUID as _uuid_from_bytes
except ImportError:  # pragma: no cover - asyncpg ships it; the standard library's type works too

    def _uuid_from_bytes(data: bytes) -> UUID:
        return UUID(bytes=data)


# UUIDv7: a 48-bit millisecond timestamp, version 7 in the high nibble of byte 6, the RFC 4122
# variant in the top two bits of byte 8, random bits everywhere else. The tables set those bits in
# a whole batch at once (``bytes.translate`` on every 16th byte).
_V7_VERSION = bytes((b & 0x0F) | 0x70 for b in range(256))
_V7_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


def new_job_ids(count: int) -> list[UUID]:
    """Time-ordered UUIDs (version 7): ids made together sit together in the primary key index,
    so bulk inserts touch few index pages.

    They are asyncpg's ``UUID`` (a ``uuid.UUID``, the type its queries return), which it encodes
    without conversion and builds from bytes in C: ``uuid.UUID(bytes=...)`` costs several times
    more than the rest of a bulk enqueue's per-job work.
    """
    millis = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    noise = os.urandom(10 * count)
    raw = bytearray(16 * count)
    for i in range(6):
        raw[i::16] = millis[i : i + 1] * count
    for i in range(10):
        raw[6 + i :: 16] = noise[i::10]
    raw[6::16] = raw[6::16].translate(_V7_VERSION)
    raw[8::16] = raw[8::16].translate(_V7_VARIANT)
    data = bytes(raw)
    return [_uuid_from_bytes(data[i : i + 16]) for i in range(0, 16 * count, 16)]


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
    def from_record(cls, record: Sequence[Any]) -> Job:
        """Build a job from one row of the ``job_columns`` shape (see ``from_records``)."""
        return cls.from_records([record])[0]

    @classmethod
    def from_records(cls, records: Sequence[Sequence[Any]]) -> list[Job]:
        """Build jobs from rows of the ``job_columns`` shape: the dataclass's fields, in order,
        with the payload as JSON text and the state as text.

        Rows are read by position and the payloads decoded in one ``json.loads`` call: for the
        small payloads jobs carry, per-call overhead is most of the cost of decoding them.
        """
        if not records:
            return []
        payloads = json.loads("[" + ",".join([row[3] for row in records]) + "]")
        return [
            cls(
                row[0],
                row[1],
                row[2],
                payload,
                _STATES.get(row[4]) or JobState(row[4]),
                row[5],
                row[6],
                row[7],
                row[8],
                row[9],
                row[10],
                row[11],
                row[12],
                row[13],
                row[14],
                row[15],
            )
            for row, payload in zip(records, payloads, strict=True)
        ]
