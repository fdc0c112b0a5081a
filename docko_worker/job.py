"""The ``Job`` record handed to handlers, and the ``JobState`` lifecycle.

    enqueue ──> available ──claim──> running ──success──> completed
                   ^                    │
                   │                    ├── error, attempts left ──> available (run_at += backoff)
                   │                    ├── error on last attempt, PermanentError ──> failed
                   ├──── lease expired ─┤   (no attempts left: failed, "lease expired")
                   └──── shutdown ──────┘   (handed back; the attempt is not spent)

A claim increments ``attempt``, so a handler sees 1 on its first run. Every write that finishes a
job names the attempt it was claimed with, so a worker that lost its lease changes nothing.

An operator's cancel ends an available job ``cancelled`` at once, and asks a running one to stop:
its next outcome write (retry, fail, hand-back) or the lease sweep ends it ``cancelled`` instead,
while a success still completes it. An operator's retry makes a failed or cancelled job available
again. ``errors`` keeps each failed attempt's error (the last 20), ``last_error`` the latest.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from .errors import describe_error
from .headers import NO_HEADERS, decode_headers

try:
    from asyncpg.pgproto.pgproto import UUID as _uuid_from_bytes
except ImportError:  # pragma: no cover - asyncpg ships it; the standard library's type works too

    def _uuid_from_bytes(data: bytes) -> UUID:
        return UUID(bytes=data)


# UUIDv7 (RFC 9562): a 48-bit millisecond timestamp, the version (7) in the high nibble of byte 6,
# 12 bits of "rand_a", the variant in the top two bits of byte 8, 62 random bits. Within a batch,
# rand_a counts up (method 1 of RFC 9562 section 6.2, a dedicated counter), so a batch's ids
# ascend: each lands at the right-hand end of the primary key and claim indexes instead of at a
# random place in their last page, which halves the cost of those index inserts in a bulk COPY.
_V7_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
_RAND_A_SPAN = 1 << 12
_EVERY_COUNTER = struct.pack(f">{_RAND_A_SPAN}H", *range(0x7000, 0x7000 + _RAND_A_SPAN))


def _version_and_counter(count: int) -> bytes:
    """Bytes 6 and 7 of ``count`` ids: version 7 and a counter that never goes down (each value
    repeated when there are more ids than values)."""
    repeats = -(-count // _RAND_A_SPAN)
    spread = bytearray(2 * _RAND_A_SPAN * repeats)
    for copy in range(repeats):
        spread[2 * copy :: 2 * repeats] = _EVERY_COUNTER[0::2]
        spread[2 * copy + 1 :: 2 * repeats] = _EVERY_COUNTER[1::2]
    return bytes(spread[: 2 * count])


def new_job_ids(count: int) -> list[UUID]:
    """Time-ordered UUIDs (version 7), ascending within the batch."""
    return uuids_from_bytes(new_job_id_bytes(count))


def uuids_from_bytes(data: bytes) -> list[UUID]:
    """The UUIDs held back to back in ``data``, 16 bytes each.

    They are asyncpg's ``UUID`` (a ``uuid.UUID``, the type its queries return), which it encodes
    without conversion and builds from bytes in C: ``uuid.UUID(bytes=...)`` costs several times
    more than the rest of a bulk enqueue's per-job work.
    """
    return [_uuid_from_bytes(data[i : i + 16]) for i in range(0, len(data), 16)]


def new_job_id_bytes(count: int) -> bytes:
    """``count`` time-ordered UUIDs (version 7) as 16 bytes each, ascending within the batch."""
    if count <= 0:
        return b""
    millis = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    version_and_counter = _version_and_counter(count)
    noise = os.urandom(8 * count)
    raw = bytearray(16 * count)
    for i in range(6):
        raw[i::16] = millis[i : i + 1] * count
    raw[6::16] = version_and_counter[0::2]
    raw[7::16] = version_and_counter[1::2]
    for i in range(8):
        raw[8 + i :: 16] = noise[i::8]
    raw[8::16] = raw[8::16].translate(_V7_VARIANT)
    return bytes(raw)


def new_job_id() -> UUID:
    return new_job_ids(1)[0]


def job_id_of(job: Job) -> UUID:
    """A job's id: the key that puts jobs in the order their rows are locked in."""
    return job.id


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

# PostgreSQL's 'infinity' and '-infinity': the largest and smallest datetimes, in UTC like every
# other job timestamp (asyncpg's own decoding gives them without a time zone).
_INFINITE = {
    float("inf"): datetime.max.replace(tzinfo=UTC),
    float("-inf"): datetime.min.replace(tzinfo=UTC),
}


