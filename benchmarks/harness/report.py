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
        *EXTRA_METRICS,
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
        *results.get("docko_history", {}).values(),
        *([results["docko_ceiling"]] if "docko_ceiling" in results else []),
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
            "finished, read from the same runs. A long history kept in the table is measured "
            'below, under "History without a slowdown".',
            "",
            *scale,
            "",
        ]
    out += extra_sections(results)
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
    out += ["", "## Method", "", *[f"- {line}" for line in METHOD + EXTRA_METHOD], ""]
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


# The scenarios of the performance issue: the ceiling of the claim-and-delete statements, a long
# history kept or pruned, and the daemon's start-up. Each cell of a target says whether the
# medians meet it.
EXTRA_METRICS = [
    "burn_down.first_job_after",
    "fresh_burn_down.throughput",
    "fresh_burn_down.processing_rate",
    "bare_loop.rate",
    "latency_after.p50_ms",
    "latency_after.p95_ms",
    "latency_after.p99_ms",
    "pruning.pruned_in_window",
    "pruning.pruning_seconds",
    "pruning.prune_rate",
    "pruning.all_pruned_after",
    "pruning.window_seconds",
]
CEILING_TARGET = 0.70  # docko's processing rate / the bare loop, at least
HISTORY_TARGET = 0.90  # burn-down with history kept / on a fresh table, at least
STARTUP_TARGET = 0.25  # seconds from spawning the worker to its first handler start, at most
GE, LE = "\u2265", "\u2264"


def kept_entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The kept-history entries, smallest history first."""
    history = results.get("docko_history", {})
    found = [entry for key, entry in history.items() if key.startswith("kept_")]
    return sorted(found, key=lambda entry: int(entry["kept"]))


def _median_ratio(ours: Summary | None, theirs: Summary | None) -> float | None:
    if ours is None or theirs is None or not theirs.median:
        return None
    return ours.median / theirs.median


def _verdict(value: float | None, target: float, *, at_most: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    met = value <= target if at_most else value >= target
    return "met" if met else "**not met**"


def _value_at(run: dict[str, Any], path: str) -> float | None:
    value: Any = run
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) and value else None


def _paired_runs(
    ours: dict[str, Any], our_metric: str, theirs: dict[str, Any], their_metric: str
) -> str:
    """Median (range) of the run-by-run ratios, run n of ``ours`` against run n of ``theirs``
    (measured in the same round, so drift of the shared machine cancels out)."""
    ratios = []
    for mine, other in zip(ours["runs"], theirs["runs"], strict=False):
        a, b = _value_at(mine, our_metric), _value_at(other, their_metric)
        if a is not None and b is not None:
            ratios.append(a / b)
    if not ratios:
        return DASH
    return f"{statistics.median(ratios):.2f}{TIMES} ({min(ratios):.2f}{DASH}{max(ratios):.2f})"


def ceiling_table(results: dict[str, Any]) -> list[str]:
    """The bare claim-and-delete loop against docko-worker's processing rate."""
    ceiling, docko = results.get("docko_ceiling"), results["systems"].get(DOCKO)
    if not ceiling:
        return []
    ratio = _median_ratio(
        _summary(docko, "burn_down.processing_rate"), _summary(ceiling, "bare_loop.rate")
    )
    paired = (
        _paired_runs(docko, "burn_down.processing_rate", ceiling, "bare_loop.rate")
        if docko
        else DASH
    )
    return [
        "| Bare claim-and-delete loop (jobs/s) | docko-worker processing rate after first job "
        "(jobs/s) | docko processing rate / bare loop (medians) | run by run | "
        f"Issue target {GE} {CEILING_TARGET:.2f}{TIMES} |",
        "|---:|---:|---:|---:|---|",
        _row(
            [
                _cell(ceiling, "bare_loop.rate"),
                _cell(docko, "burn_down.processing_rate"),
                DASH if ratio is None else f"{ratio:.2f}{TIMES}",
                paired,
                _verdict(ratio, CEILING_TARGET),
            ]
        ),
    ]


def startup_table(results: dict[str, Any]) -> list[str]:
    """Seconds from spawning each worker to its first handler start, in the burn-down runs."""
    lines = [
        "| System | Worker spawned to first handler start (s) "
        f"| Issue target (docko-worker) {LE} {STARTUP_TARGET:g} s |",
        "|---|---:|---|",
    ]
    for key, entry in results["systems"].items():
        found = _summary(entry, "burn_down.first_job_after")
        verdict = (
            _verdict(found.median if found else None, STARTUP_TARGET, at_most=True)
            if key.startswith(DOCKO)
            else NOT_APPLICABLE
        )
        lines.append(_row([entry["label"], _cell(entry, "burn_down.first_job_after", 3), verdict]))
    return lines


