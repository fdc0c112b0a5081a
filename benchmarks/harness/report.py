"""Turns collected results into ``latest.json`` and the ``latest.md`` tables."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .cliffs_report import cliffs_section
from .stats import Summary, summarize

DOCKO, DOCKO_RETAIN, DOCKO_METRICS = "docko", "docko-retain", "docko-metrics"
DASH, TIMES = "\u2013", "\u00d7"  # en dash (ranges, missing values), multiplication sign
NOT_APPLICABLE = "n/a"  # a scenario the system does not take part in
# The scheduled-job lateness scenario's two ways of enqueueing, as named in results.
LATENESS_APIS = ("enqueue", "enqueue_many")
LATENESS_STATS = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
LATENESS_METRICS = [f"lateness.{api}.{stat}" for api in LATENESS_APIS for stat in LATENESS_STATS]


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")


def add_summaries(results: dict[str, Any]) -> None:
    """Median and range of every reported metric, per system and per scale scenario."""
    metrics = [
        "enqueue.rate",
        "burn_down.throughput",
        "burn_down.processing_rate",
        "burn_down.cpu_per_1k",
        "burn_down.processing_cpu_per_1k",
        "burn_down.peak_rss_mb",
        "latency.p50_ms",
        "latency.p95_ms",
        "latency.p99_ms",
        "burn_down.milestone.throughput",
        *PRODUCER_METRICS,
        *LATENESS_METRICS,
    ]
    for entry in _entries(results):
        runs = [run for run in entry["runs"] if "error" not in run]
        summary = {}
        for metric in metrics:
            found = summarize(runs, metric)
            if found is not None:
                summary[metric] = found.as_dict()
        entry["summary"] = summary


def _entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry with runs: the systems, docko's scale scenarios and its producers."""
    producers = results.get("docko_producers")
    return [
        *results["systems"].values(),
        *results.get("docko_scale", {}).values(),
        *([producers] if producers else []),
    ]


PRODUCER_METRICS = ["asyncpg.single", "asyncpg.bulk", "psycopg.single", "psycopg.bulk"]
PRODUCER_ROWS = [
    ("asyncpg", "asyncpg: `enqueue_async`, `enqueue_many_async`"),
    ("psycopg", "psycopg 3: `enqueue`, `enqueue_many` (sync)"),
]


def producers_table(results: dict[str, Any]) -> list[str]:
    entry = results.get("docko_producers")
    if not entry:
        return []
    lines = [
        "| Driver (docko-worker's producers) | Single enqueue, one transaction each (jobs/s) "
        "| Bulk enqueue, 5,000 per call (jobs/s) |",
        "|---|---:|---:|",
    ]
    for key, label in PRODUCER_ROWS:
        lines.append(_row([label, _cell(entry, f"{key}.single"), _cell(entry, f"{key}.bulk")]))
    return lines


def _summary(entry: dict[str, Any] | None, metric: str) -> Summary | None:
    if not entry or metric not in entry.get("summary", {}):
        return None
    return Summary(**entry["summary"][metric])


def _num(value: float, digits: int = 0) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:,.{digits}f}"


def _cell(entry: dict[str, Any] | None, metric: str, digits: int = 0) -> str:
    found = _summary(entry, metric)
    if found is None:
        return DASH
    if found.runs == 1:
        return _num(found.median, digits)
    return (
        f"{_num(found.median, digits)} ({_num(found.low, digits)}{DASH}{_num(found.high, digits)})"
    )


def _exactly_once(entry: dict[str, Any]) -> str:
    checks = [
        run[scenario]["exactly_once"]
        for run in entry["runs"]
        if "error" not in run
        for scenario in ("burn_down", "latency", "lateness")
        if scenario in run
    ]
    if not checks:
        return DASH
    return "yes" if all(checks) else f"**NO** ({checks.count(False)} of {len(checks)})"


def _ratio(numerator: Summary | None, denominator: Summary | None) -> str:
    if numerator is None or denominator is None or not denominator.median:
        return DASH
    return f"{numerator.median / denominator.median:.2f}{TIMES}"


