"""Bounded waiting for tasks at shutdown, so a database that stopped answering cannot hang it.

``asyncio.wait_for`` and ``gather`` wait for a cancelled task to finish cancelling, and a task
stuck in a driver call to a frozen server may never finish. ``settle`` cancels, waits a bounded
time, and reports what it had to leave behind instead of waiting on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection


async def settle(
    tasks: Collection[asyncio.Task[None]], *, grace: float, cancel_first: bool = True
) -> set[asyncio.Task[None]]:
    """Wait up to ``grace`` seconds for ``tasks`` (cancelling them first, or on timeout).

    Returns the tasks still running: they are cancelled but abandoned.
    """
    if not tasks:
        return set()
    if cancel_first:
        for task in tasks:
            task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=grace)
    if pending and not cancel_first:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(grace, 1.0))
    return pending
