"""Waiting with a deadline: the one polling loop of every test layer, async and blocking.

``wait_until`` (async) and ``wait_until_blocking`` poll a check until it returns something truthy,
and return that; when the deadline passes they fail the test naming what was awaited. A ``Watch``
(the daemons of an e2e or chaos test, see ``tests/daemon_process.py``) is consulted at every poll,
so a daemon that dies meanwhile fails the test at once, and its output goes into the failure
message. ``poll`` and ``poll_blocking`` are the same loops without the failure: they return None
when the deadline passes, for callers that carry on either way.

Imported as ``tests.waiting`` (the project root is on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import pytest

T = TypeVar("T")

#: Seconds between two polls, unless the caller says otherwise.
ASYNC_INTERVAL = 0.02
BLOCKING_INTERVAL = 0.05


class Watch(Protocol):
    """Something that must stay sound while a test waits (daemons that must keep running)."""

    def check(self, what: str) -> None:
        """Fail the test now if what is watched went wrong while waiting for ``what``."""

    def describe(self) -> str:
        """What the failure message shows of it (the daemons' last log lines)."""


Message = str | Callable[[], str] | None


def _timed_out(
    timeout: float, message: Message, check: Callable[..., object], watch: Watch | None
) -> str:
    what = message() if callable(message) else message or getattr(check, "__name__", repr(check))
    text = f"timed out after {timeout:g}s waiting for: {what}"
    return f"{text}\n{watch.describe()}" if watch is not None else text


async def poll(
    check: Callable[[], T | Awaitable[T | None] | None],
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    *,
    interval: float = ASYNC_INTERVAL,
    watch: Watch | None = None,
    what: str = "",
) -> T | None:
    """Await ``check()`` (sync or async) every ``interval`` seconds until it returns something
    truthy, and return that; None once ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if watch is not None:
            watch.check(what)
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(interval)


async def wait_until(
    check: Callable[[], T | Awaitable[T | None] | None],
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    *,
    interval: float = ASYNC_INTERVAL,
    message: Message = None,
    watch: Watch | None = None,
) -> T:
    """``poll``, failing the test with ``message`` (or the check's name) at the deadline."""
    what = message if isinstance(message, str) else ""
    result = await poll(check, timeout, interval=interval, watch=watch, what=what)
    if result is None:
        pytest.fail(_timed_out(timeout, message, check, watch))
    return result


def poll_blocking(
    check: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = BLOCKING_INTERVAL,
    watch: Watch | None = None,
    what: str = "",
) -> T | None:
    """``poll`` for plain (blocking) tests: ``check`` is a plain function."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if watch is not None:
            watch.check(what)
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_until_blocking(
    check: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = BLOCKING_INTERVAL,
    message: Message = None,
    watch: Watch | None = None,
) -> T:
    """``poll_blocking``, failing the test with ``message`` (or the check's name) at the
    deadline."""
    what = message if isinstance(message, str) else ""
    result = poll_blocking(check, timeout, interval=interval, watch=watch, what=what)
    if result is None:
        pytest.fail(_timed_out(timeout, message, check, watch))
    return result
