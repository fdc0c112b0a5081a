"""Example docko-worker handlers: ``ocr``, a stand-in for real OCR work.

Enqueue one with::

    docko-worker enqueue documents ocr '{"document_id": 42, "pages": 3}'

A handler is ``async def handler(job: Job) -> None``: it returns to complete the job, raises to
have it retried with backoff, and raises ``PermanentError`` for a job that no retry can fix.
"""

from __future__ import annotations

import asyncio

import structlog

from docko_worker import Job, PermanentError, handler_options

log = structlog.get_logger("docko_example_handlers")

SECONDS_PER_PAGE = 0.05


@handler_options(timeout=60)
async def ocr(job: Job) -> None:
    """Pretend to OCR ``payload["document_id"]``: sleep a little per page, then log the result."""
    payload = job.payload
    if not isinstance(payload, dict) or not isinstance(payload.get("document_id"), int):
        raise PermanentError('payload must be an object like {"document_id": 42, "pages": 3}')
    pages = payload.get("pages", 1)
    if not isinstance(pages, int) or pages < 1:
        raise PermanentError("payload 'pages' must be a positive integer")
    await asyncio.sleep(pages * SECONDS_PER_PAGE)  # real code would await an OCR service here
    log.info(
        "ocr_done",
        job_id=str(job.id),
        document_id=payload["document_id"],
        pages=pages,
        attempt=job.attempt,
    )
