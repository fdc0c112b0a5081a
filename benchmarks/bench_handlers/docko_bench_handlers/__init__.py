"""No-op benchmark handlers; ``noop`` is docko-worker's, registered by entry point.

The pgqueuer and procrastinate workers live in ``pgqueuer_app`` and ``procrastinate_app``. Every
handler does the same thing: ``record(payload seq, payload enqueue time)`` and return.
"""

from __future__ import annotations

from typing import Any

from .recorder import record

__all__ = ["noop", "record"]


async def noop(job: Any) -> None:
    """docko-worker handler (``docko_worker.Job``): the payload is already decoded JSON."""
    payload = job.payload
    record(payload["seq"], payload["t"])
