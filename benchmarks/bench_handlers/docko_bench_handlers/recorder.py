"""The bookkeeping every benchmarked worker does, at the same cost for every system.

Each handler calls ``record(seq, enqueued_at)`` first thing. One line per job,
``"<seq> <enqueued_at> <started_at>"`` (``time.time()`` floats), is streamed through a 1 MiB
buffer to the file named by ``BENCH_RECORD_FILE`` and flushed when the interpreter exits, which
it does after each worker's graceful SIGTERM shutdown. The harness checks the multiset of seqs
against what it enqueued (every job ran exactly once) and computes enqueue-to-start latency.
Streaming keeps the worker's memory flat, so peak RSS is the system's, not the bookkeeping's.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import TextIO

RECORD_FILE_ENV = "BENCH_RECORD_FILE"
_BUFFER_BYTES = 1 << 20

_out: TextIO | None = None
# Sync handlers record from several threads: the file is opened once.
_opening = threading.Lock()


def _open() -> TextIO | None:
    global _out
    path = os.environ.get(RECORD_FILE_ENV)
    if not path:
        return None
    with _opening:
        if _out is None:
            _out = open(path, "a", buffering=_BUFFER_BYTES, encoding="ascii")  # noqa: SIM115
            atexit.register(_out.close)
    return _out


def record(seq: int, enqueued_at: float) -> None:
    """Note that job ``seq`` (enqueued at ``enqueued_at``) started now."""
    started_at = time.time()
    out = _out or _open()
    if out is not None:
        out.write(f"{seq} {enqueued_at!r} {started_at!r}\n")
