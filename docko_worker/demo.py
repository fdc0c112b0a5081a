"""``docko-worker demo``: the daemon on a sample document workload, with progress and a summary.

This module owns the demo: the sample documents and their jobs, the example handlers that simulate
the work (and its failures), the demo database, the progress display and the summary. The embedded
PostgreSQL it falls back on lives in ``embedded.py``.

A run:

1. uses the server of ``DOCKO_DATABASE_URL`` (or ``DATABASE_URL``) if set, else starts an embedded
   one; on that server it drops and creates the database ``docko_demo`` and migrates it, so every
   run starts empty and the configured database itself is never written to;
2. enqueues ``--jobs`` jobs in bulk (``enqueue_many``), four per document: ``ocr``, ``extract_text``
   and ``index`` on queue ``documents``, ``thumbnail`` on queue ``previews``;
3. runs the daemon in this process (``Queue.start``) until every job is completed or failed. The
   handlers sleep to simulate the work and fail ``--failure-rate`` of their attempts with a
   realistic error, so jobs retry with backoff; OCR gets only 2 attempts, and the few documents
   marked corrupt fail at once with a ``PermanentError``;
4. enqueues 20 jobs one by one to the idle daemon to measure enqueue-to-start latency, stops the
   daemon gracefully and prints a summary.

Logging runs at ``warning`` level, minus the retry and failure events of the simulated errors (the
summary counts them); any other warning or error, an unexpected handler error included, still shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import random
import shutil
import signal
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import structlog

from .config import Config, load_config, redact_dsn
from .errors import DockoError, PermanentError
from .job import Job
from .logs import configure_logging
from .pool import CONNECT_ERRORS, connect
from .queue import Queue
from .statements import SQL
from .supervisor import Supervisor

_T = TypeVar("_T")

DEMO_DATABASE = "docko_demo"  # fixed: the drop/create statements in queries.sql name it
DEFAULT_WORKERS = 50
DOCUMENTS_QUEUE = "documents"
PREVIEWS_QUEUE = "previews"
QUEUES = (DOCUMENTS_QUEUE, PREVIEWS_QUEUE)
# Job types per document, in enqueue order, with their queue and attempts.
JOB_TYPES: dict[str, tuple[str, int]] = {
    "ocr": (DOCUMENTS_QUEUE, 2),  # an unreadable page rarely reads on a third try
    "thumbnail": (PREVIEWS_QUEUE, 5),
    "extract_text": (DOCUMENTS_QUEUE, 5),
    "index": (DOCUMENTS_QUEUE, 5),
}
PROBE_JOB_TYPE = "latency_probe"
PROBE_JOBS = 20
PROBE_GAP = 0.05
# Seed of the sample documents: every run processes the same documents.
DOCUMENT_SEED = 20_241_128
# Share of documents that are corrupt, relative to --failure-rate: 1% at the default 10%.
CORRUPT_SHARE_OF_FAILURE_RATE = 0.1
# Simulated work, in seconds. OCR dominates, as it does in production: a default run (2000 jobs,
# 50 workers) takes about 5-8 s, so the progress display has something to show.
OCR_SECONDS_PER_PAGE = (0.015, 0.035)
EXTRACT_SECONDS = (0.004, 0.012)
EXTRACT_SECONDS_PER_PAGE = (0.001, 0.003)
THUMBNAIL_SECONDS = (0.010, 0.040)
INDEX_SECONDS = (0.004, 0.020)
# Seconds without a single job finishing before the demo gives up.
STALL_TIMEOUT = 30.0
TICK = 0.05

_KINDS = (  # kind of document, fewest and most pages
    ("invoice", 1, 3),
    ("receipt", 1, 1),
    ("contract", 6, 40),
    ("scan", 1, 12),
    ("report", 10, 60),
    ("letter", 1, 4),
)
_TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")


# The errors the example handlers simulate.


class OcrEngineError(Exception):
    """The OCR engine could not read a page."""


class RenderError(Exception):
    """A page could not be rasterized into a thumbnail."""


class ExtractionError(Exception):
    """The text layer of a PDF could not be read."""


class SearchUnavailableError(Exception):
    """The search cluster refused the indexing request."""


class CorruptDocumentError(PermanentError):
    """The file is not a readable PDF: retrying cannot help."""


SIMULATED_ERRORS: tuple[type[Exception], ...] = (
    OcrEngineError,
    RenderError,
    ExtractionError,
    SearchUnavailableError,
    CorruptDocumentError,
)


# The sample workload.


@dataclass(frozen=True, slots=True)
class Document:
    document_id: int
    tenant: str
    file_name: str
    pages: int
    corrupt: bool

    @property
    def source(self) -> str:
        return f"s3://docko-uploads/{self.tenant}/{self.file_name}"


def sample_documents(count: int, corrupt_rate: float, seed: int = DOCUMENT_SEED) -> list[Document]:
    """``count`` documents, the same ones on every run for the same arguments."""
    rng = random.Random(seed)
    documents = []
    for index in range(count):
        kind, fewest, most = rng.choice(_KINDS)
        document_id = 10_001 + index
        year = rng.choice((2022, 2023, 2024))
        documents.append(
            Document(
                document_id=document_id,
                tenant=rng.choice(_TENANTS),
                file_name=f"{kind}-{year}-{document_id}.pdf",
                pages=rng.randint(fewest, most),
                corrupt=rng.random() < corrupt_rate,
            )
        )
    return documents


def job_payload(job_type: str, document: Document) -> dict[str, Any]:
    """What a producer would enqueue for ``job_type`` on ``document``."""
    payload: dict[str, Any] = {"document_id": document.document_id, "tenant": document.tenant}
    if job_type == "index":
        payload["index"] = "documents-v3"
        return payload
    payload.update(file_name=document.file_name, source=document.source)
    if job_type == "ocr":
        payload.update(pages=document.pages, language="eng")
    elif job_type == "thumbnail":
        payload.update(page=1, width=320, height=452)
    else:
        payload["pages"] = document.pages
    if document.corrupt:
        payload["corrupt"] = True
    return payload


def plan_jobs(jobs: int, documents: list[Document]) -> dict[str, list[dict[str, Any]]]:
    """Payloads per job type: ``jobs`` in all, document after document, four job types each."""
    planned: dict[str, list[dict[str, Any]]] = {job_type: [] for job_type in JOB_TYPES}
    remaining = jobs
    for document in documents:
        for job_type in JOB_TYPES:
            if remaining == 0:
                return planned
            planned[job_type].append(job_payload(job_type, document))
            remaining -= 1
    return planned


@dataclass(frozen=True, slots=True)
class GaveUp:
    """A job the handlers know has failed for good."""

    job_id: UUID
    job_type: str
    document_id: int
    permanent: bool


class DocumentWorkload:
    """The example handlers: simulated document processing that sometimes fails.

    Each handler sleeps for the time the real work would take and fails ``failure_rate`` of its
    attempts with the error the real step would raise; the file-reading steps refuse a corrupt
    document with ``CorruptDocumentError`` (a ``PermanentError``). The workload also notes what
    the summary reports: attempts, simulated seconds, jobs given up, latency-probe start times.
    """

    def __init__(self, failure_rate: float, rng: random.Random | None = None) -> None:
        self.failure_rate = failure_rate
        self._rng = rng or random.Random()
        self.attempts = 0
        self.busy_seconds = 0.0
        self.gave_up: list[GaveUp] = []
        self.probe_starts: dict[UUID, float] = {}
        self.probes_expected = 0
        self.probes_started = asyncio.Event()

    def handlers(self) -> dict[str, Callable[[Job], Awaitable[None]]]:
        return {
            "ocr": self.ocr,
            "thumbnail": self.thumbnail,
            "extract_text": self.extract_text,
            "index": self.index,
            PROBE_JOB_TYPE: self.latency_probe,
        }

    async def ocr(self, job: Job) -> None:
        """Recognise the text of every page: the slow step (per page), given only 2 attempts."""
        pages = int(job.payload["pages"])
        confidence = self._rng.uniform(0.2, 0.55)
        error = OcrEngineError(
            f"page {self._rng.randint(1, pages)} unreadable (confidence {confidence:.2f} < 0.60)"
        )
        await self._simulate(job, pages * self._rng.uniform(*OCR_SECONDS_PER_PAGE), error)

    async def thumbnail(self, job: Job) -> None:
        """Render the first page as a small preview image."""
        error = RenderError(
            f"ghostscript exited with status 1 rasterizing page 1 of {job.payload['file_name']}"
        )
        await self._simulate(job, self._rng.uniform(*THUMBNAIL_SECONDS), error)

    async def extract_text(self, job: Job) -> None:
        """Read the PDF's text layer."""
        pages = int(job.payload["pages"])
        seconds = self._rng.uniform(*EXTRACT_SECONDS) + pages * self._rng.uniform(
            *EXTRACT_SECONDS_PER_PAGE
        )
        error = ExtractionError(
            f"object stream truncated at byte {self._rng.randint(4_096, 2_000_000)}"
        )
        await self._simulate(job, seconds, error)

    async def index(self, job: Job) -> None:
        """Send the document to the search index; does not read the file."""
        error = SearchUnavailableError(
            f"search cluster returned 503 for index {job.payload['index']}"
        )
        await self._simulate(job, self._rng.uniform(*INDEX_SECONDS), error, reads_file=False)

    async def latency_probe(self, job: Job) -> None:
        """Notes when it started, for the enqueue-to-start latency."""
        self.probe_starts[job.id] = time.perf_counter()
        if len(self.probe_starts) >= self.probes_expected:
            self.probes_started.set()

    async def _simulate(
        self, job: Job, seconds: float, error: Exception, *, reads_file: bool = True
    ) -> None:
        self.attempts += 1
        if reads_file and job.payload.get("corrupt"):
            await self._work(seconds * 0.1)  # fails as soon as it opens the file
            self._give_up(job, permanent=True)
            raise CorruptDocumentError(f"{job.payload['file_name']}: not a PDF (no %PDF header)")
        if self._rng.random() < self.failure_rate:
            await self._work(seconds * self._rng.random())
            if job.is_last_attempt:
                self._give_up(job, permanent=False)
            raise error
        await self._work(seconds)

    def _give_up(self, job: Job, *, permanent: bool) -> None:
        self.gave_up.append(GaveUp(job.id, job.job_type, job.payload["document_id"], permanent))

    async def _work(self, seconds: float) -> None:
        self.busy_seconds += seconds
        await asyncio.sleep(seconds)


