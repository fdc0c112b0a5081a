"""The ``docko-worker`` command: run, migrate, enqueue, stats, healthcheck, periodic, demo, and
the operator's ``jobs`` and ``queues`` (in ``cli_jobs``).

Configuration comes from ``DOCKO_*`` environment variables (see ``docko_worker.config``). Mistakes
a user can make (bad configuration, an unknown option, a handler entry point that will not
import, a payload that is not JSON, a database that refuses the credentials) print one line on
stderr and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from importlib.metadata import entry_points
from itertools import islice
from typing import Any, NoReturn
from uuid import UUID

import asyncpg
import structlog

from .config import Config, load_config, settings_reference, unknown_env_vars
from .daemon import remember_early_signals, run_async, run_daemon
from .dsn import describe_connection_error, hide_secrets, redact_dsn
from .errors import DockoError, PayloadError
from .health import check_health_file, check_max_age
from .launch import collection_paused
from .logs import configure_logging
from .migrations import migrate, pending_migrations
from .payloads import (
    check_max_attempts,
    check_priority,
    check_schedule,
    check_text,
    encode_payload,
)
from .periodic import PERIODIC_ENTRY_POINT_GROUP
from .pool import CONNECT_ERRORS, connect
from .queue import Queue
from .registry import ENTRY_POINT_GROUP, HandlerRegistry, load_periodic_entry_points

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1
# What a shell reports for a process ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
PROG = "docko-worker"

log = structlog.get_logger("docko_worker.cli")


def environment_help(width: int = 79) -> str:
    """Every setting of ``Config``, its default and range: the epilog of each ``--help``."""
    lines = ["configuration (environment variables; durations in seconds):"]
    for setting in settings_reference():
        lines.append(f"  {setting.variable}  default: {setting.default}")
        # A parenthesis ("(7 days)") is kept on one line: its spaces do not break until wrapped.
        shown = re.sub(r"\([^)]*\)", lambda m: m.group().replace(" ", "\xa0"), setting.range)
        text = setting.description + (f" Range: {shown}." if shown else "")
        wrapped = textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
        lines += [line.replace("\xa0", " ") for line in wrapped]
    lines.append("An unknown DOCKO_* variable is warned about; a value out of range exits 2.")
    return "\n".join(lines) + "\n"


# Stands for ``environment_help()`` in an epilog until a help text is printed: every command
# builds the parser, and writing out the settings' help costs more than parsing its arguments.
ENVIRONMENT_HELP = "\0environment help\0"


class UsageError(DockoError):
    """A command-line mistake: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def format_help(self) -> str:
        if self.epilog and ENVIRONMENT_HELP in self.epilog:
            self.epilog = self.epilog.replace(ENVIRONMENT_HELP, environment_help())
        return super().format_help()


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        from . import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="PostgreSQL-backed job queue and worker daemon.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, dest=argparse.SUPPRESS)
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
    enqueue = add(
        "enqueue",
        "Enqueue one job and print its id; with JSON '-', one job per line of standard input "
        "(JSON lines, blank lines skipped), all in one transaction, and print how many.",
    )
    enqueue.add_argument("queue", metavar="QUEUE", help="queue name")
    enqueue.add_argument("job_type", metavar="TYPE", help="job type (the handler's name)")
    enqueue.add_argument(
        "payload", metavar="JSON", help="payload, as JSON; '-' reads one payload per line of stdin"
    )
    enqueue.add_argument("--priority", type=int, default=0, help="lower runs first (default 0)")
    enqueue.add_argument(
        "--delay", type=float, default=None, help="seconds before it is due (or after --run-at)"
    )
    enqueue.add_argument(
        "--run-at",
        type=_aware_time,
        default=None,
        metavar="TIME",
        help="when it is due: ISO 8601 with a UTC offset, e.g. 2030-01-31T08:00:00+01:00",
    )
    enqueue.add_argument("--max-attempts", type=int, default=None, help="attempts before failing")
    enqueue.add_argument("--dedupe-key", default=None, help="return the unfinished job holding it")
    enqueue.add_argument(
        "--ids", action="store_true", help="with '-': print each job's id, in input order"
    )
    stats = add("stats", "Show job counts per queue, job type and state.")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    health = add("healthcheck", "Exit 0 if the daemon touched DOCKO_HEALTH_FILE recently.")
    health.add_argument(
        "--max-age", type=_max_age, default=30.0, help="seconds before the file is stale (30)"
    )
    periodic = add(
        "periodic",
        "Show the periodic jobs the daemons have declared in the database: schedule, time zone, "
        "next slot, last enqueued slot and its job.",
    )
    periodic.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add(
        "dashboard",
        "Serve the web dashboard (extra 'dashboard') on DOCKO_DASHBOARD_HOST:DOCKO_DASHBOARD_PORT "
        "until SIGTERM or SIGINT: queues, jobs, errors, periodic schedules; cancel, retry, pause "
        "and resume unless DOCKO_DASHBOARD_READ_ONLY. Any address but loopback needs "
        "DOCKO_DASHBOARD_PASSWORD (basic auth, user DOCKO_DASHBOARD_USER).",
    )
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
    from .cli_jobs import add_operator_parsers

    add_operator_parsers(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler = _COMMANDS[args.command]
        return handler(args)
    except (DockoError, asyncpg.PostgresError, asyncpg.ClientConfigurationError) as exc:
        _print_error(exc)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`docko-worker jobs list | head`): not a database problem. The
        # output left in the buffer goes nowhere, and the status says a pipe closed, as SIGPIPE's.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except CONNECT_ERRORS as exc:
        # Only one-shot commands get here: `run` waits for the database instead.
        dsn = _configured_dsn()
        reason = describe_connection_error(exc, dsn)
        where = redact_dsn(dsn)
        print(f"{PROG}: error: database unavailable at {where}: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _print_error(exc: BaseException) -> None:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, asyncpg.UndefinedTableError) and '"docko_' in message:
        message = (
            f"the schema is not installed ({message}): run `{PROG} migrate` first "
            "(`run` does it by itself unless DOCKO_AUTO_MIGRATE=false)"
        )
    elif isinstance(exc, asyncpg.PostgresError):
        message = f"database refused: {type(exc).__name__}: {message}"
    elif isinstance(exc, asyncpg.ClientConfigurationError):
        message = f"invalid database configuration: {hide_secrets(message, _configured_dsn())}"
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _configured_dsn() -> str | None:
    """The DSN the command ran with (its configuration loaded once already)."""
    try:
        return load_config().database_url
    except DockoError:
        return None


def _configured() -> Config:
    config = load_config()
    configure_logging(config.log_level, config.log_format)
    for name in unknown_env_vars():
        log.warning("unknown_setting_ignored", variable=name)
    if config.duplicate_queues:
        log.warning(
            "duplicate_queues_ignored", duplicates=config.duplicate_queues, queues=config.queues
        )
    return config


# Commands


def cmd_run(_args: argparse.Namespace) -> int:
    # Until the event loop takes over, a SIGTERM is remembered instead of killing the process.
    remember_early_signals()
    config = _configured()
    config.require_database_url()
    registry = HandlerRegistry()
    # One look through the installed distributions serves both groups; the handlers' modules,
    # imports mostly, load as the CLI's own did (see ``launch``).
    installed = entry_points()
    with collection_paused():
        registry.load_entry_points(installed.select(group=ENTRY_POINT_GROUP))
        periodics = load_periodic_entry_points(installed.select(group=PERIODIC_ENTRY_POINT_GROUP))
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


# Lines of standard input per ``enqueue_many`` call of ``enqueue ... -``.
STDIN_CHUNK = 5000


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset: add one, e.g. {text}+00:00 or {text}Z"
        )
    return value


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply to decode") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None
    except ValueError:  # an integer beyond Python's int string limit
        raise UsageError(
            f"{what} has an integer of more than {sys.get_int_max_str_digits()} digits"
        ) from None