def import_table(results: dict[str, Any]) -> list[str]:
    found = results.get("docko_import")
    if not found:
        return []
    lines = [
        "| Module | Cumulative (ms) | Self (ms) |",
        "|---|---:|---:|",
        _row([f"**`{found['statement']}`, in all**", _num(found["total_ms"], 1), DASH]),
    ]
    for module in found["top"]:
        lines.append(
            _row(
                [
                    f"`{module['module']}`",
                    _num(module["cumulative_ms"], 1),
                    _num(module["self_ms"], 1),
                ]
            )
        )
    return lines


def _within_runs(entry: dict[str, Any], ours: str, theirs: str) -> tuple[float | None, str]:
    """The ratio ``ours`` / ``theirs`` of two metrics of the same run, run by run: its median,
    and the median with its range as text."""
    ratios = []
    for run in entry["runs"]:
        a, b = _value_at(run, ours), _value_at(run, theirs)
        if a is not None and b is not None:
            ratios.append(a / b)
    if not ratios:
        return None, DASH
    middle = statistics.median(ratios)
    if len(ratios) == 1:
        return middle, f"{middle:.2f}{TIMES}"
    return middle, f"{middle:.2f}{TIMES} ({min(ratios):.2f}{DASH}{max(ratios):.2f})"


def history_table(results: dict[str, Any]) -> list[str]:
    """Burn-downs beside a kept history against the same on a fresh table measured alongside
    (run by run) and against the default-retention row (medians)."""
    kept = kept_entries(results)
    if not kept:
        return []
    jobs = results["options"]["jobs"]
    base = results["systems"].get(DOCKO_RETAIN)
    throughput, processing = "burn_down.throughput", "burn_down.processing_rate"
    lines = [
        f"| History kept (docko-worker, default retention, {jobs:,} queued) | Seeding (s) "
        "| Burn-down from worker start (jobs/s) | Processing rate (jobs/s) "
        "| Fresh table alongside: burn-down, processing (jobs/s) "
        "| Burn-down / fresh alongside, run by run "
        "| Processing rate / fresh alongside, run by run "
        "| Burn-down / default-retention row (medians) "
        f"| Exactly once | Issue target {GE} {HISTORY_TARGET:.2f}{TIMES} (burn-down, run by run) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for entry in kept:
        seed = entry.get("seed", {})
        paired, paired_text = _within_runs(entry, throughput, "fresh_burn_down.throughput")
        _, processing_text = _within_runs(entry, processing, "fresh_burn_down.processing_rate")
        fresh = (
            f"{_cell(entry, 'fresh_burn_down.throughput')}, "
            f"{_cell(entry, 'fresh_burn_down.processing_rate')}"
        )
        lines.append(
            _row(
                [
                    f"{entry['kept']:,} completed rows of the last 20 h",
                    _num(seed.get("seconds", math.nan)),
                    _cell(entry, throughput),
                    _cell(entry, processing),
                    fresh,
                    paired_text,
                    processing_text,
                    _versus(entry, base, throughput),
                    _exactly_once(entry),
                    _verdict(paired, HISTORY_TARGET),
                ]
            )
        )
    return lines


def pruning_table(results: dict[str, Any]) -> list[str]:
    """Latency while the pruner deletes a history past retention, beside the same daemon's once
    it is done and the default-retention row's."""
    pruning = results.get("docko_history", {}).get("pruning")
    if not pruning:
        return []
    systems = results["systems"]
    clean = systems.get(DOCKO_RETAIN) or systems.get(DOCKO)
    rows = pruning["rows"]
    percentiles = ("p50", "p95", "p99")
    lines = [
        "| Latency (docko-worker, default retention) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| p99 / after pruning, run by run | Rows pruned during the window | Pruning took (s) "
        "| Rows pruned per s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if clean:
        latency = [_cell(clean, f"latency.{p}_ms", 1) for p in percentiles]
        lines.append(_row([f"{clean['label']} (the latency table's row)", *latency, *[DASH] * 4]))
    latency = [_cell(pruning, f"latency_after.{p}_ms", 1) for p in percentiles]
    lines.append(_row(["same daemon, once pruning is done", *latency, *[DASH] * 4]))
    latency = [_cell(pruning, f"latency.{p}_ms", 1) for p in percentiles]
    _, paired = _within_runs(pruning, "latency.p99_ms", "latency_after.p99_ms")
    lines.append(
        _row(
            [
                f"while pruning {rows:,} rows past retention",
                *latency,
                paired,
                _cell(pruning, "pruning.pruned_in_window"),
                _cell(pruning, "pruning.pruning_seconds", 1),
                _cell(pruning, "pruning.prune_rate"),
            ]
        )
    )
    return lines


def _seconds_text(entry: dict[str, Any]) -> str:
    seed = entry.get("seed", {})
    return (
        f"{entry['kept']:,} rows: {entry.get('seconds', math.nan):.0f} s in all, seeding "
        f"{seed.get('seconds', math.nan):.0f} s (insert {seed.get('insert_seconds', math.nan):.0f}"
        f" s, `VACUUM ANALYZE` {seed.get('vacuum_seconds', math.nan):.0f} s, `CHECKPOINT` "
        f"{seed.get('checkpoint_seconds', math.nan):.1f} s), table "
        f"{seed.get('table_mb', math.nan):,.0f} MiB"
    )


def extra_sections(results: dict[str, Any]) -> list[str]:
    """The issue's scenarios, each a section of latest.md with a sentence on its method."""
    options, out = results["options"], []
    ceiling = ceiling_table(results)
    if ceiling:
        out += [
            "## The ceiling: docko-worker's statements in a bare loop",
            "",
            f"The same {options['jobs']:,} jobs enqueued into a fresh database, `CHECKPOINT`, "
            "then on one asyncpg connection under the daemon's generic plans `claim_jobs` "
            "(1,000 per claim, the daemon's batch) and `delete_completed_jobs` of each claimed "
            "batch, until a claim returns nothing: no handlers, no pool. Compared with the "
            "docko-worker row's processing rate (retention 0, which deletes the same way).",
            "",
            *ceiling,
            "",
        ]
    out += [
        "## Start-up to first claim",
        "",
        "From the burn-down runs: seconds from spawning the worker process to its first "
        "handler start (interpreter start-up, imports, connecting, schema check, first claim).",
        "",
        *startup_table(results),
        "",
    ]
    imports = import_table(results)
    if imports:
        found = results["docko_import"]
        out += [
            f'`python -X importtime -c "{found["statement"]}"` in `benchmarks/{found["python"]}`'
            f", median of {found['runs']} interpreter starts; the five modules below "
            "`docko_worker` with the largest cumulative time (each includes what it imports, so "
            "they overlap).",
            "",
            *imports,
            "",
        ]
    history = history_table(results)
    if history:
        out += [
            "## History without a slowdown",
            "",
            "Completed rows seeded as production leaves them (time-ordered UUIDv7 ids, created "
            "and finished over the last 20 hours, younger than the default retention, payloads "
            "of the benchmark's shape), `VACUUM ANALYZE`, `CHECKPOINT`; then, in each run, "
            f"{options['jobs']:,} jobs enqueued and burned down by the default-retention daemon "
            "(one seeded table per size serves every run, `VACUUM ANALYZE` between runs), and "
            "the same on a fresh table right before or after it (alternately), so each pair "
            "ran at the same moment of the shared machine; also against the default-retention "
            "row of the throughput table, measured minutes earlier. "
            + "; ".join(_seconds_text(entry) for entry in kept_entries(results))
            + ".",
            "",
            *history,
            "",
        ]
    pruning = pruning_table(results)
    if pruning:
        found = results["docko_history"]["pruning"]
        out += [
            "## Pruning does not stall claims",
            "",
            f"{found['rows']:,} completed rows finished two days ago (past the default "
            "retention) seeded as above, then a default-retention daemon with "
            f"`DOCKO_PRUNE_INTERVAL={options['prune_interval_s']:g}` and the latency scenario "
            "while it prunes them, then the same window again on the same daemon once they are "
            "gone (1 s after the last). Rows pruned during the window: the count past "
            "retention at "
            "the first enqueue minus the count once every job had run. Pruning took: from the "
            "first to the last look (every 50 ms, in `pg_stat_activity`) that found the prune "
            "statement running, up to its first pause of more than 0.5 s (the later sweeps, "
            f"every {options['prune_interval_s']:g} s with nothing to delete, do not count). "
            f"{found.get('seconds', math.nan):.0f} s for "
            f"{len(found['runs'])} run{'s' if len(found['runs']) != 1 else ''}.",
            "",
            *pruning,
            "",
        ]
    return out


EXTRA_METHOD = [
    "A `CHECKPOINT` runs right before every burn-down of every system (fresh and kept alike, "
    "pgqueuer and procrastinate too) and before the bare loop, so no run pays for the writes of "
    "the step before it (the enqueue's, a seed's).",
]
