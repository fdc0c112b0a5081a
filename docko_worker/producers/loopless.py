"""Running a coroutine that never suspends, without an event loop.

The sync producers (``docko_worker.enqueue`` on a psycopg, SQLAlchemy or Django connection) run
the same code as the async ones: ``Queue.enqueue`` and ``JobStore``, over a connection adapter
whose coroutines block on the driver instead of awaiting anything. Such a coroutine finishes at
its first step, so it needs no event loop, and works in a thread that has one running (a sync
Django view under ASGI) as well as in one that has none. Should anything in it ever await for real,
``run_without_loop`` says so instead of hanging.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_without_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of ``coroutine``, which must finish without suspending."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError(
        "a sync producer's coroutine awaited something that needs an event loop; "
        "this is a bug of docko-worker"
    )
