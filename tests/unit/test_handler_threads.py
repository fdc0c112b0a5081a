"""Plain-``def`` handlers: the bounded thread pool, and the executor running them off the loop."""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from docko_worker import ConfigError, Job, JobState, load_config
from docko_worker.executor import Execution, Executor
from docko_worker.outcome import Outcome, OutcomeKind, RetryPolicy
from docko_worker.registry import HandlerRegistry
from docko_worker.threads import HandlerThreads

# Generous: a thread needs a fraction of it; a deadline, never an expectation.
WAIT = 10.0
REQUEST = contextvars.ContextVar("request", default="none")


def make_job(attempt: int = 1) -> Job:
    now = datetime.now(UTC)
    return Job(uuid4(), "q", "sync", {}, JobState.RUNNING, attempt, 3, 0, now, now, now)


@pytest.fixture
def threads() -> Iterator[HandlerThreads]:
    pool = HandlerThreads(2)
    yield pool
    pool.close()


async def test_runs_the_handler_in_another_thread_with_the_callers_context(
    threads: HandlerThreads,
) -> None:
    seen: list[tuple[int, str]] = []

    def handler(job: Job) -> None:
        seen.append((threading.get_ident(), REQUEST.get()))

    REQUEST.set("req-1")
    await threads.run(handler, make_job())
    assert seen == [(seen[0][0], "req-1")]
    assert seen[0][0] != threading.get_ident()


async def test_the_handlers_error_is_raised_to_the_caller(threads: HandlerThreads) -> None:
    def handler(job: Job) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await threads.run(handler, make_job())


async def test_a_plain_def_returning_a_coroutine_is_an_error(threads: HandlerThreads) -> None:
    async def work() -> None:
        return None

    with pytest.raises(TypeError, match="async def"):
        await threads.run(lambda job: work(), make_job())


async def test_an_abandoned_thread_keeps_its_slot_until_it_ends() -> None:
    threads = HandlerThreads(1)
    release = threading.Event()
    ran: list[str] = []
    started = threading.Event()

    def stuck(job: Job) -> None:
        ran.append("stuck started")
        started.set()
        release.wait(WAIT)
        ran.append("stuck ended")

    def quick(job: Job) -> None:
        ran.append("quick")

    first = asyncio.create_task(threads.run(stuck, make_job()))
    assert await asyncio.to_thread(started.wait, WAIT)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first  # at once: the thread is abandoned, not waited for
    assert threads.abandoned == 1

    second = asyncio.create_task(threads.run(quick, make_job()))
    await asyncio.sleep(0.1)
    assert not second.done(), "the only slot is still taken by the abandoned thread"
    release.set()
    await asyncio.wait_for(second, WAIT)
    assert ran == ["stuck started", "stuck ended", "quick"]
    assert threads.abandoned == 0
    threads.close()


async def test_no_more_threads_than_the_pool_size_run_at_once() -> None:
    threads = HandlerThreads(2)
    lock = threading.Lock()
    running = peak = 0
    gate = threading.Event()

    def handler(job: Job) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(0.05)
        with lock:
            running -= 1

    await asyncio.gather(*(threads.run(handler, make_job()) for _ in range(8)))
    assert peak == 2
    threads.close()


def run_executor(
    registry: HandlerRegistry,
    job_type: str,
    threads: HandlerThreads,
    handler_started: threading.Event,
    loop_turned: threading.Event,
) -> Outcome | None:
    """One run through ``Executor.run``; ``loop_turned`` is set by the event loop once the handler
    has started, which it can only do if the handler does not hold the loop."""

    async def main() -> Outcome | None:
        async def watch() -> None:
            if await asyncio.to_thread(handler_started.wait, WAIT):
                loop_turned.set()

        watcher = asyncio.create_task(watch())
        executor = Executor(
            policy=RetryPolicy(0.01, 0.05),
            default_timeout=None,
            on_abandoned=lambda execution, outcome: None,
            threads=threads,
            rng=random.Random(1),
        )
        task = asyncio.current_task()
        assert task is not None
        registered = registry.get(job_type)
        assert registered is not None
        try:
            return await executor.run(Execution(make_job(), task), registered)
        finally:
            watcher.cancel()

    return asyncio.run(main())


def test_a_sync_handler_past_its_timeout_is_a_failed_attempt_and_never_blocks_the_loop() -> None:
    started, loop_turned, release = threading.Event(), threading.Event(), threading.Event()
    saw_the_loop: list[bool] = []

    def blocking(job: Job) -> None:
        started.set()
        saw_the_loop.append(loop_turned.wait(WAIT))
        release.wait(WAIT)

    registry = HandlerRegistry()
    registry.register("sync", blocking, timeout=0.5)
    threads = HandlerThreads(1)
    try:
        outcome = run_executor(registry, "sync", threads, started, loop_turned)
    finally:
        release.set()
        threads.close()
    assert outcome is not None
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error is not None and outcome.error.startswith("JobTimeout")
    # The loop turned while the handler blocked: it ran in its own thread.
    assert saw_the_loop == [True]


def test_a_sync_handler_that_returns_is_completed() -> None:
    started, loop_turned = threading.Event(), threading.Event()

    def handler(job: Job) -> None:
        started.set()

    registry = HandlerRegistry()
    registry.register("sync", handler)
    threads = HandlerThreads(1)
    try:
        outcome = run_executor(registry, "sync", threads, started, loop_turned)
    finally:
        threads.close()
    assert outcome is not None and outcome.kind is OutcomeKind.COMPLETED


def test_thread_pool_size_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config().thread_pool_size == 16
    monkeypatch.setenv("DOCKO_THREAD_POOL_SIZE", "3")
    assert load_config().thread_pool_size == 3
    for bad in ("0", "1025", "many"):
        monkeypatch.setenv("DOCKO_THREAD_POOL_SIZE", bad)
        with pytest.raises(ConfigError, match="DOCKO_THREAD_POOL_SIZE"):
            load_config()