def cmd_enqueue(args: argparse.Namespace) -> int:
    config = _configured()
    config.require_database_url()
    # Checked before connecting: a mistake is a usage error whether or not the database answers.
    for name, value in [("queue_name", args.queue), ("job_type", args.job_type)]:
        check_text(name, value)
    if args.dedupe_key is not None:
        check_text("dedupe_key", args.dedupe_key)
    run_at, delay = check_schedule(args.run_at, args.delay)
    options: dict[str, Any] = {
        "run_at": run_at,
        "delay": delay,
        "priority": check_priority(args.priority),
        "max_attempts": args.max_attempts,
    }
    if args.max_attempts is not None:
        check_max_attempts(args.max_attempts)
    if args.payload == "-":
        if args.dedupe_key is not None:
            raise UsageError("--dedupe-key applies to one job, not to JSON lines from stdin")
        if sys.stdin is None:
            raise UsageError("JSON '-' reads standard input, and this process has none")
        return run_async(lambda: _enqueue_lines(config, args, options, sys.stdin.buffer))
    if args.ids:
        raise UsageError("--ids applies to JSON lines from stdin (JSON '-')")
    payload = _parse_json(args.payload, "JSON argument")
    encode_payload(payload)

    async def run() -> int:
        async with await Queue.connect(config) as queue:
            job = await queue.enqueue(
                args.queue, args.job_type, payload, dedupe_key=args.dedupe_key, **options
            )
        print(job.id)
        return 0

    return run_async(run)


