"""``Job.from_record`` (row to job mapping) and the ``JobState`` lifecycle helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from docko_worker import Job, JobState

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid4(),
        "queue_name": "documents",
        "job_type": "ocr",
        "payload": '{"document_id": 42, "pages": [1, 2]}',
        "state": "running",
        "attempt": 2,
        "max_attempts": 5,
        "priority": -3,
        "run_at": NOW,
        "created_at": NOW - timedelta(minutes=1),
        "updated_at": NOW + timedelta(seconds=1),
        "last_error": "ValueError: boom",
        "dedupe_key": "doc-42",
        "worker_id": "host:1:abcd",
        "lease_expires_at": NOW + timedelta(minutes=5),
        "finished_at": None,
    }
    row.update(overrides)
    return row


def test_from_record_maps_every_column() -> None:
    row = record()
    job = Job.from_record(row)
    assert job.id == row["id"]
    assert job.queue_name == "documents"
    assert job.job_type == "ocr"
    assert job.payload == {"document_id": 42, "pages": [1, 2]}
    assert job.state is JobState.RUNNING
    assert job.attempt == 2
    assert job.max_attempts == 5
    assert job.priority == -3
    assert job.run_at == NOW
    assert job.created_at == row["created_at"]
    assert job.updated_at == row["updated_at"]
    assert job.last_error == "ValueError: boom"
    assert job.dedupe_key == "doc-42"
    assert job.worker_id == "host:1:abcd"
    assert job.lease_expires_at == row["lease_expires_at"]
    assert job.finished_at is None


@pytest.mark.parametrize("payload_text", ["null", "[]", '"text"', "3.5"])
def test_from_record_decodes_any_json_payload(payload_text: str) -> None:
    import json

    assert Job.from_record(record(payload=payload_text)).payload == json.loads(payload_text)


@pytest.mark.parametrize("state", list(JobState))
def test_from_record_maps_every_state(state: JobState) -> None:
    assert Job.from_record(record(state=state.value)).state is state


def test_from_record_rejects_an_unknown_state() -> None:
    with pytest.raises(ValueError):
        Job.from_record(record(state="exploded"))


def test_state_values() -> None:
    assert [state.value for state in JobState] == [
        "available",
        "running",
        "completed",
        "failed",
        "cancelled",
    ]


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (JobState.AVAILABLE, False),
        (JobState.RUNNING, False),
        (JobState.COMPLETED, True),
        (JobState.FAILED, True),
        (JobState.CANCELLED, True),
    ],
)
def test_is_final(state: JobState, final: bool) -> None:
    assert state.is_final is final


@pytest.mark.parametrize(("attempt", "last"), [(1, False), (2, False), (3, True), (4, True)])
def test_is_last_attempt(attempt: int, last: bool) -> None:
    assert Job.from_record(record(attempt=attempt, max_attempts=3)).is_last_attempt is last
