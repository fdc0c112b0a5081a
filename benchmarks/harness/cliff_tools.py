"""What the docko-only cliff scenarios share: a daemon configured per scenario, a settled start,
the ``/metrics`` scrape of claim statements, and latency figures over handler records.

Every cliff scenario runs ``docko-worker run`` as a subprocess (``WorkerProcess``), with the
benchmark's docko settings (``adapters/docko.py``) plus the scenario's own ``DOCKO_*`` variables.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .adapters.base import JOB_TYPE, QUEUE, Payload, WorkerCommand, payload
from .adapters.docko import Docko
from .scenarios import WARM_UP_SEQ, Options, wait_until_finished
from .stats import percentile
from .worker import Record, WorkerProcess

# A job type no daemon of the benchmark has a handler for.
UNKNOWN_TYPE = "unknown_type"
# Jobs per enqueue_many call when seeding a scenario.
SEED_CHUNK = 5000


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Tuned(Docko):
    """The docko adapter with a scenario's extra daemon settings (``env``), served queues and job
    type; its unfinished count is limited to that job type, so jobs of another type left queued
    on purpose (a backlog of an unhandled type) do not keep a burn-down from ending."""

    def __init__(
        self,
        *,
        retention: int,
        env: dict[str, str] | None = None,
        queues: Sequence[str] = (QUEUE,),
        job_type: str = JOB_TYPE,
        worker_count: int = 2000,
    ) -> None:
        super().__init__(retention=retention, worker_count=worker_count)
        self.extra_env = dict(env or {})
        self.queues = list(queues)
        self.job_type = job_type
        self.unfinished_sql = (
            "SELECT count(*) FROM docko_jobs WHERE state IN ('available', 'running') "
            f"AND job_type = '{job_type}'"
        )

    def worker_command(self, dsn: str) -> WorkerCommand:
        command = super().worker_command(dsn)
        env = {**command.env, "DOCKO_QUEUES": ",".join(self.queues), **self.extra_env}
        return WorkerCommand(command.argv, env)

    async def enqueue_typed(
        self, job_type: str, payloads: list[Payload], queue: str = QUEUE
    ) -> None:
        """``Queue.enqueue_many`` of ``payloads`` as ``job_type`` into ``queue``, one call."""
        await self._queue.enqueue_many(queue, job_type, payloads)

    async def enqueue_one_typed(self, job_type: str, item: Payload) -> None:
        await self._queue.enqueue(QUEUE, job_type, item)


def worker_for(system: Tuned, dsn: str, options: Options, name: str) -> WorkerProcess:
    return WorkerProcess(
        system.worker_command(dsn),
        options.work_dir / f"{name}.records",
        options.log_dir / f"{name}.log",
    )


async def start_settled(system: Tuned, conn: Any, worker: WorkerProcess, options: Options) -> None:
    """Start ``worker``, run one warm-up job through it, let it settle."""
    worker.start()
    await system.enqueue_one(payload(WARM_UP_SEQ, time.time()))
    await wait_until_finished(conn, system, worker, options.poll_interval, limit=300)
    await asyncio.sleep(options.settle_seconds)


async def enqueue_seeded(
    system: Tuned, job_type: str, count: int, first_seq: int = 0, **extra: Any
) -> float:
    """``count`` jobs of ``job_type`` (payload ``seq``, ``t`` and ``extra``), ``SEED_CHUNK`` per
    call; the seconds it took."""
    started = time.perf_counter()
    for offset in range(0, count, SEED_CHUNK):
        now = time.time()
        chunk = [
            payload(first_seq + index, now) | extra
            for index in range(offset, min(offset + SEED_CHUNK, count))
        ]
        await system.enqueue_typed(job_type, chunk)
    return time.perf_counter() - started


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def claim_counts(port: int, within: float = 30.0) -> tuple[float, float]:
    """(claim statements, empty ones) from the daemon's ``/metrics``; waits for the endpoint."""
    deadline = time.monotonic() + within
    while True:
        try:
            text = await asyncio.to_thread(_scrape, port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    total = empty = float("nan")
    for line in text.splitlines():
        if line.startswith("docko_claim_size_count "):
            total = float(line.split()[-1])
        elif line.startswith('docko_claim_size_bucket{le="0.0"} '):
            empty = float(line.split()[-1])
    return total, empty


def latency_ms(records: Iterable[Record]) -> list[float]:
    """Enqueue-to-handler-start of every non-warm-up record, in milliseconds."""
    return [(r.started_at - r.enqueued_at) * 1000 for r in records if r.seq >= 0]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    return {
        "jobs": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values, default=float("nan")),
    }


def read_records(options: Options, name: str) -> list[Record]:
    """The records a finished scenario's worker ``name`` left in the work directory."""
    return WorkerProcess(
        WorkerCommand([], {}), options.work_dir / f"{name}.records", Path("/dev/null")
    ).records()


def log_count(worker: WorkerProcess, events: Sequence[str]) -> dict[str, int]:
    """How many log lines of ``worker`` name each of ``events``."""
    try:
        text = worker.log_file.read_text(errors="replace")
    except OSError:
        return dict.fromkeys(events, 0)
    return {event: text.count(f'"{event}"') for event in events}
