"""docko-worker's start-up: from spawning ``docko-worker run`` to its first handler's start.

Each run queues one no-op job (the ``noop`` entry point of ``bench_handlers``, which must be
installed beside docko-worker: ``pip install -e benchmarks/bench_handlers``), spawns
``docko-worker run`` on a database of its own, and takes the handler's start time, written by
the handler (``BENCH_RECORD_FILE``), minus the moment just before the spawn. The worker's JSON
log splits that span: spawn to ``daemon_starting`` (interpreter, imports, configuration, entry
points), to ``supervisor_started`` (pool, migrations check), to the handler's start (first claim).

It then prints the wall time of ``python -c "import docko_worker.cli"`` beside a bare
interpreter's, and the heaviest imports of one ``python -X importtime -m docko_worker run``::

    .venv/bin/python benchmarks/startup.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

The interpreter running the script must import docko_worker; the worker is the ``docko-worker``
script beside it unless ``--worker`` says otherwise. The database (``--database``) is created
afresh and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from docko_worker import Config, Queue

QUEUE = "startup"
JOB_TYPE = "noop"
RECORD_FILE_ENV = "BENCH_RECORD_FILE"


@dataclass
class Run:
    """Seconds from the spawn: to each start-up log event, and to the handler's start."""

    handler: float
    daemon_starting: float | None
    supervisor_started: float | None


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def recreate_database(dsn: str, database: str, *, drop_only: bool = False) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def event_offsets(log_text: str, spawned_at: float) -> dict[str, float]:
    """Seconds from the spawn to each event of the worker's JSON log (its first occurrence)."""
    found: dict[str, float] = {}
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
            stamp = datetime.fromisoformat(event["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        found.setdefault(event.get("event", ""), stamp - spawned_at)
    return found


def spawn(
    command: list[str], env: dict[str, str], log_file: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``command`` with its output in ``log_file``; the process and when it was spawned."""
    with log_file.open("wb") as log:
        spawned_at = time.time()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, spawned_at


async def run_until_completed(
    process: subprocess.Popen[bytes], queue: Queue, job_id: UUID, log_file: Path, interval: float
) -> None:
    """Wait for ``job_id`` to complete (the worker must not exit before), then SIGTERM the worker
    and wait for it to exit; killed if anything fails on the way."""
    try:
        while True:
            if process.poll() is not None:
                output = await asyncio.to_thread(log_file.read_text)
                raise RuntimeError(f"the worker exited early:\n{output}")
            done = await queue.get_job(job_id)
            if done is None or done.state.value == "completed":
                break
            await asyncio.sleep(interval)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def one_run(worker: list[str], env: dict[str, str], queue: Queue, seq: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="docko-startup-") as tmp:
        record_file = Path(tmp) / "records"
        log_file = Path(tmp) / "log"
        job = await queue.enqueue(QUEUE, JOB_TYPE, {"seq": seq, "t": time.time()})
        run_env = {**env, RECORD_FILE_ENV: str(record_file)}
        process, spawned_at = spawn(worker, run_env, log_file)
        await asyncio.sleep(0.1)
        await run_until_completed(process, queue, job.id, log_file, 0.02)
        # The handler package writes its records when the worker exits.
        seq_text, _, started = record_file.read_text().split()
        assert int(seq_text) == seq
        events = event_offsets(log_file.read_text(errors="replace"), spawned_at)
        return Run(
            handler=float(started) - spawned_at,
            daemon_starting=events.get("daemon_starting"),
            supervisor_started=events.get("supervisor_started"),
        )


def wall_seconds(python: str, code: str, runs: int, env: dict[str, str]) -> float:
    """Median wall time of ``python -c code``."""
    spans = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, env=env)
        spans.append(time.perf_counter() - start)
    return statistics.median(spans)


def parse_importtime(text: str) -> list[tuple[str, int, int, int]]:
    """``(module, self µs, cumulative µs, depth)`` of each ``-X importtime`` line."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        head, cumulative_us, name = line.split("|", 2)
        self_value = int(head.split(":")[1])
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), self_value, int(cumulative_us), depth))
    return rows


