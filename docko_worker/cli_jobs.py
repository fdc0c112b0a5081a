"""The operator's commands: ``jobs list|show|cancel|retry`` and ``queues [pause|resume]``.

Each connects with ``DOCKO_DATABASE_URL``, does one thing and exits with a status scripts can
rely on (``EXIT_STATUS_HELP``, also in the README). A mistake in the command line (a malformed id,
an unknown state name) is found before anything is changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from . import operations
from .cli import PROG, UsageError, _configured
from .cli_display import dump_json, job_details, jobs_table, queues_table
from .daemon import run_async
from .errors import DockoError
from .job import JobState
from .operations import parse_job_id, parse_state
from .queue import Queue
from .store import JobStore

EXIT_OK = 0
EXIT_NOT_DONE = 1

EXIT_STATUS_HELP = """\
exit status:
  0  done (a filter that matches nothing is not an error: an empty list, or 0 jobs changed)
  1  a given job id names no job, a retry was refused (its dedupe key is held by an
     unfinished job), or the database could not be reached
  2  a usage error: a malformed job id, an unknown state name, a bad option or setting
"""

AddParser = Callable[[str, str], argparse.ArgumentParser]


def add_operator_parsers(add: AddParser) -> None:
    """Register ``jobs`` and ``queues`` with the top-level parser's ``add`` helper."""
    jobs = add("jobs", "Inspect, cancel and retry jobs.")
    jobs.epilog = f"{EXIT_STATUS_HELP}\n{jobs.epilog}"
    actions = jobs.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return actions.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_STATUS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    listing = action("list", "List jobs, newest first.")
    _add_filters(listing)
    states = ", ".join(state.value for state in JobState)
    listing.add_argument("--state", metavar="S", help=f"only jobs in state S ({states})")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="most jobs (50)")
    listing.add_argument(
        "--before", metavar="ID", help="the page after job ID (the last of the previous page)"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list of jobs")

    show = action("show", "Show one job, with the error of each failed attempt.")
    show.add_argument("id", metavar="ID", help="job id")
    show.add_argument("--json", action="store_true", help="print the job as a JSON object")

    cancel = action(
        "cancel",
        "Cancel jobs: an available one at once; a running one is asked to stop, and its daemon "
        "cancels the handler. Finished jobs are left alone.",
    )
    cancel.add_argument("ids", nargs="+", metavar="ID", help="job id")
    cancel.add_argument("--reason", metavar="R", help="recorded in last_error: 'Cancelled: R'")

    retry = action(
        "retry",
        "Run failed or cancelled jobs again, now, with one more attempt when theirs are spent.",
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="job id")
    retry.add_argument("--all-failed", action="store_true", help="every failed job (filtered)")
    _add_filters(retry, " (with --all-failed)")

    queues = add("queues", "Show queues (counts, lag, paused), or pause or resume one.")
    queues.epilog = f"{EXIT_STATUS_HELP}\n{queues.epilog}"
    queues.add_argument("--json", action="store_true", help="print a JSON list of queues")
    changes = queues.add_subparsers(dest="action", metavar="{pause,resume}")
    for name, help_text in (
        ("pause", "Stop every daemon claiming from queue Q; running jobs finish."),
        ("resume", "Let daemons claim from queue Q again."),
    ):
        change = changes.add_parser(name, help=help_text, description=help_text)
        change.add_argument("queue", metavar="Q", help="queue name")


def _add_filters(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument("--queue", metavar="Q", help=f"only jobs of queue Q{note}")
    parser.add_argument("--type", metavar="T", help=f"only jobs of type T{note}")


def cmd_jobs(args: argparse.Namespace) -> int:
    # Every id and name is checked before the database is touched.
    if args.action == "list":
        state = parse_state(args.state)
        before = None if args.before is None else parse_job_id(args.before)
        return _with_queue(lambda queue: _list(queue, args, state, before))
    if args.action == "show":
        job_id = parse_job_id(args.id)
        return _with_queue(lambda queue: _show(queue, job_id, args.json))
    if args.action == "cancel":
        ids = [parse_job_id(value) for value in args.ids]
        return _with_queue(lambda queue: _cancel(queue, ids, args.reason))
    if args.all_failed == bool(args.ids):
        raise UsageError("give job ids or --all-failed, not both or neither")
    if not args.all_failed and (args.queue or args.type):
        raise UsageError("--queue and --type filter --all-failed; they do not apply to ids")
    if args.all_failed:
        return _with_queue(lambda queue: _retry_all(queue, args.queue, args.type))
    ids = [parse_job_id(value) for value in args.ids]
    return _with_queue(lambda queue: _retry(queue, ids))


def cmd_queues(args: argparse.Namespace) -> int:
    if args.action is None:
        return _with_queue(lambda queue: _queues(queue, args.json))
    return _with_queue(lambda queue: _pause_or_resume(queue, args.action, args.queue))


def _with_queue(work: Callable[[Queue], Coroutine[Any, Any, int]]) -> int:
    config = _configured()
    config.require_database_url()

    async def run() -> int:
        async with await Queue.connect(config) as queue:
            return await work(queue)

    return run_async(run)


def _now() -> datetime:
    return datetime.now(UTC)


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _not_done(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


async def _list(
    queue: Queue, args: argparse.Namespace, state: JobState | None, before: UUID | None
) -> int:
    jobs = await queue.list_jobs(
        queue_name=args.queue, job_type=args.type, state=state, limit=args.limit, before=before
    )
    if args.json:
        print(dump_json(jobs))
    elif not jobs:
        print("no jobs match")
    else:
        print(jobs_table(jobs, _now(), _width()))
        if len(jobs) == args.limit:
            print(f"(first {len(jobs)}; the next page: --before {jobs[-1].id})")
    return EXIT_OK


async def _show(queue: Queue, job_id: UUID, as_json: bool) -> int:
    job = await queue.get_job(job_id)
    if job is None:
        _not_done(f"no job {job_id}")
        return EXIT_NOT_DONE
    print(dump_json(job) if as_json else job_details(job, _now(), _width()))
    return EXIT_OK


async def _cancel(queue: Queue, ids: list[UUID], reason: str | None) -> int:
    status = EXIT_OK
    for job_id in ids:
        job, changed = await operations.cancel(JobStore(queue.pool), job_id, reason or None)
        if job is None:
            _not_done(f"no job {job_id}")
            status = EXIT_NOT_DONE
        elif not changed:
            print(f"{job_id} already {job.state.value}: unchanged")
        elif job.state is JobState.RUNNING:
            print(f"{job_id} running on {job.worker_id}: asked to stop")
        else:
            print(f"{job_id} cancelled")
    return status


async def _retry(queue: Queue, ids: list[UUID]) -> int:
    status = EXIT_OK
    for job_id in ids:
        try:
            job, changed = await operations.retry(JobStore(queue.pool), job_id)
        except DockoError as exc:
            _not_done(str(exc))
            status = EXIT_NOT_DONE
            continue
        if job is None:
            _not_done(f"no job {job_id}")
            status = EXIT_NOT_DONE
        elif changed:
            print(f"{job_id} retried: attempt {job.attempt + 1} of {job.max_attempts}, due now")
        else:
            print(f"{job_id} is {job.state.value}: unchanged (only failed or cancelled jobs)")
    return status


async def _retry_all(queue: Queue, queue_name: str | None, job_type: str | None) -> int:
    count = await queue.retry_jobs(queue_name=queue_name, job_type=job_type, state="failed")
    print(f"retried {count} failed job{'' if count == 1 else 's'}")
    return EXIT_OK


async def _queues(queue: Queue, as_json: bool) -> int:
    infos = await queue.queues()
    if as_json:
        print(dump_json(infos))
    elif not infos:
        print("no queues yet")
    else:
        print(queues_table(infos, _width()))
    return EXIT_OK


async def _pause_or_resume(queue: Queue, action: str, name: str) -> int:
    if action == "pause":
        await queue.pause(name)
        print(f"paused queue {name!r}: no daemon claims from it until it is resumed")
    else:
        await queue.resume(name)
        print(f"resumed queue {name!r}")
    return EXIT_OK