def _timestamp(seconds: float | None) -> datetime | None:
    """A ``job_columns`` timestamp (seconds since the Unix epoch) as an aware UTC datetime.

    Exact to the microsecond between 1834 and 2106 (under 2**32 seconds from the epoch): there a
    float8 lies within a quarter of a microsecond of the stored value, and ``fromtimestamp``
    rounds to the nearest one. Further out a float8 cannot hold every microsecond, and a value
    read back may be off by a few.
    """
    if seconds is None:
        return None
    infinite = _INFINITE.get(seconds)
    if infinite is not None:
        return infinite
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        # Beyond the years Python can hold (1 to 9999): a job must still be readable, whatever
        # a client wrote into its row.
        return _INFINITE[float("inf") if seconds > 0 else float("-inf")]


@dataclass(frozen=True, slots=True)
class JobError:
    """One failed attempt of a job: its number, when it failed (aware, UTC) and its error."""

    attempt: int
    at: datetime
    error: str


def _errors(text: str | None) -> list[JobError]:
    """The ``errors`` history column (JSON text, or NULL: none) as ``JobError``s, oldest first."""
    if text is None:
        return []
    return [
        JobError(entry["attempt"], datetime.fromisoformat(entry["at"]), entry["error"])
        for entry in json.loads(text)
    ]


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
    cancel_requested_at: datetime | None = None
    cancel_reason: str | None = None
    errors: list[JobError] = field(default_factory=list)
    # Set by ``docko_worker.complete(conn, job)``: this attempt marked the job completed inside
    # the handler's own transaction. The daemon's own completion write for it then expects to
    # be refused (that transaction committed) and says nothing; if it lands, the handler's
    # transaction rolled back and the handler returned normally.
    completed_in_transaction: bool = field(default=False, init=False, repr=False, compare=False)
    # String metadata given at enqueue (a trace context, a request id); empty when none.
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    async def complete(self, conn: Any) -> None:
        """``await docko_worker.complete_async(conn, self)``: complete this attempt of the job
        inside ``conn``'s transaction, or raise ``LeaseLost``."""
        from .producers import complete_async

        await complete_async(conn, self)

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> Job:
        """Build a job from one row of the ``job_columns`` shape (see ``from_records``)."""
        return cls.from_records([record])[0]

    @classmethod
    def from_records(cls, records: Sequence[Sequence[Any]]) -> list[Job]:
        """Build jobs from rows of the ``job_columns`` shape: the dataclass's fields, in order,
        with the payload as JSON text, the state as text and timestamps as epoch seconds.

        Rows are read by position and the payloads decoded in one ``json.loads`` call: for the
        small payloads jobs carry, per-call overhead is most of the cost of decoding them. Each
        distinct timestamp is converted once per batch. A payload this process cannot decode
        (written by a producer that raised its own limits) reads as ``None``.
        """
        if not records:
            return []
        try:
            payloads = json.loads("[" + ",".join([row[3] for row in records]) + "]")
        except (ValueError, RecursionError):
            payloads, _ = _decode_each(records)
        return cls._build(records, payloads)

    @classmethod
    def from_claimed_records(
        cls, records: Sequence[Sequence[Any]]
    ) -> tuple[list[Job], list[tuple[Job, str]]]:
        """Like ``from_records``, for a claim that has committed: a payload that cannot be
        decoded spoils only its own job, returned apart with the reason (payload ``None``)."""
        if not records:
            return [], []
        try:
            payloads = json.loads("[" + ",".join([row[3] for row in records]) + "]")
        except (ValueError, RecursionError):
            payloads, errors = _decode_each(records)
        else:
            return cls._build(records, payloads), []
        jobs = cls._build(records, payloads)
        good = [job for index, job in enumerate(jobs) if index not in errors]
        return good, [(jobs[index], error) for index, error in errors.items()]

    @classmethod
    def _build(cls, records: Sequence[Sequence[Any]], payloads: Sequence[Any]) -> list[Job]:
        seconds = {
            value
            for row in records
            for value in (row[8], row[9], row[10], row[14], row[15], row[16])
        }
        # Any: the NOT NULL timestamp columns never map to None.
        at: dict[float | None, Any] = {value: _timestamp(value) for value in seconds}
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
                at[row[8]],
                at[row[9]],
                at[row[10]],
                row[11],
                row[12],
                row[13],
                at[row[14]],
                at[row[15]],
                at[row[16]],
                row[17],
                _errors(row[18]),
                NO_HEADERS if row[19] is None else decode_headers(row[19]),
            )
            for row, payload in zip(records, payloads, strict=True)
        ]


def _decode_each(records: Sequence[Sequence[Any]]) -> tuple[list[Any], dict[int, str]]:
    """Each row's payload decoded alone; one that cannot be (nested deeper than the decoder's
    recursion limit, an integer past Python's digit limit) becomes ``None``, its reason kept."""
    payloads: list[Any] = []
    errors: dict[int, str] = {}
    for index, row in enumerate(records):
        try:
            payloads.append(json.loads(row[3]))
        except (ValueError, RecursionError) as exc:
            payloads.append(None)
            errors[index] = describe_error(exc)
    return payloads, errors
