"""The demo's sample workload: the documents, the jobs enqueued for them and the handlers.

This module owns what the demo processes and how: the queues and job types (with their attempts),
the sample documents (the same ones on every run), the payload a producer would enqueue for each
job, and ``DocumentWorkload``, the example handlers that simulate the work and its failures. The
handlers also note what the summary reports: attempts, simulated seconds, jobs given up for good
and the start times of the latency probes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ..errors import PermanentError
from ..job import Job
from ..periodic import Periodic

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
# The demo's periodic job: a report on the queues, every second while the demo runs.
REPORT_NAME = "queue-report"
REPORT_JOB_TYPE = "queue_report"
REPORT_EVERY = 1
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

_KINDS = (  # kind of document, fewest and most pages
    ("invoice", 1, 3),
    ("receipt", 1, 1),
    ("contract", 6, 40),
    ("scan", 1, 12),
    ("report", 10, 60),
    ("letter", 1, 4),
)
_TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")


def periodic_jobs() -> list[Periodic]:
    """The periodic jobs the demo's daemon runs: one, every ``REPORT_EVERY`` seconds."""
    return [
        Periodic(
            REPORT_NAME,
            every=REPORT_EVERY,
            queue_name=DOCUMENTS_QUEUE,
            job_type=REPORT_JOB_TYPE,
            payload={"report": "queue depths"},
        )
    ]


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
        self.report_slots: list[datetime] = []

    def handlers(self) -> dict[str, Callable[[Job], Awaitable[None]]]:
        return {
            "ocr": self.ocr,
            "thumbnail": self.thumbnail,
            "extract_text": self.extract_text,
            "index": self.index,
            PROBE_JOB_TYPE: self.latency_probe,
            REPORT_JOB_TYPE: self.queue_report,
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

    async def queue_report(self, job: Job) -> None:
        """The periodic job: notes the slot it covers (its ``run_at``)."""
        self.report_slots.append(job.run_at)

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