def main_table(results: dict[str, Any]) -> list[str]:
    jobs = results["options"]["jobs"]
    lines = [
        f"| System | Bulk enqueue (jobs/s) | Burn-down {jobs:,}, from worker start (jobs/s) "
        "| Processing rate after first job (jobs/s) | CPU s / 1k jobs | Peak RSS (MiB) "
        "| Exactly once |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for entry in results["systems"].values():
        lines.append(
            f"| {entry['label']} | {_cell(entry, 'enqueue.rate')} "
            f"| {_cell(entry, 'burn_down.throughput')} "
            f"| {_cell(entry, 'burn_down.processing_rate')} "
            f"| {_cell(entry, 'burn_down.cpu_per_1k', 3)} "
            f"| {_cell(entry, 'burn_down.peak_rss_mb')} | {_exactly_once(entry)} |"
        )
    return lines


def latency_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| System | p50 (ms) | p95 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|",
    ]
    for entry in results["systems"].values():
        lines.append(
            f"| {entry['label']} | {_cell(entry, 'latency.p50_ms', 1)} "
            f"| {_cell(entry, 'latency.p95_ms', 1)} | {_cell(entry, 'latency.p99_ms', 1)} |"
        )
    return lines


def lateness_table(results: dict[str, Any]) -> list[str]:
    """Lateness per system and enqueue API; one "n/a" row for systems without the scenario."""
    per_call = results["options"]["lateness_per_call"]
    calls = {
        "enqueue": "`Queue.enqueue`",
        "enqueue_many": f"`Queue.enqueue_many`, {per_call} per call",
    }
    lines = [
        "| System | Enqueued through | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for entry in results["systems"].values():
        if not entry.get("measures_lateness"):
            lines.append(_row([entry["label"], *[NOT_APPLICABLE] * 5]))
            continue
        for api in LATENESS_APIS:
            cells = [_cell(entry, f"lateness.{api}.{stat}", 1) for stat in LATENESS_STATS]
            lines.append(_row([entry["label"], calls[api], *cells]))
    return lines


def _versus(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, metric: str) -> str:
    """``ours`` median / ``theirs`` median of one metric, as a ratio."""
    return _ratio(_summary(ours, metric), _summary(theirs, metric))


def ratio_table(results: dict[str, Any]) -> list[str]:
    systems = results["systems"]
    docko, retain = systems.get(DOCKO), systems.get(DOCKO_RETAIN)
    if docko is None:
        return []
    lines = [
        "| Peer | Enqueue docko / peer | Burn-down docko / peer (from start) "
        "| Processing rate docko / peer | Burn-down docko default retention / peer "
        "| Latency p50 docko vs peer (ms) | Latency p99 docko vs peer (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, peer in systems.items():
        if key.startswith(DOCKO):  # docko's own rows are not peers
            continue
        latency = [
            _side_by_side(_summary(docko, metric), _summary(peer, metric))
            for metric in ("latency.p50_ms", "latency.p99_ms")
        ]
        cells = [
            peer["label"],
            _versus(docko, peer, "enqueue.rate"),
            _versus(docko, peer, "burn_down.throughput"),
            _versus(docko, peer, "burn_down.processing_rate"),
            _versus(retain, peer, "burn_down.throughput"),
            *latency,
        ]
        lines.append(_row(cells))
    return lines if len(lines) > 2 else []


def metrics_cost_table(results: dict[str, Any]) -> list[str]:
    """docko-worker with the HTTP endpoint on against the same configuration without it."""
    systems = results["systems"]
    off, on = systems.get(DOCKO), systems.get(DOCKO_METRICS)
    if off is None or on is None:
        return []
    lines = [
        "| Measure | metrics off | metrics on | on / off (medians) | on / off, run by run "
        "(median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, metric, digits in (
        ("Burn-down from worker start (jobs/s)", "burn_down.throughput", 0),
        ("Processing rate after the first job (jobs/s)", "burn_down.processing_rate", 0),
        ("CPU s per 1,000 jobs", "burn_down.cpu_per_1k", 4),
        ("CPU s per 1,000 jobs after the first job", "burn_down.processing_cpu_per_1k", 4),
    ):
        cells = [_cell(off, metric, digits), _cell(on, metric, digits), _versus(on, off, metric)]
        lines.append(_row([label, *cells, _paired(on, off, metric)]))
    return lines


def _paired(ours: dict[str, Any], theirs: dict[str, Any], metric: str) -> str:
    """The median of the per-run ratios ``ours`` / ``theirs``: runs of the same round were
    measured minutes apart, so the machine's drift over the whole benchmark cancels out."""
    scenario, _, name = metric.partition(".")
    ratios = [
        mine[scenario][name] / other[scenario][name]
        for mine, other in zip(ours["runs"], theirs["runs"], strict=False)
        if "error" not in mine
        and "error" not in other
        and mine[scenario].get(name)
        and other[scenario].get(name)
    ]
    if not ratios:
        return DASH
    return f"{statistics.median(ratios):.2f}{TIMES} ({min(ratios):.2f}{DASH}{max(ratios):.2f})"


def _side_by_side(ours: Summary | None, theirs: Summary | None) -> str:
    if ours is None or theirs is None:
        return DASH
    return f"{ours.median:.1f} vs {theirs.median:.1f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _scale_row(
    label: str, entry: dict[str, Any] | None, base: dict[str, Any] | None, metric: str
) -> str:
    """One docko scale row; ``metric`` is the throughput compared with ``base``'s burn-down."""
    full = metric == "burn_down.throughput"
    return _row(
        [
            label,
            _cell(entry, metric),
            _cell(entry, "burn_down.processing_rate") if full else DASH,
            _ratio(_summary(entry, metric), _summary(base, "burn_down.throughput")),
            _cell(entry, "burn_down.cpu_per_1k", 3) if full else DASH,
            _cell(entry, "burn_down.peak_rss_mb") if full else DASH,
            _exactly_once(entry) if full and entry else DASH,
        ]
    )


def scale_table(results: dict[str, Any]) -> list[str]:
    scale = results.get("docko_scale", {})
    systems, options = results["systems"], results["options"]
    base, retain = systems.get(DOCKO), systems.get(DOCKO_RETAIN)
    if not scale or base is None:
        return []
    jobs = options["jobs"]
    throughput = "burn_down.throughput"
    lines = [
        "| Scenario (docko-worker) | Burn-down from worker start (jobs/s) "
        f"| Processing rate (jobs/s) | vs {jobs:,} queued, same retention "
        "| CPU s / 1k jobs | Peak RSS (MiB) | Exactly once |",
        "|---|---:|---:|---:|---:|---:|---|",
        _scale_row(f"{jobs:,} queued, retention 0", base, base, throughput),
    ]
    queued = scale.get("million_queued")
    if queued:
        n, first = options["million_jobs"], options["million_milestone"]
        lines.append(_scale_row(f"{n:,} queued, retention 0 (whole run)", queued, base, throughput))
        lines.append(
            _scale_row(
                f"{n:,} queued, retention 0, until the first {first:,} finished",
                queued,
                base,
                "burn_down.milestone.throughput",
            )
        )
    if retain:
        lines.append(_scale_row(f"{jobs:,} queued, default retention", retain, retain, throughput))
    kept = scale.get("million_kept")
    if kept:
        n = options["kept_rows"]
        label = f"{n:,} completed rows kept + {jobs:,} queued, default retention"
        lines.append(_scale_row(label, kept, retain or base, throughput))
    return lines


def _errors(results: dict[str, Any]) -> list[str]:
    lines = []
    for entry in _entries(results):
        for index, run in enumerate(entry["runs"], 1):
            if "error" in run:
                first = run["error"].strip().splitlines()[0]
                lines.append(f"- {entry['label']}, run {index}: {first}")
    return lines


def write_markdown(results: dict[str, Any], path: Path, chart_name: str) -> None:
    machine, options = results["machine"], results["options"]
    versions = ", ".join(f"{key} {value}" for key, value in machine["versions"].items())
    pg = machine["postgresql"].split(" on ")[0]
    settings = ", ".join(f"{k}={v}" for k, v in machine["postgresql_settings"].items())
    out = [
        "# docko-worker benchmark",
        "",
        f"Measured {machine['date']} by `make bench` (`benchmarks/run.sh`) in "
        f"{results['total_seconds'] / 60:.1f} minutes. Cells are the median of "
        f"{options['runs']} run{'s' if options['runs'] != 1 else ''} with the range (min{DASH}max) "
        "in brackets; a single number is a single run.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"{machine['os']}; shared with other work while measuring, so absolute numbers are noisy.",
        f"- {pg} ({settings}) on the same machine, over TCP on 127.0.0.1.",
        f"- Python {machine['python']}; {versions}.",
        "",
        f"![throughput, enqueue and latency]({chart_name})",
        "",
        f"## Throughput: {options['jobs']:,} queued no-op jobs",
        "",
        *main_table(results),
        "",
        f"## Latency: idle worker, {options['latency_jobs']} jobs enqueued one by one "
        f"{options['latency_interval_ms']:g} ms apart",
        "",
        "Enqueue (payload `time.time()`) to handler start, in milliseconds.",
        "",
        *latency_table(results),
        "",
    ]
    if options.get("lateness_jobs"):
        low, high = options["lateness_delay_s"]
        out += [
            f"## Scheduled-job lateness: idle worker polling every "
            f"{options['lateness_poll_interval_s']:g} s",
            "",
            f"{options['lateness_jobs']} jobs enqueued one by one "
            f"{options['lateness_interval_ms']:g} ms apart, then {options['lateness_jobs']} in "
            f"calls of {options['lateness_per_call']}, each job (each call) due a random "
            f"{low * 1000:g}{DASH}{high * 1000:g} ms after its enqueue, so they fall due at "
            "scattered moments; handler start minus the job's due time (`run_at`), in "
            "milliseconds. Only docko-worker takes part.",
            "",
            *lateness_table(results),
            "",
        ]
    ratios = ratio_table(results)
    if ratios:
        out += ["## docko-worker against each peer (medians)", "", *ratios, ""]
    cost = metrics_cost_table(results)
    if cost:
        out += [
            "## What metrics cost (medians)",
            "",
            "docko-worker with `DOCKO_HTTP_PORT` set (every claim and outcome counted for "
            "`/metrics`, the queue sampler running every 5 s, not scraped during the run) "
            "against the same configuration without it, in the same runs.",
            "",
            *cost,
            "",
        ]
    scale = scale_table(results)
    if scale:
        runs = options["million_runs"]
        out += [
            "## docko-worker at scale",
            "",
            f"Million-row scenarios: {runs} run{'s' if runs != 1 else ''} each. "
            '"Until the first N finished" is the rate from worker start until N jobs had '
            "finished, read from the same runs. The kept rows are inserted by SQL and "
            f"`VACUUM ANALYZE`d before the {options['jobs']:,} jobs are enqueued.",
            "",
            *scale,
            "",
        ]
    producers = producers_table(results)
    if producers:
        out += [
            "## docko-worker's producers on a caller's connection",
            "",
            f"Through each driver into an empty table: {options.get('producer_singles', 0):,} "
            "jobs each in a transaction of its own (begin, enqueue, commit, as a web request "
            f"does), then {options['jobs']:,} through the bulk call, each call in a transaction.",
            "",
            *producers,
            "",
        ]
    out += cliffs_section(results)
    out += ["## Configurations", ""]
    for entry in results["systems"].values():
        out.append(f"- **{entry['label']}** {entry['version']}:")
        out += [f"  - {key}: `{value}`" for key, value in entry["settings"].items()]
    out += ["", "## Method", "", *[f"- {line}" for line in METHOD], ""]
    errors = _errors(results)
    if errors:
        out += ["## Failed runs", "", *errors, ""]
    path.write_text("\n".join(out))


METHOD = [
    "Each system, in each run, gets a fresh database (created, schema installed with the "
    "system's own tooling, dropped afterwards). Runs interleave the systems.",
    'Bulk enqueue: the same payloads `{"seq": n, "t": time}` through each system\'s '
    "bulk API, 5,000 per call, no worker running; jobs/s over all calls.",
    "Burn-down: the worker is started as a subprocess with its own CLI; the clock runs from "
    "starting the process until the system's jobs table shows no queued or running job. The "
    "count is polled every 20 ms near the end and at half the estimated time left before that "
    "(at most 250 ms), so the poll's table scans do not take CPU from the worker they measure. "
    "That includes interpreter start-up and schema checks; the processing rate counts from the "
    "first handler start instead. Each worker runs from an environment of its own holding only "
    "its system and the handler package, installed from built wheels as it would be deployed "
    "(`benchmarks/.venv-<system>`); producers and the harness share `benchmarks/.venv`.",
    "Every handler does the same bookkeeping: it writes `seq enqueue-time start-time` to a "
    "buffered file flushed at exit; after a graceful SIGTERM the harness checks that every "
    "enqueued seq ran exactly once.",
    "CPU: psutil user+system time of the worker process from its start until the table shows "
    "all finished, per 1,000 jobs. Peak RSS: the process's VmHWM at that moment.",
    "Latency: worker started, one warm-up job run, 1 s to settle, then jobs enqueued one at "
    "a time with each system's single-job API; the handler start minus the payload's "
    "enqueue time (one machine, one clock).",
    "Scheduled-job lateness (docko-worker): a worker of its own with `DOCKO_POLL_INTERVAL=60`, "
    "one warm-up job run, 1 s to settle, then jobs enqueued with `delay=` through "
    "`Queue.enqueue` and then `Queue.enqueue_many`; the handler start minus the job's `run_at` "
    "(returned by `enqueue`, read back by id after `enqueue_many`, before it is due). A job "
    "the worker was not woken for would wait for the poll, up to 60 s.",
]
