"""No-op benchmark handlers; ``noop`` (async) and ``noop_sync`` (a plain def, run in the daemon's
threads) are docko-worker's, registered by entry point, as is ``sleep`` (async: the same
bookkeeping, then ``asyncio.sleep`` for the payload's ``sleep`` seconds), for the scenario that
holds thousands of long-running jobs.

The pgqueuer and procrastinate workers live in ``pgqueuer_app`` and ``procrastinate_app``. Every
handler does the same thing: ``record(payload seq, payload enqueue time)`` and return.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .recorder import record

__all__ = ["noop", "noop_sync", "record", "sleep"]


async def noop(job: Any) -> None:
    """docko-worker handler (``docko_worker.Job``): the payload is already decoded JSON."""
    payload = job.payload
    record(payload["seq"], payload["t"])


def noop_sync(job: Any) -> None:
    """docko-worker's sync handler: the same bookkeeping, from one of the daemon's threads."""
    payload = job.payload
    record(payload["seq"], payload["t"])


async def sleep(job: Any) -> None:
    """docko-worker handler: the bookkeeping, then a long wait (``payload["sleep"]`` seconds)."""
    payload = job.payload
    record(payload["seq"], payload["t"])
    await asyncio.sleep(payload["sleep"])
