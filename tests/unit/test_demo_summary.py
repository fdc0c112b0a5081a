"""The demo's summary: the jobs by type under column headers, the latency probes named."""

from __future__ import annotations

from collections import Counter

from docko_worker.demo.display import table
from docko_worker.demo.report import Outcome, format_summary


def outcome(**by_type: Counter[str]) -> Outcome:
    return Outcome(
        jobs=sum(sum(states.values()) for states in by_type.values()),
        documents=2,
        by_type=dict(by_type),
        retried=1,
        gave_up=[],
        examples=[],
        wall=1.0,
        workers=4,
        attempts=9,
        busy_seconds=0.5,
        latencies=[2.0, 3.0],
        listen=True,
        poll_interval=0.2,
    )


def rows_of(summary: str) -> list[list[str]]:
    """The table's lines (indented by four, where other lines have two or sixteen), split."""
    return [
        line.split() for line in summary.splitlines() if line[:5].strip() and line[:4] == " " * 4
    ]


def test_the_job_table_has_column_headers_and_names_the_latency_probes() -> None:
    summary = format_summary(
        outcome(ocr=Counter(completed=1, failed=1), index=Counter(completed=2))
    )
    header, ocr, index, probes = rows_of(summary)
    assert header == ["job", "type", "jobs", "completed", "failed", "queue", "attempts"]
    assert ocr == ["ocr", "2", "1", "1", "documents", "2"]
    assert index == ["index", "2", "2", "0", "documents", "5"]
    assert probes[:2] == ["latency_probe", "20"]
    assert "20 latency_probe jobs" in summary
    assert "(2 latency_probe jobs sent 50 ms apart" in summary


def test_an_unfinished_column_appears_only_when_a_job_is_not_final() -> None:
    summary = format_summary(outcome(ocr=Counter(completed=1, available=2)))
    header, ocr, _probes = rows_of(summary)
    assert "unfinished" in header
    assert ocr == ["ocr", "3", "1", "0", "2", "documents", "2"]


def test_table_aligns_numbers_right_under_their_headers() -> None:
    lines = table(["name", "count"], [["a", "1"], ["bbbbbb", "200"]], right=[1])
    assert lines == ["name    count", "a           1", "bbbbbb    200"]
