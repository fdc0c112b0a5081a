"""``python -m harness``: run the benchmark and write ``results/latest.{json,md,png}``.

python -m harness                                   # the full run (about 10-15 minutes)
python -m harness --runs 1 --skip-million --systems docko --jobs 5000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import cliffs
from .adapters import SYSTEM_KEYS, System, make_systems
from .chart import write_chart
from .db import DEFAULT_DSN
from .machine import describe
from .producers import measure_producers
from .report import add_summaries, write_json, write_markdown
from .runner import run_million_kept, run_million_queued, run_system
from .scenarios import LATENESS_BATCH, Options

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Benchmark docko-worker against pgqueuer and procrastinate on one PostgreSQL.",
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DSN),
        help="admin DSN; scratch databases are created next to it "
        "(default: $BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per system (default 3)")
    parser.add_argument("--jobs", type=int, default=20_000, help="burn-down jobs (20000)")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEM_KEYS),
        help="comma-separated: docko (every docko row), docko-retain, docko-sync, docko-metrics "
        "(the HTTP endpoint on), pgqueuer (both durabilities), pgqueuer-balanced, "
        "pgqueuer-volatile, procrastinate (default: all)",
    )
    parser.add_argument(
        "--producer-singles",
        type=int,
        default=2000,
        help="jobs enqueued one transaction each, per driver, in the producers scenario (2000)",
    )
    parser.add_argument(
        "--skip-producers",
        action="store_true",
        help="skip docko's producers scenario (enqueue through asyncpg and psycopg)",
    )
    parser.add_argument(
        "--skip-million", action="store_true", help="skip docko's million-row scenarios"
    )
    parser.add_argument("--million-jobs", type=int, default=1_000_000, help="(1000000)")
    parser.add_argument(
        "--million-milestone",
        type=int,
        default=200_000,
        help="also report the rate until this many of them finished (200000)",
    )
    parser.add_argument(
        "--kept-rows", type=int, default=1_000_000, help="completed rows kept (1000000)"
    )
    parser.add_argument(
        "--million-runs", type=int, default=3, help="runs of each million-row scenario (3)"
    )
    parser.add_argument("--latency-jobs", type=int, default=200, help="(200)")
    parser.add_argument("--latency-interval-ms", type=float, default=20.0, help="(20)")
    parser.add_argument(
        "--lateness-jobs",
        type=int,
        default=100,
        help="scheduled-job lateness (docko-worker only): jobs enqueued with a delay through "
        "each of the single and bulk APIs; 0 skips it (100)",
    )
    parser.add_argument(
        "--procrastinate-concurrency", type=int, default=20, help="worker --concurrency (20)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS_DIR, help="where latest.* go (%(default)s)"
    )
    cliffs.add_arguments(parser)
    return parser


def log(message: str) -> None:
    print(message, flush=True)


async def _attempt(entry: dict[str, Any], coroutine: Any) -> None:
    """Run one scenario; a failure is recorded in the results instead of ending the benchmark."""
    try:
        entry["runs"].append(await coroutine)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        log(f"  FAILED: {detail}")
        entry["runs"].append({"error": detail})


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    if args.only_cliffs:
        args.runs, args.skip_million, args.skip_producers = 0, True, True
    systems: list[System] = make_systems(
        [key.strip() for key in args.systems.split(",") if key.strip()],
        procrastinate_concurrency=args.procrastinate_concurrency,
    )
    output: Path = args.output_dir
    log_dir = output / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="dockobench-"))
    options = Options(
        jobs=args.jobs,
        latency_jobs=args.latency_jobs,
        latency_interval=args.latency_interval_ms / 1000,
        lateness_jobs=args.lateness_jobs,
        work_dir=work_dir,
        log_dir=log_dir,
    )
    results: dict[str, Any] = {
        "machine": await describe(args.dsn, systems),
        "options": {
            "runs": args.runs,
            "jobs": args.jobs,
            "latency_jobs": args.latency_jobs,
            "latency_interval_ms": args.latency_interval_ms,
            "lateness_jobs": args.lateness_jobs,
            "lateness_poll_interval_s": options.lateness_poll_interval,
            "lateness_delay_s": list(options.lateness_delay),
            "lateness_interval_ms": options.lateness_interval * 1000,
            "lateness_per_call": LATENESS_BATCH,
            "million_jobs": args.million_jobs,
            "million_milestone": args.million_milestone,
            "kept_rows": args.kept_rows,
            "million_runs": 0 if args.skip_million else args.million_runs,
            "producer_singles": args.producer_singles,
            "cliffs": cliffs.describe_options(args),
        },
        "systems": {
            system.key: {
                "label": system.label,
                "version": system.version(),
                "settings": system.settings(),
                "measures_lateness": system.measures_lateness and args.lateness_jobs > 0,
                "runs": [],
            }
            for system in systems
        },
    }
    producers: dict[str, Any] | None = None
    if not args.skip_producers and any(s.key.startswith("docko") for s in systems):
        producers = {"label": "docko-worker producers", "runs": []}
        results["docko_producers"] = producers
    try:
        for run in range(1, args.runs + 1):
            # Rotate the order so no system always runs first (or right after another).
            shift = (run - 1) % len(systems)
            order = systems[shift:] + systems[:shift]
            log(f"run {run}/{args.runs}: {', '.join(s.label for s in order)}")
            for system in order:
                entry = results["systems"][system.key]
                await _attempt(entry, run_system(system, args.dsn, options, run, log))
            if producers is not None:
                log("  docko-worker producers on a caller's connection")
                await _attempt(
                    producers,
                    measure_producers(args.dsn, args.jobs, args.producer_singles, log),
                )
        if not args.skip_million and any(s.key.startswith("docko") for s in systems):
            scale: dict[str, Any] = {
                "million_queued": {"label": f"docko {args.million_jobs:,} queued", "runs": []},
                "million_kept": {"label": f"docko {args.kept_rows:,} kept", "runs": []},
            }
            results["docko_scale"] = scale
            for run in range(1, args.million_runs + 1):
                log(f"docko at scale, run {run}/{args.million_runs}")
                await _attempt(
                    scale["million_queued"],
                    run_million_queued(
                        args.dsn, options, args.million_jobs, args.million_milestone, run, log
                    ),
                )
                await _attempt(
                    scale["million_kept"],
                    run_million_kept(args.dsn, options, args.kept_rows, run, log),
                )
        if any(s.key.startswith("docko") for s in systems):
            found = await cliffs.run_cliffs(args.dsn, options, args, _attempt, log)
            if found:
                results[cliffs.RESULTS_KEY] = found
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results["total_seconds"] = time.perf_counter() - started
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = asyncio.run(benchmark(args))
    except KeyboardInterrupt:
        return 130
    add_summaries(results)
    output: Path = args.output_dir
    write_json(results, output / "latest.json")
    write_chart(results, output / "latest.png")
    write_markdown(results, output / "latest.md", "latest.png")
    log(f"wrote {output / 'latest.md'}, latest.json, latest.png")
    log(f"total {results['total_seconds'] / 60:.1f} min")
    failed = any(
        "error" in run
        for entry in [
            *results["systems"].values(),
            *results.get("docko_scale", {}).values(),
            *([results["docko_producers"]] if "docko_producers" in results else []),
        ]
        for run in entry["runs"]
    )
    return 1 if failed or cliffs.failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
