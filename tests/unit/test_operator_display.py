"""The operator's commands' parsing of ids and states, and their display: ages, tables that fit
a terminal, and JSON documents of jobs and queues."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from docko_worker import DockoError, Job, JobError, JobState, QueueInfo
from docko_worker.cli_display import age, dump_json, fit_table, job_details, jobs_table, span
from docko_worker.operations import parse_job_id, parse_state

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
JOB_ID = UUID("01900000-0000-7000-8000-000000000001")


def make_job(**overrides: object) -> Job:
    values: dict[str, object] = {
        "id": JOB_ID,
        "queue_name": "documents",
        "job_type": "ocr",
        "payload": {"document_id": 42, "name": "ünï"},
        "state": JobState.FAILED,
        "attempt": 2,
        "max_attempts": 2,
        "priority": 0,
        "run_at": NOW - timedelta(minutes=5),
        "created_at": NOW - timedelta(minutes=5),
        "updated_at": NOW - timedelta(minutes=1),
        "last_error": "ValueError: page 2\nunreadable",
        "finished_at": NOW - timedelta(minutes=1),
        "errors": [
            JobError(1, NOW - timedelta(minutes=3), "ValueError: page 1"),
            JobError(2, NOW - timedelta(minutes=1), "ValueError: page 2\nunreadable"),
        ],
    }
    values.update(overrides)
    return Job(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3599, "59 min"), (7200, "2 h"), (90000, "1 d")],
)
def test_span_uses_the_largest_whole_unit(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_age_reads_past_future_and_now() -> None:
    assert age(NOW - timedelta(minutes=3, seconds=10), NOW) == "3 min ago"
    assert age(NOW + timedelta(seconds=20), NOW) == "in 20 s"
    assert age(NOW, NOW) == "just now"
    assert age(None, NOW) == "-"


def test_a_table_fits_its_width_by_cutting_the_last_column() -> None:
    table = fit_table(["A", "NOTE"], [["x", "word " * 50], ["long value", "short"]], 40)
    lines = table.splitlines()
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].endswith("…")
    assert lines[2] == "long value  short"


def test_the_jobs_table_shows_ages_and_one_line_errors() -> None:
    table = jobs_table([make_job()], NOW, 120)
    header, row = table.splitlines()
    assert header.split() == ["ID", "QUEUE", "TYPE", "STATE", "ATTEMPT", "CREATED", "LAST", "ERROR"]
    assert str(JOB_ID) in row and "2/2" in row and "5 min ago" in row
    assert "ValueError: page 2 unreadable" in row


def test_job_details_list_every_failed_attempt() -> None:
    text = job_details(make_job(), NOW, 100)
    assert "\nattempt        2 of 2\n" in text
    assert "  attempt 1  3 min ago  ValueError: page 1" in text
    assert "  attempt 2  1 min ago  ValueError: page 2 unreadable" in text


def test_a_job_as_json_has_every_field_and_iso_times() -> None:
    document = json.loads(dump_json(make_job()))
    assert list(document) == [field.name for field in fields(Job) if field.repr]
    assert "completed_in_transaction" not in document
    assert document["id"] == str(JOB_ID)
    assert document["state"] == "failed"
    assert document["payload"] == {"document_id": 42, "name": "ünï"}
    assert document["created_at"] == "2024-05-01T11:55:00+00:00"
    assert document["cancel_requested_at"] is None
    assert document["errors"][0] == {
        "attempt": 1,
        "at": "2024-05-01T11:57:00+00:00",
        "error": "ValueError: page 1",
    }


def test_a_queue_as_json() -> None:
    info = QueueInfo("documents", True, {"available": 3, "running": 1}, 12.5)
    assert json.loads(dump_json([info])) == [
        {
            "name": "documents",
            "paused": True,
            "counts": {"available": 3, "running": 1},
            "oldest_available_age": 12.5,
        }
    ]


def test_job_ids_parse_from_text_or_uuid() -> None:
    assert parse_job_id(JOB_ID) is JOB_ID
    assert parse_job_id(f"  {JOB_ID}\n") == JOB_ID
    assert parse_job_id(str(JOB_ID).upper()) == JOB_ID


@pytest.mark.parametrize("bad", ["", "nope", "0190", str(JOB_ID) + "0", "x" * 36, 17, None])
def test_a_malformed_job_id_is_a_docko_error(bad: object) -> None:
    with pytest.raises(DockoError, match="not a job id"):
        parse_job_id(bad)  # type: ignore[arg-type]


def test_states_parse_by_name_and_an_unknown_one_lists_the_known() -> None:
    assert parse_state("failed") is JobState.FAILED
    assert parse_state(JobState.RUNNING) is JobState.RUNNING
    assert parse_state(None) is None
    with pytest.raises(DockoError, match="expected one of available, running, completed"):
        parse_state("FAILED")
