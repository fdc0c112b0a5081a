"""How the operator's commands show jobs and queues: terminal tables and JSON documents.

Times are shown as ages ("3 min ago", "in 20 s") on a terminal and as ISO 8601 in JSON. A JSON job
carries every ``Job`` field by name (``errors`` as a list of ``{"attempt", "at", "error"}``); a
JSON queue carries ``name``, ``paused``, ``counts`` and ``oldest_available_age``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from .job import Job
from .operations import COUNTED_STATES, QueueInfo

# Columns of a table never narrower than these, whatever the terminal.
MIN_TEXT_WIDTH = 12
# Queue and job type names longer than this are shortened in tables.
NAME_WIDTH = 24

_SPANS = ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s"))


def span(seconds: float) -> str:
    """A duration in its largest whole unit: ``"3 min"``, ``"2 h"``, ``"0 s"``."""
    for size, unit in _SPANS:
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "0 s"


def age(moment: datetime | None, now: datetime) -> str:
    """``moment`` relative to ``now``: ``"3 min ago"``, ``"in 20 s"``, ``"just now"``, ``"-"``."""
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    return f"{span(seconds)} ago" if seconds > 0 else f"in {span(-seconds)}"


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def fit_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> str:
    """Left-aligned columns two spaces apart; the last column is cut to fit ``width``."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    room = max(width - sum(widths) - 2 * len(widths), MIN_TEXT_WIDTH)
    lines = []
    for row in [header, *rows]:
        cells = [value.ljust(size) for value, size in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, shorten(row[-1], room)]).rstrip())
    return "\n".join(lines)


def jobs_table(jobs: Sequence[Job], now: datetime, width: int) -> str:
    header = ["ID", "QUEUE", "TYPE", "STATE", "ATTEMPT", "CREATED", "LAST ERROR"]
    rows = [
        [
            str(job.id),
            shorten(job.queue_name, NAME_WIDTH),
            shorten(job.job_type, NAME_WIDTH),
            job.state.value,
            f"{job.attempt}/{job.max_attempts}",
            age(job.created_at, now),
            job.last_error or "",
        ]
        for job in jobs
    ]
    return fit_table(header, rows, width)


def queues_table(queues: Sequence[QueueInfo], width: int) -> str:
    header = ["QUEUE", "STATUS", "AVAILABLE", "RUNNING", "FAILED", "CANCELLED", "LAG"]
    rows = [
        [
            shorten(info.name, NAME_WIDTH),
            "paused" if info.paused else "active",
            *(str(info.counts[state]) for state in COUNTED_STATES),
            "-" if info.oldest_available_age is None else span(info.oldest_available_age),
        ]
        for info in queues
    ]
    return fit_table(header, rows, width)


def job_details(job: Job, now: datetime, width: int) -> str:
    """Every field of one job, one per line, then its errors history."""

    def when(moment: datetime | None) -> str:
        return "-" if moment is None else f"{moment.isoformat()} ({age(moment, now)})"

    fields = [
        ("id", str(job.id)),
        ("queue", job.queue_name),
        ("type", job.job_type),
        ("state", job.state.value),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("priority", str(job.priority)),
        ("created", when(job.created_at)),
        ("run at", when(job.run_at)),
        ("updated", when(job.updated_at)),
        ("finished", when(job.finished_at)),
        ("worker", job.worker_id or "-"),
        ("lease until", when(job.lease_expires_at)),
        ("dedupe key", "-" if job.dedupe_key is None else repr(job.dedupe_key)),
        ("cancel asked", when(job.cancel_requested_at)),
        ("cancel reason", job.cancel_reason or "-"),
        ("last error", job.last_error or "-"),
        ("payload", json.dumps(job.payload, ensure_ascii=False)),
    ]
    label = max(len(name) for name, _ in fields) + 2
    room = max(width - label, MIN_TEXT_WIDTH)
    lines = [f"{name.ljust(label)}{shorten(value, room)}" for name, value in fields]
    lines.append("errors".ljust(label) + (str(len(job.errors)) if job.errors else "-"))
    for entry in job.errors:
        prefix = f"  attempt {entry.attempt}  {age(entry.at, now)}  "
        lines.append(prefix + shorten(entry.error, max(width - len(prefix), MIN_TEXT_WIDTH)))
    return "\n".join(lines)


def to_json(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses by field, times ISO 8601, ids and states text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Internal marks (repr=False) are not part of what a job is.
        return {
            f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    return value


def dump_json(value: Any) -> str:
    return json.dumps(to_json(value), ensure_ascii=False)
