"""Handler middleware (``queue.add_middleware``, ``DOCKO_MIDDLEWARE``): every handler call runs
through them, outermost first; what they raise or swallow decides the attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from docko_worker import Config, DockoError, Job, JobState, Queue, RegistryError
from docko_worker.middleware import CallNext, Middleware
from tests.integration.support import running_queue, wait_for_state

# What the middleware of this module saw, in order (DOCKO_MIDDLEWARE names one of them).
CALLS: list[str] = []


def recording(name: str) -> Middleware:
    async def middleware(job: Job, call_next: CallNext) -> None:
        CALLS.append(f"{name} before {job.job_type}")
        try:
            await call_next(job)
        finally:
            CALLS.append(f"{name} after")

    return middleware


from_environment = recording("env")


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    CALLS.clear()


async def handler(job: Job) -> None:
    CALLS.append(f"handler {job.payload['n']}")


async def run_one(config: Config, queue: Queue, *middleware: Middleware, **handlers: Any) -> Job:
    job = await queue.enqueue("default", "work", {"n": 1}, max_attempts=2)
    async with await Queue.connect(config) as daemon:
        for item in middleware:
            daemon.add_middleware(item)
        daemon.register_handler("work", handlers.get("work", handler))
        await daemon.start()
        final = await wait_for_state(daemon, job.id, JobState.COMPLETED)
    return final


async def test_middleware_wraps_the_handler_in_the_order_added(
    config: Config, queue: Queue
) -> None:
    await run_one(config, queue, recording("outer"), recording("inner"))

    assert CALLS == [
        "outer before work",
        "inner before work",
        "handler 1",
        "inner after",
        "outer after",
    ]


async def test_middleware_from_docko_middleware_comes_first(
    make_config: Callable[..., Config], queue: Queue
) -> None:
    config = make_config(middleware=f"{__name__}:from_environment")

    await run_one(config, queue, recording("added"))

    assert CALLS[:2] == ["env before work", "added before work"]


async def test_what_a_middleware_raises_fails_the_attempt_and_what_it_swallows_does_not(
    config: Config, queue: Queue
) -> None:
    async def refuses_first_attempt(job: Job, call_next: CallNext) -> None:
        if job.attempt == 1:
            raise RuntimeError("refused by middleware")
        await call_next(job)

    async def failing(_job: Job) -> None:
        raise RuntimeError("never seen")

    async def swallows(job: Job, call_next: CallNext) -> None:
        try:
            await call_next(job)
        except RuntimeError:
            CALLS.append("swallowed")

    job = await run_one(config, queue, refuses_first_attempt)
    assert (job.attempt, job.last_error) == (2, "RuntimeError: refused by middleware")
    CALLS.clear()
    await run_one(config, queue, swallows, work=failing)
    assert CALLS == ["swallowed"]


async def test_the_handlers_timeout_covers_the_middleware(
    make_config: Callable[..., Config], queue: Queue
) -> None:
    async def slow(job: Job, call_next: CallNext) -> None:
        await asyncio.sleep(60)
        await call_next(job)

    config = make_config(job_timeout=0.2)
    job = await queue.enqueue("default", "work", {"n": 1}, max_attempts=1)
    async with await Queue.connect(config) as daemon:
        daemon.add_middleware(slow)
        daemon.register_handler("work", handler)
        await daemon.start()
        failed = await wait_for_state(daemon, job.id, JobState.FAILED)
    assert failed.last_error is not None and failed.last_error.startswith("JobTimeout")


async def test_a_middleware_that_does_not_import_stops_the_start(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(middleware="no_such_module_anywhere:middleware")
    with pytest.raises(RegistryError, match="DOCKO_MIDDLEWARE: 'no_such_module_anywhere"):
        async with running_queue(config, {"work": handler}):
            pass


async def test_middleware_must_be_async_and_added_before_start(
    config: Config, queue: Queue
) -> None:
    def plain(job: Job, call_next: CallNext) -> None:
        pass

    with pytest.raises(DockoError, match="must be an async function"):
        queue.add_middleware(plain)  # type: ignore[arg-type]
    async with running_queue(config, {"work": handler}) as daemon:
        with pytest.raises(DockoError, match="before start"):
            daemon.add_middleware(recording("late"))