# Display


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


def _quiet_simulated_failures(display: Display) -> Callable[..., MutableMapping[str, Any]]:
    """A structlog processor: drops retry/failure events of simulated errors, clears progress."""
    prefixes = tuple(f"{error.__name__}:" for error in SIMULATED_ERRORS)

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


# The demo database


def with_database(dsn: str, database: str) -> str:
    """``dsn`` naming ``database`` instead of the one it names."""
    parts = urlsplit(dsn)
    query = "&".join(
        item
        for item in parts.query.split("&")
        if item and item.split("=", 1)[0] not in ("dbname", "database")
    )
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, query, parts.fragment))


def _database_of(dsn: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    return query.get("dbname") or query.get("database") or parts.path.lstrip("/")


async def recreate_demo_database(config: Config, server_dsn: str) -> tuple[str, str]:
    """Drop and create ``docko_demo`` on the server of ``server_dsn``.

    Returns the demo database's DSN and the server's version.
    """
    admin_dsn = server_dsn
    if _database_of(server_dsn) == DEMO_DATABASE:  # cannot drop the database we are connected to
        admin_dsn = with_database(server_dsn, "postgres")
    shown = redact_dsn(admin_dsn)
    try:
        conn = await connect(config.model_copy(update={"database_url": admin_dsn}))
    except CONNECT_ERRORS as exc:
        raise DockoError(f"cannot connect to {shown}: {type(exc).__name__}: {exc}") from None
    try:
        version = conn.get_server_version()
        await conn.execute(SQL.drop_demo_database)
        await conn.execute(SQL.create_demo_database)
    except asyncpg.ObjectInUseError:
        raise DockoError(
            f"database {DEMO_DATABASE} on {shown} is in use by another session "
            "(another demo still running?): close it and run the demo again"
        ) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DockoError(
            f"cannot drop and create database {DEMO_DATABASE} on {shown}: {exc} (the demo needs "
            "a role with CREATEDB; unset DOCKO_DATABASE_URL to use an embedded PostgreSQL)"
        ) from None
    finally:
        await conn.close()
    return with_database(server_dsn, DEMO_DATABASE), f"{version.major}.{version.minor}"


# The run


@dataclass(frozen=True, slots=True)
class DemoArguments:
    jobs: int
    workers: int
    failure_rate: float


def demo_config(base: Config, database_url: str, workers: int) -> Config:
    """The daemon's settings for the demo: quick polls and retries, quiet logs.

    Other ``DOCKO_*`` variables still apply (``DOCKO_LISTEN=false`` for a poll-only run, say).
    """
    return load_config(
        database_url=database_url,
        queues=list(QUEUES),
        worker_count=workers,
        poll_interval=0.2,
        base_retry_delay=0.05,
        max_retry_delay=0.5,
        max_attempts=5,
        shutdown_timeout=5.0,
        completed_retention=3600.0,  # the summary counts finished jobs: keep them
        failed_retention=3600.0,
        log_level="warning",
        log_format=base.log_format,
    )


async def _enqueue(queue: Queue, planned: dict[str, list[dict[str, Any]]]) -> int:
    """One ``enqueue_many`` per job type; returns the number of statements."""
    statements = 0
    for job_type, payloads in planned.items():
        if payloads:
            queue_name, attempts = JOB_TYPES[job_type]
            await queue.enqueue_many(queue_name, job_type, payloads, max_attempts=attempts)
            statements += 1
    return statements


async def _run_until_final(
    supervisor: Supervisor, total: int, started: float, display: Display
) -> float:
    """Show progress until ``total`` jobs are completed or failed; returns the seconds it took."""
    last_done, last_change = -1, started
    while True:
        counters = supervisor.counters
        now = time.perf_counter()
        done = counters.completed + counters.failed
        finished = done >= total
        display.progress(
            Progress(done, total, counters.retried, counters.failed, now - started), force=finished
        )
        if finished:
            display.end_progress()
            return now - started
        if done != last_done:
            last_done, last_change = done, now
        elif now - last_change > STALL_TIMEOUT:
            display.end_progress()
            raise DockoError(
                f"demo stalled: {total - done} jobs unfinished and none finished for "
                f"{STALL_TIMEOUT:g} s"
            )
        await asyncio.sleep(TICK)


async def _wait_until_idle(supervisor: Supervisor) -> None:
    """Until every outcome is written and nothing is claimed (10 s at most)."""
    for _ in range(1000):
        if supervisor.idle:
            return
        await asyncio.sleep(0.01)


async def _measure_latency(queue: Queue, workload: DocumentWorkload) -> list[float]:
    """Milliseconds from ``enqueue`` to handler start, jobs sent one by one to the idle daemon."""
    workload.probes_expected = PROBE_JOBS
    sent: list[tuple[UUID, float]] = []
    for number in range(1, PROBE_JOBS + 1):
        began = time.perf_counter()
        job = await queue.enqueue(DOCUMENTS_QUEUE, PROBE_JOB_TYPE, {"probe": number})
        sent.append((job.id, began))
        await asyncio.sleep(PROBE_GAP)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            await workload.probes_started.wait()
    starts = workload.probe_starts
    return [(starts[job_id] - began) * 1000 for job_id, began in sent if job_id in starts]


@dataclass(slots=True)
class Outcome:
    """What the summary reports."""

    jobs: int
    documents: int
    by_type: dict[str, Counter[str]]
    retried: int
    gave_up: list[GaveUp]
    examples: list[Job]
    wall: float
    workers: int
    attempts: int
    busy_seconds: float
    latencies: list[float]
    listen: bool
    poll_interval: float


async def _demo(
    args: DemoArguments, base: Config, server_dsn: str, display: Display
) -> tuple[Outcome, str]:
    demo_dsn, version = await recreate_demo_database(base, server_dsn)
    config = demo_config(base, demo_dsn, args.workers)
    display.say(f"database {DEMO_DATABASE} created (PostgreSQL {version}): {redact_dsn(demo_dsn)}")
    documents = sample_documents(
        math.ceil(args.jobs / len(JOB_TYPES)), args.failure_rate * CORRUPT_SHARE_OF_FAILURE_RATE
    )
    planned = plan_jobs(args.jobs, documents)
    workload = DocumentWorkload(args.failure_rate)
    async with await Queue.connect(config) as queue:
        await queue.migrate()
        for job_type, handler in workload.handlers().items():
            queue.register_handler(job_type, handler)
        began = time.perf_counter()
        statements = await _enqueue(queue, planned)
        display.say(
            f"enqueued {args.jobs} jobs for {len(documents)} documents in {statements} bulk "
            f"inserts ({(time.perf_counter() - began) * 1000:.0f} ms); "
            f"running them with {args.workers} workers"
        )
        started = time.perf_counter()
        await queue.start(list(QUEUES))
        supervisor = queue.supervisor
        assert supervisor is not None
        wall = await _run_until_final(supervisor, args.jobs, started, display)
        bulk = dataclasses.replace(supervisor.counters)
        await _wait_until_idle(supervisor)
        latencies = await _measure_latency(queue, workload)
        await queue.stop()
        by_type: dict[str, Counter[str]] = defaultdict(Counter)
        for _queue_name, job_type, state, count in await queue.job_counts():
            if job_type != PROBE_JOB_TYPE:
                by_type[job_type][state] += count
        examples = [
            job
            for chosen in _pick_examples(workload.gave_up)
            if (job := await queue.get_job(chosen.job_id)) is not None
        ]
    outcome = Outcome(
        jobs=args.jobs,
        documents=len(documents),
        by_type={job_type: by_type[job_type] for job_type in JOB_TYPES if job_type in by_type},
        retried=bulk.retried,
        gave_up=list(workload.gave_up),
        examples=examples,
        wall=wall,
        workers=args.workers,
        attempts=workload.attempts,
        busy_seconds=workload.busy_seconds,
        latencies=latencies,
        listen=config.listen,
        poll_interval=config.poll_interval,
    )
    return outcome, demo_dsn


def _pick_examples(gave_up: Iterable[GaveUp], count: int = 3) -> list[GaveUp]:
    """Up to ``count`` failed jobs, as varied as possible: out of attempts first, one per job type,
    then one per corrupt document."""
    chosen: list[GaveUp] = []
    seen: set[object] = set()
    candidates = sorted(gave_up, key=lambda g: g.permanent)
    for item in candidates:
        key = ("document", item.document_id) if item.permanent else ("type", item.job_type)
        if len(chosen) < count and key not in seen:
            chosen.append(item)
            seen.add(key)
    for item in candidates:
        if len(chosen) < count and item not in chosen:
            chosen.append(item)
    return chosen


def format_summary(outcome: Outcome) -> str:
    label = "  {:<13} {}".format
    more = " " * 16
    lines = ["", "docko-worker demo: summary"]
    jobs = f"{outcome.jobs} for {outcome.documents} documents, {outcome.workers} workers"
    lines.append(label("jobs", jobs))
    for job_type, states in outcome.by_type.items():
        queue_name, attempts = JOB_TYPES[job_type]
        detail = f"{states['completed']:>6} completed {states['failed']:>4} failed"
        others = sum(n for state, n in states.items() if state not in ("completed", "failed"))
        if others:
            detail += f" {others:>4} unfinished"
        lines.append(
            f"    {job_type:<12} {sum(states.values()):>6} {detail}"
            f"   queue {queue_name}, {attempts} attempts"
        )
    completed = sum(states["completed"] for states in outcome.by_type.values())
    failed = sum(states["failed"] for states in outcome.by_type.values())
    lines.append(label("completed", completed))
    lines.append(label("retried", f"{outcome.retried} failed attempts, retried with backoff"))
    permanent = sum(1 for g in outcome.gave_up if g.permanent)
    reasons = []
    if permanent:
        reasons.append(f"{permanent} on corrupt documents (PermanentError, not retried)")
    if len(outcome.gave_up) > permanent:
        reasons.append(f"{len(outcome.gave_up) - permanent} out of attempts")
    if failed > len(outcome.gave_up):
        reasons.append(f"{failed - len(outcome.gave_up)} unexpected (see the log above)")
    lines.append(label("failed", f"{failed}: {', '.join(reasons)}" if reasons else failed))
    for job in outcome.examples:
        lines.append(
            f"    {job.job_type} {str(job.id)[:8]} {job.attempt}/{job.max_attempts}  "
            f"{job.last_error}"
        )
    average = outcome.busy_seconds / outcome.attempts * 1000 if outcome.attempts else 0.0
    lines.append(
        label("wall time", f"{outcome.wall:.2f} s (simulated work averages {average:.0f} ms)")
    )
    lines.append(label("throughput", f"{outcome.jobs / outcome.wall:,.0f} jobs/s"))
    if outcome.latencies:
        wake = (
            "woken by LISTEN/NOTIFY"
            if outcome.listen
            else f"found by polling every {outcome.poll_interval:g} s as DOCKO_LISTEN=false"
        )
        lines.append(
            label(
                "latency",
                f"p50 {statistics.median(outcome.latencies):.1f} ms, "
                f"max {max(outcome.latencies):.1f} ms from enqueue to handler start",
            )
        )
        lines.append(
            f"{more}({len(outcome.latencies)} jobs sent {PROBE_GAP * 1000:.0f} ms apart "
            f"to the idle daemon, {wake})"
        )
    else:
        lines.append(label("latency", "no latency probe started within 5 s"))
    unfinished = outcome.jobs - completed - failed
    if unfinished:
        lines.append(label("unfinished", f"{unfinished} (neither completed nor failed)"))
    return "\n".join(lines)


def _run(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T | None:
    """Run ``main`` on uvloop where available; SIGTERM stops it as Ctrl-C does (returns None)."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass

    async def guarded() -> _T:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            return runner.run(guarded())
        except asyncio.CancelledError:
            return None


def check_arguments(jobs: int, workers: int, failure_rate: float) -> None:
    if jobs < 1:
        raise DockoError(f"--jobs must be at least 1, got {jobs}")
    if workers < 1:
        raise DockoError(f"--workers must be at least 1, got {workers}")
    if not 0.0 <= failure_rate <= 1.0:
        raise DockoError(f"--failure-rate must be between 0 and 1, got {failure_rate:g}")


def run_demo(*, jobs: int, workers: int | None, failure_rate: float) -> int:
    """Run the demo (see the module docstring); returns the exit status."""
    args = DemoArguments(jobs, DEFAULT_WORKERS if workers is None else workers, failure_rate)
    check_arguments(args.jobs, args.workers, args.failure_rate)
    base = load_config()
    display = Display(sys.stdout)
    saved_logging = structlog.get_config()
    configure_logging("warning", base.log_format)
    structlog.configure(
        processors=[_quiet_simulated_failures(display), *structlog.get_config()["processors"]]
    )
    try:
        display.say(
            f"docko-worker demo: {args.jobs} jobs, {args.workers} workers, "
            f"{args.failure_rate:.0%} of attempts fail"
        )
        if base.database_url:
            return _demo_and_summary(args, base, base.database_url, display, embedded=False)
        from .embedded import start_embedded_postgres

        display.say("DOCKO_DATABASE_URL is not set: starting an embedded PostgreSQL (pgserver)")
        with start_embedded_postgres() as server:
            display.say(
                f"embedded PostgreSQL ready in {server.started_in:.1f} s "
                f"(data in {server.directory}, deleted at exit)"
            )
            status = _demo_and_summary(args, base, server.dsn, display, embedded=True)
        display.say(f"embedded PostgreSQL stopped, {server.directory} deleted")
        return status
    except KeyboardInterrupt:
        display.end_progress()
        display.say("demo interrupted")
        raise
    finally:
        display.end_progress()
        structlog.configure(**saved_logging)


def _program() -> str:
    """The command to run docko-worker again, as this one was (``.venv/bin/docko-worker``)."""
    invoked = sys.argv[0]
    if os.path.basename(invoked) == "docko-worker" and os.path.isfile(invoked):
        relative = os.path.relpath(invoked)
        if not relative.startswith(".."):
            return relative
    return "docko-worker"


def _demo_and_summary(
    args: DemoArguments, base: Config, server_dsn: str, display: Display, *, embedded: bool
) -> int:
    result = _run(lambda: _demo(args, base, server_dsn, display))
    if result is None:
        display.end_progress()
        display.say("demo interrupted")
        return 128 + signal.SIGTERM
    outcome, demo_dsn = result
    display.say(format_summary(outcome))
    if not embedded:
        display.say(
            f"  {'kept':<13} the jobs stay in {DEMO_DATABASE} until the next demo; to see them:\n"
            f"{'':16}DOCKO_DATABASE_URL='{redact_dsn(demo_dsn)}' {_program()} stats"
        )
    display.say()
    return 0
