"""The ``docko-worker`` command: run, migrate, enqueue, stats, healthcheck, periodic, demo.

Configuration comes from ``DOCKO_*`` environment variables (see ``docko_worker.config``). Mistakes
a user can make (bad configuration, an unknown option, a handler entry point that will not
import, a payload that is not JSON, a database that refuses the credentials) print one line on
stderr and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import asyncpg
import structlog

from .config import Config, load_config, redact_dsn, unknown_env_vars
from .daemon import remember_early_signals, run_async, run_daemon
from .errors import DockoError
from .logs import configure_logging
from .migrations import migrate, pending_migrations
from .periodic import PERIODIC_ENTRY_POINT_GROUP
from .pool import CONNECT_ERRORS, connect
from .queue import Queue
from .registry import ENTRY_POINT_GROUP, HandlerRegistry, load_periodic_entry_points

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1
PROG = "docko-worker"

log = structlog.get_logger("docko_worker.cli")

ENVIRONMENT_HELP = """\
configuration (environment variables; durations in seconds):
  DOCKO_DATABASE_URL      PostgreSQL DSN (falls back to DATABASE_URL)
  DOCKO_QUEUES            comma-separated queues to serve (default: default)
  DOCKO_WORKER_COUNT      concurrent jobs (default: 4)
  DOCKO_POLL_INTERVAL     idle poll interval (default: 1)
  DOCKO_VISIBILITY_TIMEOUT  lease; a dead worker's job is reclaimed after it (default: 300)
  DOCKO_MAX_ATTEMPTS      default attempts per job (default: 5)
  DOCKO_BASE_RETRY_DELAY / DOCKO_MAX_RETRY_DELAY  backoff base and cap (default: 1 / 3600)
  DOCKO_JOB_TIMEOUT       per-job time limit (default: none)
  DOCKO_SHUTDOWN_TIMEOUT  grace for running jobs on SIGTERM (default: 30)
  DOCKO_LISTEN            false: poll only, no LISTEN (e.g. behind PgBouncer) (default: true)
  DOCKO_STATEMENT_CACHE_SIZE  0 behind PgBouncer in transaction mode (default: 100)
  DOCKO_AUTO_MIGRATE      migrate when `run` starts (default: true)
  DOCKO_COMPLETED_RETENTION / DOCKO_FAILED_RETENTION  keep finished jobs (default: 86400 / 604800)
  DOCKO_HEALTH_FILE       file touched while healthy, read by `healthcheck`
  DOCKO_LOG_LEVEL         debug | info | warning | error (default: info)
  DOCKO_LOG_FORMAT        json | console (default: console on a TTY, json otherwise)
