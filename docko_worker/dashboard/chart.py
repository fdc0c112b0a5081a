"""Throughput charts: jobs finished per minute over the last hour, as SVG geometry.

Pure arithmetic on counts (no database, no markup): the templates draw a ``Chart``'s bars as
``<rect>`` elements of an inline SVG, each with a ``<title>`` saying its minute and counts.
Column 0 is the oldest minute, the last column the current one; completed jobs are stacked
under failed ones. Minutes the counts do not cover (see ``Activity.covered_minutes``) are
drawn as a shaded band, so a capped read never looks like an idle queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MINUTES = 60


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # "completed" or "failed"
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    # x and width of the band of minutes not counted (width 0: every minute counted).
    uncounted_width: float
    peak: int
    completed: int
    failed: int
    covered_minutes: int

    @property
    def empty(self) -> bool:
        return self.completed == 0 and self.failed == 0


def _minute_label(minutes_ago: int) -> str:
    return "this minute" if minutes_ago == 0 else f"{minutes_ago} min ago"


def minute_chart(
    per_minute: Sequence[tuple[int, int]],
    *,
    width: int = 240,
    height: int = 40,
    covered_minutes: int = MINUTES,
) -> Chart:
    """``per_minute[m]``: (completed, failed) ``m`` minutes ago, for m from 0 to 59."""
    counts = list(per_minute[:MINUTES]) + [(0, 0)] * (MINUTES - len(per_minute))
    peak = max((done + failed for done, failed in counts), default=0)
    step = width / MINUTES
    gap = min(1.0, step / 4)
    bars: list[Bar] = []
    for minutes_ago, (done, failed) in enumerate(counts):
        if minutes_ago >= covered_minutes or not peak:
            continue
        x = (MINUTES - 1 - minutes_ago) * step
        base = float(height)
        title = f"{_minute_label(minutes_ago)}: {done:,} completed, {failed:,} failed"
        for kind, count in (("completed", done), ("failed", failed)):
            if not count:
                continue
            # Never thinner than one unit: a single job is still seen.
            tall = max(count / peak * (height - 2), 1.0)
            base -= tall
            bars.append(
                Bar(round(x, 2), round(base, 2), round(step - gap, 2), round(tall, 2), kind, title)
            )
    uncounted = max(MINUTES - covered_minutes, 0) * step
    return Chart(
        width=width,
        height=height,
        bars=bars,
        uncounted_width=round(uncounted, 2),
        peak=peak,
        completed=sum(done for done, _ in counts[:covered_minutes]),
        failed=sum(failed for _, failed in counts[:covered_minutes]),
        covered_minutes=min(covered_minutes, MINUTES),
    )