async def _enqueue_lines(
    config: Config, args: argparse.Namespace, options: dict[str, Any], lines: Iterable[bytes]
) -> int:
    """One job per non-blank line, ``STDIN_CHUNK`` per ``enqueue_many``, in one transaction.

    A line that is not a payload is named by its number; the transaction then rolls back, so
    nothing is written. Ids are printed only once the transaction committed.
    """
    numbered = ((number, line) for number, line in enumerate(lines, start=1) if line.strip())
    ids: list[UUID] = []
    async with (
        await Queue.connect(config) as queue,
        queue.pool.acquire() as conn,
        conn.transaction(),
    ):
        while chunk := list(islice(numbered, STDIN_CHUNK)):
            payloads = [_payload_line(number, line) for number, line in chunk]
            try:
                ids += await queue.enqueue_many(
                    args.queue, args.job_type, payloads, conn=conn, **options
                )
            except PayloadError as exc:
                raise _first_bad_line(chunk, payloads) or exc from None
    if args.ids:
        sys.stdout.write("".join(f"{job_id}\n" for job_id in ids))
    else:
        print(len(ids))
    return 0


def _payload_line(number: int, line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"line {number} of stdin is not UTF-8 text") from None
    return _parse_json(text, f"line {number} of stdin")


def _first_bad_line(chunk: list[tuple[int, bytes]], payloads: list[Any]) -> UsageError | None:
    """The first line of ``chunk`` whose payload cannot be enqueued, as a usage error."""
    for (number, _), payload in zip(chunk, payloads, strict=True):
        try:
            encode_payload(payload)
        except PayloadError as exc:
            return UsageError(f"line {number} of stdin: {exc}")
    return None


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


def _max_age(text: str) -> float:
    try:
        return check_max_age(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_healthcheck(args: argparse.Namespace) -> int:
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


def cmd_dashboard(_args: argparse.Namespace) -> int:
    try:
        from .dashboard.server import serve
    except ImportError as exc:
        raise DockoError(
            f"the dashboard needs the 'dashboard' extra: pip install 'docko-worker[dashboard]' "
            f"({exc})"
        ) from None
    return serve(_configured())


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(jobs=args.jobs, workers=args.workers, failure_rate=args.failure_rate)


def cmd_jobs(args: argparse.Namespace) -> int:
    from .cli_jobs import cmd_jobs

    return cmd_jobs(args)


def cmd_queues(args: argparse.Namespace) -> int:
    from .cli_jobs import cmd_queues

    return cmd_queues(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "enqueue": cmd_enqueue,
    "stats": cmd_stats,
    "healthcheck": cmd_healthcheck,
    "periodic": cmd_periodic,
    "dashboard": cmd_dashboard,
    "demo": cmd_demo,
    "jobs": cmd_jobs,
    "queues": cmd_queues,
}
