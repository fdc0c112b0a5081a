"""Container health: the daemon touches a file while its event loop runs; ``healthcheck`` reads it.

A file needs no port, works with any orchestrator's exec probe, and goes stale exactly when the
event loop stops turning (a hung or blocked daemon), which is what a liveness probe should catch.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import structlog

from .errors import describe_error

log = structlog.get_logger("docko_worker.health")


def check_max_age(max_age: float) -> float:
    """``max_age`` if it is a finite number of seconds above zero, else ``ValueError``.

    NaN compares false with every age and infinity exceeds none: either would call a daemon
    that stopped long ago healthy.
    """
    if not (math.isfinite(max_age) and max_age > 0):
        raise ValueError(f"the maximum age must be a positive number of seconds, got {max_age!r}")
    return max_age


def check_health_file(path: str, max_age: float) -> tuple[bool, str]:
    """Whether ``path`` was touched within ``max_age`` seconds, and a one-line reason."""
    check_max_age(max_age)
    try:
        age = time.time() - Path(path).stat().st_mtime
    except FileNotFoundError:
        return False, f"unhealthy: {path} does not exist (daemon not started?)"
    except OSError as exc:
        return False, f"unhealthy: cannot read {path}: {exc}"
    if age > max_age:
        return False, f"unhealthy: {path} last touched {age:.0f}s ago (limit {max_age:g}s)"
    return True, f"healthy: {path} touched {age:.1f}s ago"


async def keep_touching(path: str, interval: float) -> None:
    """Touch ``path`` every ``interval`` seconds while the event loop turns (the daemon's side)."""
    target = Path(path)
    while True:
        try:
            await asyncio.to_thread(target.touch)
        except OSError as exc:
            log.warning("health_file_unwritable", path=path, error=describe_error(exc))
        await asyncio.sleep(interval)
