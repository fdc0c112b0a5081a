"""What the demo shows while it runs: status lines, the progress line, and how tables are laid out.

This module owns the demo's output stream: ``Display`` writes status lines and progress, redrawn in
place on a terminal and one line per second otherwise, and ``quiet_simulated_failures`` keeps log
lines from garbling the progress line and drops the log events of the simulated failures (the
summary counts them). ``table`` lays out rows under column headers, as the summary shows them.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import structlog


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    retried: int
    failed: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


class Display:
    """What the demo shows on ``stream``: status lines, progress and the summary.

    On a terminal, progress is one line redrawn in place; otherwise one line per second.
    """

    BAR_WIDTH = 20

    def __init__(self, stream: TextIO) -> None:
        self._out = stream
        self.tty = stream.isatty()
        self._live = False  # a progress line is on screen without its newline
        self._drawn_at = -math.inf

    def say(self, text: str = "") -> None:
        self.clear_line()
        self._out.write(text + "\n")
        self._out.flush()

    def clear_line(self) -> None:
        """Erase the live progress line (before a log line or a message takes its place)."""
        if self._live:
            self._out.write("\r\x1b[K")
            self._out.flush()
            self._live = False

    def end_progress(self) -> None:
        """Keep the last progress line on screen and move below it."""
        if self._live:
            self._out.write("\n")
            self._out.flush()
            self._live = False

    def progress(self, progress: Progress, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < (0.1 if self.tty else 1.0):
            return
        self._drawn_at = now
        percent = 100 * progress.done // max(progress.total, 1)
        counts = (
            f"{progress.rate:,.0f} jobs/s  retried {progress.retried}  failed {progress.failed}"
        )
        if self.tty:
            filled = self.BAR_WIDTH * progress.done // max(progress.total, 1)
            bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
            line = (
                f"[{bar}] {progress.done:>{len(str(progress.total))}}/{progress.total} "
                f"{percent:>3}%  {counts}"
            )
            width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be redrawn
            self._out.write("\r" + line[:width] + "\x1b[K")
            self._live = True
        else:
            self._out.write(
                f"{progress.elapsed:6.1f} s  {progress.done}/{progress.total} done ({percent}%)"
                f"  {counts}\n"
            )
        self._out.flush()


def quiet_simulated_failures(
    display: Display, errors: Iterable[type[Exception]]
) -> Callable[..., MutableMapping[str, Any]]:
    """A structlog processor: drops retry/failure events of ``errors``, clears progress."""
    prefixes = tuple(f"{error.__name__}:" for error in errors)

    def processor(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event_dict.get("event") in ("job_retry_scheduled", "job_failed") and str(
            event_dict.get("error", "")
        ).startswith(prefixes):
            raise structlog.DropEvent
        display.clear_line()
        return event_dict

    return processor


def table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = ()
) -> list[str]:
    """``header`` and ``rows`` (as many cells each) in columns two spaces apart, header first; the
    columns numbered in ``right`` are right-aligned (numbers)."""
    lines = [list(header), *(list(row) for row in rows)]
    aligned_right = set(right)
    widths = [max(len(cells[i]) for cells in lines) for i in range(len(header))]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in aligned_right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()
        for cells in lines
    ]
