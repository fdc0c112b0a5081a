"""The ``docko-worker`` command's entry point: the CLI, imported with garbage collection paused.

A start-up is mostly imports (pydantic, asyncpg, structlog, the CLI's own modules, then the
handlers' entry points). They allocate a few hundred thousand objects that live as long as the
process, and the cyclic collector, set off every 700 allocations, traverses them again and again
to find nothing it can free: about a tenth of the start-up of ``docko-worker run`` (see
``benchmarks/startup.py``). So it is paused while they are imported, and what they built is then
frozen (``gc.freeze``: out of every later collection's way), as ``daemon.tune_garbage_collector``
does anyway once the daemon has started.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside; what exists at the end is frozen."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def main() -> int:
    with collection_paused():
        from .cli import main as cli_main
    return cli_main()
