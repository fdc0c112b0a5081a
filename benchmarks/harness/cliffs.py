"""docko-worker's cliff scenarios: the loads under which a queue daemon falls off a cliff.

Four scenarios, docko-worker only, each in fresh databases of its own, each on by default and
skipped with its own flag (``add_arguments``): a backlog of jobs no handler serves
(``cliff_backlog``), a snapshot held open while jobs stream through (``cliff_snapshot``), many
queues served by one daemon (``cliff_queues``), and thousands of long-running jobs whose leases
the heartbeat keeps (``cliff_long``). ``run_cliffs`` runs the selected ones and returns their
results for ``results["docko_cliffs"]``, each entry with a ``runs`` list as the other scenarios
have (a failed run holds its ``error``); ``cliffs_report`` writes them into ``latest.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .cliff_backlog import measure_backlog
from .cliff_long import LongOptions, measure_long_jobs
from .cliff_queues import measure_many_queues
from .cliff_snapshot import HeldOptions, measure_held_snapshot
from .scenarios import Options

Log = Callable[[str], None]
Attempt = Callable[[dict[str, Any], Any], Any]

RESULTS_KEY = "docko_cliffs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("docko-worker cliff scenarios (docko only, each on)")
    group.add_argument(
        "--only-cliffs",
        action="store_true",
        help="run the cliff scenarios alone: no per-system runs, producers, million-row or "
        "lateness scenarios",
    )
    group.add_argument("--skip-backlog", action="store_true", help="skip the unknown-type backlog")
    group.add_argument(
        "--backlog-jobs", type=int, default=100_000, help="unhandled jobs queued first (100000)"
    )
    group.add_argument("--skip-held-snapshot", action="store_true", help="skip the held snapshot")
    group.add_argument(
        "--held-seconds", type=float, default=120.0, help="how long the snapshot is held (120)"
    )
    group.add_argument(
        "--held-before-seconds", type=float, default=15.0, help="load before the hold (15)"
    )
    group.add_argument(
        "--held-after-seconds", type=float, default=60.0, help="load after the release (60)"
    )
    group.add_argument("--held-rate", type=int, default=1000, help="jobs/s enqueued (1000)")
    group.add_argument(
        "--held-retentions",
        default="86400,0",
        help="comma-separated DOCKO_COMPLETED_RETENTION values, one held-snapshot run each "
        "(86400,0)",
    )
    group.add_argument(
        "--held-no-vacuum-emulation",
        action="store_true",
        help="where the server's autovacuum is off, do not emulate it on docko_jobs during the "
        "held-snapshot scenario",
    )
    group.add_argument("--skip-many-queues", action="store_true", help="skip the many queues")
    group.add_argument("--queues-count", type=int, default=200, help="queues (200)")
    group.add_argument("--queue-jobs", type=int, default=100, help="jobs per queue (100)")
    group.add_argument(
        "--queues-runs", type=int, default=3, help="runs of the many-queue comparison (3)"
    )
    group.add_argument(
        "--skip-long-jobs", action="store_true", help="skip the long-running jobs held"
    )
    group.add_argument("--long-jobs", type=int, default=10_000, help="long-running jobs (10000)")
    group.add_argument(
        "--long-seconds", type=float, default=60.0, help="each long job's sleep (60)"
    )
    group.add_argument(
        "--long-lease", type=float, default=15.0, help="DOCKO_VISIBILITY_TIMEOUT there (15)"
    )
    group.add_argument(
        "--long-heartbeat", type=float, default=5.0, help="DOCKO_HEARTBEAT_INTERVAL there (5)"
    )


def _held(args: argparse.Namespace) -> HeldOptions:
    return HeldOptions(
        before=args.held_before_seconds,
        hold=args.held_seconds,
        after=args.held_after_seconds,
        rate=args.held_rate,
        emulate_autovacuum=not args.held_no_vacuum_emulation,
    )


def _long(args: argparse.Namespace) -> LongOptions:
    return LongOptions(
        jobs=args.long_jobs,
        seconds=args.long_seconds,
        lease=args.long_lease,
        heartbeat=args.long_heartbeat,
    )


def describe_options(args: argparse.Namespace) -> dict[str, Any]:
    """The cliff options, for ``results["options"]["cliffs"]``."""
    held, long = _held(args), _long(args)
    return {
        "backlog_jobs": None if args.skip_backlog else args.backlog_jobs,
        "held_snapshot": None
        if args.skip_held_snapshot
        else {
            "before_s": held.before,
            "hold_s": held.hold,
            "after_s": held.after,
            "rate": held.rate,
            "per_call": held.per_call,
            "window_s": held.window,
            "recovery_window_s": held.recovery_window,
            "retentions": _retentions(args),
            "emulate_autovacuum": held.emulate_autovacuum,
        },
        "many_queues": None
        if args.skip_many_queues
        else {"queues": args.queues_count, "per_queue": args.queue_jobs, "runs": args.queues_runs},
        "long_jobs": None
        if args.skip_long_jobs
        else {
            "jobs": long.jobs,
            "seconds": long.seconds,
            "lease_s": long.lease,
            "heartbeat_s": long.heartbeat,
            "sample_ms": long.sample * 1000,
        },
    }


def _retentions(args: argparse.Namespace) -> list[int]:
    return [int(part) for part in args.held_retentions.split(",") if part.strip()]


async def run_cliffs(
    admin_dsn: str, options: Options, args: argparse.Namespace, attempt: Attempt, log: Log
) -> dict[str, Any]:
    """Run the selected cliff scenarios; ``attempt(entry, coroutine)`` records each run."""
    cliffs: dict[str, Any] = {}
    if not args.skip_backlog:
        log("docko cliffs: unknown-type backlog")
        cliffs["backlog"] = {"label": "unknown-type backlog", "runs": []}
        await attempt(
            cliffs["backlog"], measure_backlog(admin_dsn, options, args.backlog_jobs, log)
        )
    if not args.skip_many_queues:
        cliffs["many_queues"] = {"label": "many queues", "runs": []}
        for run in range(1, args.queues_runs + 1):
            log(f"docko cliffs: many queues, run {run}/{args.queues_runs}")
            await attempt(
                cliffs["many_queues"],
                measure_many_queues(
                    admin_dsn, options, args.queues_count, args.queue_jobs, run, log
                ),
            )
    if not args.skip_long_jobs:
        log("docko cliffs: long-running jobs held")
        cliffs["long_jobs"] = {"label": "long-running jobs held", "runs": []}
        await attempt(cliffs["long_jobs"], measure_long_jobs(admin_dsn, options, _long(args), log))
    if not args.skip_held_snapshot:
        cliffs["held_snapshot"] = {"label": "held snapshot", "runs": []}
        for retention in _retentions(args):
            log(f"docko cliffs: held snapshot, retention {retention}")
            await attempt(
                cliffs["held_snapshot"],
                measure_held_snapshot(admin_dsn, options, _held(args), retention, log),
            )
    return cliffs


def failed(results: dict[str, Any]) -> bool:
    """Whether a cliff scenario's run failed (an error, not a missed target)."""
    return any(
        "error" in run for entry in results.get(RESULTS_KEY, {}).values() for run in entry["runs"]
    )