async def importtime_of_run(python: str, env: dict[str, str], queue: Queue) -> str:
    """The ``-X importtime`` lines of one ``python -m docko_worker run``, to its handler's start."""
    with tempfile.TemporaryDirectory(prefix="docko-startup-") as tmp:
        log_file = Path(tmp) / "log"
        job = await queue.enqueue(QUEUE, JOB_TYPE, {"seq": -1, "t": time.time()})
        run_env = {**env, RECORD_FILE_ENV: str(Path(tmp) / "records")}
        command = [python, "-X", "importtime", "-m", "docko_worker", "run"]
        process, _ = spawn(command, run_env, log_file)
        await run_until_completed(process, queue, job.id, log_file, 0.05)
        return log_file.read_text(errors="replace")


def print_importtime(text: str, top: int) -> None:
    rows = parse_importtime(text)
    if not rows:
        print("(no importtime lines)")
        return
    total = sum(cumulative for _, _, cumulative, depth in rows if depth == 0)
    print(f"imports of one `run` process: {total / 1000:.1f} ms in all (-X importtime)")
    print(f"  heaviest by cumulative time (a package includes what it imports), top {top}:")
    for name, _, cumulative, depth in sorted(rows, key=lambda row: -row[2])[:top]:
        print(f"    {cumulative / 1000:7.1f} ms  {'  ' * min(depth, 6)}{name}")
    print(f"  heaviest by own time, top {top}:")
    for name, self_us, _, _ in sorted(rows, key=lambda row: -row[1])[:top]:
        print(f"    {self_us / 1000:7.1f} ms  {name}")


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:6.1f} ms  "
        f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"
    )


async def main_async(args: argparse.Namespace) -> int:
    bindir = Path(sys.executable).parent
    python = str(bindir / "python")
    worker = args.worker.split() if args.worker else [str(bindir / "docko-worker"), "run"]
    dsn = with_database(args.dsn, args.database)
    await recreate_database(args.dsn, args.database)
    env = {
        key: value
        for key, value in os.environ.items()
        # Bytecode is written and used, as in a deployed daemon's byte-compiled environment.
        if not key.startswith("DOCKO_") and key != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        DOCKO_DATABASE_URL=dsn,
        DOCKO_QUEUES=QUEUE,
        DOCKO_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    try:
        async with await Queue.connect(Config(database_url=dsn)) as queue:
            await queue.migrate()
            # One unmeasured run: bytecode written, the database's caches warm.
            await one_run(worker, env, queue, 0)
            runs = [await one_run(worker, env, queue, seq) for seq in range(1, args.runs + 1)]
            imports = await importtime_of_run(python, env, queue) if args.top else ""
    finally:
        await recreate_database(args.dsn, args.database, drop_only=True)

    print(f"worker: {' '.join(worker)}  ({args.runs} runs, one warm-up before)")
    print(f"spawn to first handler start: {summary([run.handler for run in runs])}")
    for label, values in [
        ("spawn to daemon_starting (imports, config, entry points)", "daemon_starting"),
        ("spawn to supervisor_started (+ pool, migrations check)", "supervisor_started"),
    ]:
        found = [getattr(run, values) for run in runs if getattr(run, values) is not None]
        if found:
            print(f"  {label}: {summary(found)}")
    bare = wall_seconds(python, "pass", args.runs, env)
    cli = wall_seconds(python, "import docko_worker.cli", args.runs, env)
    print(
        f"python -c 'import docko_worker.cli': median {cli * 1000:.1f} ms "
        f"(a bare interpreter: {bare * 1000:.1f} ms)"
    )
    if args.top:
        print_importtime(imports, args.top)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a server's DSN; the role needs CREATEDB",
    )
    parser.add_argument("--database", default="dockobench_startup", help="created and dropped")
    parser.add_argument("--runs", type=int, default=10, help="measured runs (10)")
    parser.add_argument("--top", type=int, default=25, help="imports listed (25; 0: none)")
    parser.add_argument(
        "--worker",
        default=None,
        help="the worker command (default: docko-worker run, beside python)",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
