"""Handlers that the registry tests point hand-made entry points at (not a test module)."""

from __future__ import annotations

from collections.abc import Iterator

from docko_worker import Job, handler_options


async def ocr(job: Job) -> None:
    """A plain async handler."""


async def thumbnail(job: Job) -> None:
    """A second async handler, for a second job type."""


@handler_options(timeout=12.5)
async def slow_index(job: Job) -> None:
    """An async handler that carries its own timeout."""


def blocking_handler(job: Job) -> None:
    """A plain def: registered to run in a thread."""


def generator_handler(job: Job) -> Iterator[None]:
    """A generator function: calling it runs nothing, so the registry must refuse it."""
    yield


class HandlerClass:
    """A class: calling it builds an object, so the registry must refuse it."""

    def __init__(self, job: Job) -> None:
        self.job = job


class CallableHandler:
    """An object whose ``__call__`` is async counts as an async handler."""

    async def __call__(self, job: Job) -> None:
        return None


callable_handler = CallableHandler()

not_a_handler = 42
