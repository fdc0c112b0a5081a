"""``python -m harness``: run the benchmark and write ``results/latest.{json,md,png}``.

python -m harness                                   # the full run (about 12-17 minutes)
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
from .ceiling import measure_bare_loop
from .chart import write_chart
from .db import DEFAULT_DSN
from .history import run_kept, run_pruning
from .machine import describe
from .producers import measure_producers
from .report import add_summaries, write_json, write_markdown
from .runner import run_million_queued, run_system
from .scenarios import LATENESS_BATCH, Options
from .startup import measure_import_time

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
        "--skip-million",
        action="store_true",
        help="skip docko's million-row scenarios (1M queued, history kept, pruning)",
    )
    parser.add_argument(
        "--million-jobs", type=int, default=1_000_000, help="jobs queued at once; 0 skips (1000000)"
    )
    parser.add_argument(
        "--million-milestone",
        type=int,
        default=200_000,
        help="also report the rate until this many of them finished (200000)",
    )
    parser.add_argument(
        "--kept-rows",
        type=_sizes,
        default=[1_000_000, 5_000_000],
        help="comma-separated sizes of the history kept (completed rows of the last 20 hours) "
        "under a burn-down with the default retention, one seeded table each; 0 skips "
        "(1000000,5000000)",
    )
    parser.add_argument(
        "--prune-rows",
        type=int,
        default=1_000_000,
        help="completed rows past retention that the daemon prunes during the latency "
        "measurement; 0 skips (1000000)",
    )
    parser.add_argument(
        "--prune-interval",
        type=float,
        default=1.0,
        help="DOCKO_PRUNE_INTERVAL of the pruning daemon, seconds (1)",
    )
    parser.add_argument(
        "--skip-bare-loop",
        action="store_true",
        help="skip the bare claim-and-delete loop (docko's statements alone, the ceiling)",
    )
    parser.add_argument(
        "--import-runs",
        type=int,
        default=5,
        help="interpreter starts timing `import docko_worker.cli` (-X importtime); 0 skips (5)",
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


def _sizes(text: str) -> list[int]:
    """``1000000,5000000`` as a list; 0 (or nothing) is none."""
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if any(size < 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes cannot be negative: {text!r}")
    return [size for size in sizes if size > 0]


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
            "prune_rows": args.prune_rows,
            "prune_interval_s": args.prune_interval,
            "bare_loop": not args.skip_bare_loop,
            "import_runs": args.import_runs,
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
    with_docko = any(s.key.startswith("docko") for s in systems)
    ceiling: dict[str, Any] | None = None
    if not args.skip_bare_loop and with_docko:
        ceiling = {"label": "docko bare claim-and-delete loop", "runs": []}
        results["docko_ceiling"] = ceiling
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
            if ceiling is not None:
                await _attempt(ceiling, measure_bare_loop(args.dsn, args.jobs, run, log))
            if producers is not None:
                log("  docko-worker producers on a caller's connection")
                await _attempt(
                    producers,
                    measure_producers(args.dsn, args.jobs, args.producer_singles, log),
                )
        if not args.skip_million and any(s.key.startswith("docko") for s in systems):
            scale: dict[str, Any] = {
                "million_queued": {"label": f"docko {args.million_jobs:,} queued", "runs": []},
            }
            if args.million_jobs > 0:
                results["docko_scale"] = scale
            for run in range(1, args.million_runs + 1 if args.million_jobs > 0 else 1):
                log(f"docko at scale, run {run}/{args.million_runs}")
                await _attempt(
                    scale["million_queued"],
                    run_million_queued(
                        args.dsn, options, args.million_jobs, args.million_milestone, run, log
                    ),
                )
            results["docko_history"] = await run_history(args, options)
        if args.import_runs > 0 and with_docko:
            log(f"docko: import docko_worker.cli, {args.import_runs} times (-X importtime)")
            results["docko_import"] = await measure_import_time(args.import_runs)
        if with_docko:
            found = await cliffs.run_cliffs(args.dsn, options, args, _attempt, log)
            if found:
                results[cliffs.RESULTS_KEY] = found
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results["total_seconds"] = time.perf_counter() - started
    return results


async def run_history(args: argparse.Namespace, options: Options) -> dict[str, Any]:
    """docko with a long history: each kept size (seeded once, ``--million-runs`` burn-downs),
    then ``--million-runs`` latency runs while the pruner deletes ``--prune-rows``."""
    history: dict[str, Any] = {}
    for kept in args.kept_rows:
        log(f"docko with {kept:,} completed rows kept")
        started = time.perf_counter()
        try:
            entry = await run_kept(args.dsn, options, kept, args.million_runs, log, _attempt)
        except Exception as exc:  # the seeding failed: no run of this size
            detail = "".join(traceback.format_exception_only(exc)).strip()
            log(f"  FAILED: {detail}")
            entry = {"label": f"docko {kept:,} kept", "kept": kept, "runs": [{"error": detail}]}
        entry["seconds"] = time.perf_counter() - started
        history[f"kept_{kept}"] = entry
    if args.prune_rows > 0:
        pruning: dict[str, Any] = {
            "label": f"docko pruning {args.prune_rows:,} rows",
            "rows": args.prune_rows,
            "runs": [],
        }
        history["pruning"] = pruning
        started = time.perf_counter()
        for run in range(1, args.million_runs + 1):
            log(f"docko latency while pruning, run {run}/{args.million_runs}")
            await _attempt(
                pruning,
                run_pruning(args.dsn, options, args.prune_rows, args.prune_interval, run, log),
            )
        pruning["seconds"] = time.perf_counter() - started
    return history


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
            *results.get("docko_history", {}).values(),
            *([results["docko_ceiling"]] if "docko_ceiling" in results else []),
        ]
        for run in entry["runs"]
    )
    return 1 if failed or cliffs.failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