The README lists every setting.
"""


class UsageError(DockoError):
    """A command-line mistake: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="PostgreSQL-backed job queue and worker daemon.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=ENVIRONMENT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    add(
        "run",
        "Run the worker daemon: serve DOCKO_QUEUES with the handlers of every installed "
        f"'{ENTRY_POINT_GROUP}' entry point, and enqueue the periodic jobs of every "
        f"'{PERIODIC_ENTRY_POINT_GROUP}' entry point, until SIGTERM or SIGINT.",
    )
    migrate_cmd = add("migrate", "Apply the database migrations (a no-op when up to date).")
    migrate_cmd.add_argument(
        "--check", action="store_true", help="only report pending migrations; exit 1 if any"
    )
    enqueue = add("enqueue", "Enqueue one job and print its id.")
    enqueue.add_argument("queue", metavar="QUEUE", help="queue name")
    enqueue.add_argument("job_type", metavar="TYPE", help="job type (the handler's name)")
    enqueue.add_argument("payload", metavar="JSON", help="payload, as JSON")
    enqueue.add_argument("--priority", type=int, default=0, help="lower runs first (default 0)")
    enqueue.add_argument("--delay", type=float, default=None, help="seconds before it is due")
    enqueue.add_argument("--max-attempts", type=int, default=None, help="attempts before failing")
    enqueue.add_argument("--dedupe-key", default=None, help="return the unfinished job holding it")
    stats = add("stats", "Show job counts per queue, job type and state.")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    health = add("healthcheck", "Exit 0 if the daemon touched DOCKO_HEALTH_FILE recently.")
    health.add_argument(
        "--max-age", type=float, default=30.0, help="seconds before the file is stale (30)"
    )
    periodic = add(
        "periodic",
        "Show the periodic jobs the daemons have declared in the database: schedule, time zone, "
        "next slot, last enqueued slot and its job.",
    )
    periodic.add_argument("--json", action="store_true", help="print JSON instead of a table")
    demo = add(
        "demo",
        "Run the daemon on a sample document workload and report what happened. Uses the "
        "server of DOCKO_DATABASE_URL if set, else starts an embedded PostgreSQL (extra "
        "'embedded'); either way the jobs go to a database docko_demo, created afresh.",
    )
    demo.add_argument(
        "--jobs", type=int, default=2000, help="jobs to enqueue, four per document (2000)"
    )
    demo.add_argument("--workers", type=int, default=None, help="concurrent jobs (default 50)")
    demo.add_argument(
        "--failure-rate", type=float, default=0.1, help="share of attempts that fail (0.1)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler = _COMMANDS[args.command]
        return handler(args)
    except (DockoError, asyncpg.PostgresError) as exc:
        _print_error(exc)
        return EXIT_USAGE
    except CONNECT_ERRORS as exc:
        # Only one-shot commands get here: `run` waits for the database instead.
        dsn = redact_dsn(os.environ.get("DOCKO_DATABASE_URL") or os.environ.get("DATABASE_URL"))
        print(
            f"{PROG}: error: database unavailable at {dsn}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


def _print_error(exc: BaseException) -> None:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError):
        message = f"database refused: {type(exc).__name__}: {message}"
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _configured() -> Config:
    config = load_config()
    configure_logging(config.log_level, config.log_format)
    for name in unknown_env_vars():
        log.warning("unknown_setting_ignored", variable=name)
    return config


# Commands


def cmd_run(_args: argparse.Namespace) -> int:
    # Until the event loop takes over, a SIGTERM is remembered instead of killing the process.
    remember_early_signals()
    config = _configured()
    config.require_database_url()
    registry = HandlerRegistry()
    registry.load_entry_points()
    periodics = load_periodic_entry_points()
    if not len(registry):
        raise DockoError(f"no handlers: install a package with '{ENTRY_POINT_GROUP}' entry points")
    return run_async(lambda: run_daemon(config, registry, periodics))


def cmd_migrate(args: argparse.Namespace) -> int:
    config = _configured()
    config.require_database_url()

    async def run() -> int:
        conn = await connect(config)
        try:
            if args.check:
                pending = await pending_migrations(conn)
                for migration in pending:
                    print(f"pending {migration.version:04d}_{migration.name}")
                if not pending:
                    print("up to date")
                return 1 if pending else 0
            applied = await migrate(conn)
        finally:
            await conn.close()
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
        if not applied:
            print("up to date")
        return 0

    return run_async(run)


def cmd_enqueue(args: argparse.Namespace) -> int:
    config = _configured()
    config.require_database_url()
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise UsageError(f"JSON argument is not valid JSON: {exc}") from None

    async def run() -> int:
        async with await Queue.connect(config) as queue:
            job = await queue.enqueue(
                args.queue,
                args.job_type,
                payload,
                priority=args.priority,
                delay=args.delay,
                max_attempts=args.max_attempts,
                dedupe_key=args.dedupe_key,
            )
        print(job.id)
        return 0

    return run_async(run)


def cmd_stats(args: argparse.Namespace) -> int:
    config = _configured()
    config.require_database_url()

    async def run() -> int:
        async with await Queue.connect(config) as queue:
            rows = await queue.job_counts()
        if args.json:
            print(
                json.dumps(
                    [{"queue": q, "job_type": t, "state": s, "jobs": n} for q, t, s, n in rows]
                )
            )
            return 0
        print(format_table(["QUEUE", "TYPE", "STATE", "JOBS"], rows))
        return 0

    return run_async(run)


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True))
        for row in cells
    ]
    if not rows:
        lines.append("(no jobs)")
    return "\n".join(line.rstrip() for line in lines)


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from .health import check_health_file

    config = load_config()
    if not config.health_file:
        raise DockoError("DOCKO_HEALTH_FILE is not set: the daemon keeps no health file")
    healthy, reason = check_health_file(config.health_file, args.max_age)
    print(reason)
    return 0 if healthy else 1


def cmd_periodic(args: argparse.Namespace) -> int:
    from .periodic_command import show_periodic

    config = _configured()
    config.require_database_url()
    return run_async(lambda: show_periodic(config, as_json=args.json))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(jobs=args.jobs, workers=args.workers, failure_rate=args.failure_rate)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "enqueue": cmd_enqueue,
    "stats": cmd_stats,
    "healthcheck": cmd_healthcheck,
    "periodic": cmd_periodic,
    "demo": cmd_demo,
}
