"""``Job.from_record`` (row to job mapping) and the ``JobState`` lifecycle helpers."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from docko_worker import Job, JobError, JobState
from docko_worker.statements import sql_dir

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def values(**overrides: Any) -> dict[str, Any]:
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
        "cancel_requested_at": None,
        "cancel_reason": None,
        "errors": None,
        "headers": None,
    }
    row.update(overrides)
    return row


def column_names() -> list[str]:
    """The stored columns: ``Job``'s fields but the process-side mark (not an ``__init__``
    argument)."""
    return [field.name for field in fields(Job) if field.init]


def as_row(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row as the claim returns it: the ``job_columns``, in order, timestamps as epoch seconds."""
    return tuple(
        row[name].timestamp() if isinstance(row[name], datetime) else row[name]
        for name in column_names()
    )


def record(**overrides: Any) -> tuple[Any, ...]:
    return as_row(values(**overrides))


def test_from_record_maps_every_column() -> None:
    row = values()
    job = Job.from_record(as_row(row))
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
    assert job.cancel_requested_at is None
    assert job.cancel_reason is None
    assert job.errors == []
    assert job.headers == {}


def test_from_record_maps_the_cancel_request_and_the_errors_history() -> None:
    history = (
        '[{"at": "2024-05-01T11:58:00.000001Z", "error": "ValueError: one", "attempt": 1},'
        ' {"at": "2024-05-01T11:59:30.5Z", "error": "KeyError: \'two\'", "attempt": 2}]'
    )
    job = Job.from_record(
        record(cancel_requested_at=NOW, cancel_reason="operator: runaway", errors=history)
    )
    assert job.cancel_requested_at == NOW
    assert job.cancel_reason == "operator: runaway"
    assert job.errors == [
        JobError(1, datetime(2024, 5, 1, 11, 58, 0, 1, tzinfo=UTC), "ValueError: one"),
        JobError(2, datetime(2024, 5, 1, 11, 59, 30, 500000, tzinfo=UTC), "KeyError: 'two'"),
    ]
    assert all(error.at.utcoffset() == timedelta(0) for error in job.errors)


def test_jobs_without_history_do_not_share_one_list() -> None:
    first, second = Job.from_records([record(), record()])
    first.errors.append(JobError(1, NOW, "x"))
    assert second.errors == []


def test_headers_read_back_as_a_mapping_of_strings() -> None:
    text = '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'
    job = Job.from_record(record(headers=text))
    assert job.headers == json.loads(text)


@pytest.mark.parametrize("stored", ["[]", '"text"', "not json"])
def test_headers_that_are_not_an_object_read_as_none(stored: str) -> None:
    assert Job.from_record(record(headers=stored)).headers == {}


@pytest.mark.parametrize("payload_text", ["null", "[]", '"text"', "3.5"])
def test_from_record_decodes_any_json_payload(payload_text: str) -> None:

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


def test_from_records_decodes_each_payload_of_a_batch() -> None:
    texts = ['{"seq": 1}', "[1, 2]", '"a,b]"', "null", '{"nested": {"x": [true]}}', "-0.5"]
    jobs = Job.from_records([record(payload=text, attempt=i + 1) for i, text in enumerate(texts)])
    assert [job.payload for job in jobs] == [json.loads(text) for text in texts]
    assert [job.attempt for job in jobs] == [1, 2, 3, 4, 5, 6]


def test_from_records_of_no_rows() -> None:
    assert Job.from_records([]) == []


def test_job_columns_list_the_job_fields_in_order() -> None:
    """Rows are read by position: the claim's columns must follow the dataclass's fields."""
    text = (sql_dir() / "queries.sql").read_text(encoding="utf-8")
    fragment = text.split("-- fragment: job_columns\n", 1)[1].split("\n\n", 1)[0]
    sql = " ".join(line for line in fragment.splitlines() if not line.startswith("--"))
    columns = [
        part.split(" AS ")[-1].split("::")[0].strip() for part in re.split(r",(?![^(]*\))", sql)
    ]
    assert columns == column_names()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1834, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 0, 0, 123457, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 999999, tzinfo=UTC),
        datetime(2106, 2, 7, 6, 28, 15, 999999, tzinfo=UTC),
    ],
)
def test_timestamps_read_back_to_the_microsecond(moment: datetime) -> None:
    job = Job.from_record(record(run_at=moment, created_at=moment, finished_at=moment))
    assert (job.run_at, job.created_at, job.finished_at) == (moment, moment, moment)
    assert job.run_at.tzinfo is UTC


def test_microseconds_across_a_second_read_back_exactly() -> None:
    base = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
    moments = [base + timedelta(microseconds=us) for us in range(1_000_000)]
    rows = [record(run_at=moment) for moment in moments[::997]]
    assert [job.run_at for job in Job.from_records(rows)] == moments[::997]


def test_infinite_timestamps_read_as_asyncpg_reads_them() -> None:
    job = Job.from_record(record(run_at=float("inf"), created_at=float("-inf")))
    assert job.run_at == datetime.max.replace(tzinfo=UTC)
    assert job.created_at == datetime.min.replace(tzinfo=UTC)


def test_rows_of_a_batch_share_equal_timestamps() -> None:
    jobs = Job.from_records([record(attempt=n) for n in range(1, 4)])
    assert len({id(job.updated_at) for job in jobs}) == 1
    assert all(job.updated_at == NOW + timedelta(seconds=1) for job in jobs)
