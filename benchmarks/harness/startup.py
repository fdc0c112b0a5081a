"""How long importing docko-worker's CLI takes in its worker environment (``python -X importtime``).

The daemon's start-up to its first claim is read from the burn-down runs (``first_job_after``);
this measures the part of it spent importing, in ``benchmarks/.venv-docko`` as deployed: the
total of ``import docko_worker.cli`` and the modules that take longest, cumulative (each with
what it imports), median over several interpreter starts.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

from .adapters.base import BENCHMARKS_DIR

IMPORT = "import docko_worker.cli"
ROOT_PACKAGE = "docko_worker"
TOP_MODULES = 5


def docko_python() -> str:
    """The docko worker environment's interpreter, else the harness's own."""
    own = BENCHMARKS_DIR / ".venv-docko" / "bin" / "python"
    return str(own) if own.exists() else sys.executable


def parse_importtime(stderr: str) -> tuple[float, dict[str, tuple[float, float]]]:
    """From ``-X importtime`` output: the microseconds importing ``docko_worker`` took (the
    cumulative times of its top-level lines; the other top-level lines are the interpreter's own
    start-up) and ``{module: (self us, cumulative us)}`` of the modules it imported. A module's
    line comes after those of the modules it imported, so each top-level line closes a group."""
    total = 0.0
    modules: dict[str, tuple[float, float]] = {}
    group: dict[str, tuple[float, float]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        module = name.strip()
        if name[1:].startswith(" "):  # nested: imported by a later top-level line
            group[module] = (float(self_us), float(cumulative_us))
            continue
        if module == ROOT_PACKAGE or module.startswith(ROOT_PACKAGE + "."):
            total += float(cumulative_us)
            modules.update(group)
        group = {}
    return total, modules


async def _import_once(python: str) -> str:
    process = await asyncio.create_subprocess_exec(
        python,
        "-X",
        "importtime",
        "-c",
        IMPORT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{IMPORT} failed: {stderr.decode()[-2000:]}")
    return stderr.decode()


async def measure_import_time(runs: int) -> dict[str, Any]:
    """``runs`` interpreter starts importing ``docko_worker.cli``; medians in milliseconds."""
    python = docko_python()
    totals: list[float] = []
    per_module: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        total, modules = parse_importtime(await _import_once(python))
        totals.append(total / 1000)
        for module, times in modules.items():
            per_module.setdefault(module, []).append(times)
    medians = {
        module: (
            statistics.median(t[0] for t in times) / 1000,
            statistics.median(t[1] for t in times) / 1000,
        )
        for module, times in per_module.items()
    }
    # The package itself takes nearly the total: the modules under it say where the time goes.
    ranked = [item for item in medians.items() if item[0] != ROOT_PACKAGE]
    top = sorted(ranked, key=lambda item: item[1][1], reverse=True)[:TOP_MODULES]
    return {
        "python": str(Path(python).parent.parent.name),
        "statement": IMPORT,
        "runs": runs,
        "total_ms": statistics.median(totals),
        "total_ms_runs": totals,
        "top": [
            {"module": module, "self_ms": self_ms, "cumulative_ms": cumulative_ms}
            for module, (self_ms, cumulative_ms) in top
        ],
    }
