"""``latest.png``: throughput, enqueue rate, latency percentiles, scheduled-job lateness, and
docko at scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .report import kept_entries

THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}")

COLORS = {
    "docko": "#1f5fa8",
    "docko-retain": "#6fa3dc",
    "docko-sync": "#9b6fdc",
    "docko-metrics": "#3c7fc4",
    "pgqueuer-balanced": "#d9822b",
    "pgqueuer-volatile": "#f2b880",
    "procrastinate": "#5b9b4b",
}


def _value(entry: dict[str, Any], metric: str) -> tuple[float, float, float] | None:
    found = entry.get("summary", {}).get(metric)
    if not found:
        return None
    return found["median"], found["median"] - found["low"], found["high"] - found["median"]


def _bars(ax: Axes, labels: list[str], colors: list[str], values: list[Any], unit: str) -> None:
    """Horizontal bars with min-max whiskers and the median printed at the end."""
    positions = list(range(len(labels)))[::-1]
    medians = [v[0] if v else 0.0 for v in values]
    errors = [[v[1] if v else 0 for v in values], [v[2] if v else 0 for v in values]]
    ax.barh(positions, medians, color=colors, xerr=errors, capsize=3, ecolor="#333333")
    ax.set_yticks(positions, labels)
    ax.set_xlabel(unit)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(THOUSANDS)
    right = max((m + e for m, e in zip(medians, errors[1], strict=True)), default=1) or 1
    ax.set_xlim(0, right * 1.28)
    for position, median, above in zip(positions, medians, errors[1], strict=True):
        ax.text(median + above + right * 0.02, position, f"{median:,.0f}", va="center", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)


def _percentile_bars(ax: Axes, rows: list[tuple[str, dict[str, Any], str]]) -> None:
    """Grouped horizontal bars: p50, p95, p99 of each (label, entry, metric prefix) row, log
    scale, whiskers min-max; rows without data are left out."""
    rows = [row for row in rows if _value(row[1], f"{row[2]}.p50_ms")]
    height = 0.8 / 3
    percentiles = [("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")]
    for index, (metric, name) in enumerate(percentiles):
        ys = [len(rows) - 1 - k + (1 - index) * height for k in range(len(rows))]
        found = [
            _value(entry, f"{prefix}.{metric}") or (0.0, 0.0, 0.0) for _, entry, prefix in rows
        ]
        ax.barh(
            ys,
            [v[0] for v in found],
            height,
            xerr=[[v[1] for v in found], [v[2] for v in found]],
            capsize=2,
            ecolor="#333333",
            label=name,
            color=["#c6dbef", "#6baed6", "#08519c"][index],
            edgecolor="#333333",
            linewidth=0.4,
        )
        for y, value in zip(ys, found, strict=True):
            ax.text((value[0] + value[2]) * 1.08, y, f"{value[0]:.1f}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows))[::-1], [label for label, _, _ in rows])
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_xlim()
    ax.set_xlim(low, high * 2)
    ax.set_xlabel("ms, log scale (lower is better)")
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)


def _lateness_rows(systems: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """One row per system taking part and enqueue API, in table order."""
    return [
        (f"{entry['label']}, {api}", entry, f"lateness.{api}")
        for entry in systems.values()
        if entry.get("measures_lateness")
        for api in ("enqueue", "enqueue_many")
        if _value(entry, f"lateness.{api}.p50_ms")
    ]


def write_chart(results: dict[str, Any], path: Path) -> None:
    systems = results["systems"]
    scale = results.get("docko_scale", {}) or kept_entries(results)
    jobs = results["options"]["jobs"]
    labels = [entry["label"] for entry in systems.values()]
    colors = [COLORS.get(key, "#888888") for key in systems]
    lateness = _lateness_rows(systems)
    # Throughput, enqueue and latency; the lateness of delayed jobs; docko at scale.
    heights = (
        [1.0, 1.0] + ([0.2 + 0.12 * len(lateness)] if lateness else []) + ([1.0] if scale else [])
    )
    fig = plt.figure(figsize=(13, 4.2 * sum(heights)), layout="constrained")
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights)

    ax = fig.add_subplot(grid[0, 0])
    values = [_value(entry, "burn_down.throughput") for entry in systems.values()]
    _bars(ax, labels, colors, values, "jobs/s (from worker start; higher is better)")
    ax.set_title(f"Burn-down of {jobs:,} queued no-op jobs")

    ax = fig.add_subplot(grid[0, 1])
    values = [_value(entry, "burn_down.processing_rate") for entry in systems.values()]
    _bars(ax, labels, colors, values, "jobs/s (from first handler start)")
    ax.set_title("Processing rate during that burn-down")

    ax = fig.add_subplot(grid[1, 0])
    values = [_value(entry, "enqueue.rate") for entry in systems.values()]
    _bars(ax, labels, colors, values, "jobs/s (bulk API, 5,000 per call)")
    ax.set_title(f"Bulk enqueue of {jobs:,} jobs")

    ax = fig.add_subplot(grid[1, 1])
    _percentile_bars(ax, [(entry["label"], entry, "latency") for entry in systems.values()])
    ax.set_title("Latency: enqueue \u2192 handler start")

    if lateness:
        options = results["options"]
        ax = fig.add_subplot(grid[2, :])
        _percentile_bars(ax, lateness)
        ax.set_title(
            "Scheduled-job lateness: due time (run_at) \u2192 handler start, idle worker "
            f"polling every {options['lateness_poll_interval_s']:g} s"
        )

    if scale:
        ax = fig.add_subplot(grid[len(heights) - 1, :])
        _scale(ax, results)

    runs, million = results["options"]["runs"], results["options"]["million_runs"]
    note = f" ({million} for the million-row bars)" if scale and million != runs else ""
    fig.suptitle(
        f"docko-worker vs peers: median of {runs} run{'s' if runs != 1 else ''}{note}, "
        f"whiskers min\u2013max ({results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"{results['machine']['date']})",
        fontsize=11,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scale(ax: Axes, results: dict[str, Any]) -> None:
    systems, scale, options = results["systems"], results.get("docko_scale", {}), results["options"]
    jobs = options["jobs"]
    bars: list[tuple[str, str, Any]] = []
    if "docko" in systems:
        bars.append((f"{jobs:,} queued\nretention 0", "docko", systems["docko"]))
    if "million_queued" in scale:
        n, first = options["million_jobs"], options["million_milestone"]
        bars.append((f"{n:,} queued, retention 0", "docko", scale["million_queued"]))
        bars.append((f"{n:,} queued, first {first:,}", "docko", scale["million_queued"]))
    if "docko-retain" in systems:
        bars.append(
            (f"{jobs:,} queued\ndefault retention", "docko-retain", systems["docko-retain"])
        )
    for entry in kept_entries(results):
        label = f"{entry['kept']:,} kept + {jobs:,} queued\ndefault retention"
        bars.append((label, "docko-retain", entry))
    values = [
        _value(
            entry,
            "burn_down.milestone.throughput" if ", first " in label else "burn_down.throughput",
        )
        for label, _, entry in bars
    ]
    _bars(
        ax,
        [label.replace("\n", ", ") for label, _, _ in bars],
        [COLORS[key] for _, key, _ in bars],
        values,
        "jobs/s (from worker start)",
    )
    ax.set_title("docko-worker burn-down as the table grows")
