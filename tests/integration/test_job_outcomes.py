"""What a worker records for each handler outcome: retries with backoff until ``max_attempts``,
success after a failure, ``PermanentError``, per-handler and global timeouts, and job types no
handler is registered for (left waiting)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable

from docko_worker import Config, Job, JobState, PermanentError
from tests.integration.support import running_queue, wait_for_state, wait_until


class NotADocument(PermanentError):
    pass


async def test_always_failing_job_is_failed_after_max_attempts(
    make_config: Callable[..., Config],
) -> None:
    attempts: list[int] = []

    async def broken(job: Job) -> None:
        attempts.append(job.attempt)
        raise ValueError(f"cannot parse page {job.payload['page']}")

    async with running_queue(make_config(), {"ocr": broken}) as queue:
        job = await queue.enqueue("default", "ocr", {"page": 3}, max_attempts=3)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)

    assert attempts == [1, 2, 3]
    assert failed.attempt == 3
    assert failed.last_error is not None
    assert "ValueError" in failed.last_error
    assert "cannot parse page 3" in failed.last_error
    assert failed.finished_at is not None
    assert failed.lease_expires_at is None


async def test_default_max_attempts_comes_from_config(
    make_config: Callable[..., Config],
) -> None:
    async def broken(job: Job) -> None:
        raise RuntimeError("nope")

    async with running_queue(make_config(max_attempts=2), {"ocr": broken}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
    assert failed.max_attempts == 2
    assert failed.attempt == 2


async def test_failed_attempt_waits_for_its_retry_with_the_error(
    make_config: Callable[..., Config],
) -> None:
    async def flaky(job: Job) -> None:
        raise ConnectionError("storage unreachable")

    # A long backoff, so the job is seen waiting as 'available' for its retry.
    config = make_config(base_retry_delay=600, max_retry_delay=600)
    async with running_queue(config, {"ocr": flaky}) as queue:
        job = await queue.enqueue("default", "ocr", {})

        async def retry_scheduled() -> Job | None:
            current = await queue.get_job(job.id)
            if current is None or current.state is not JobState.AVAILABLE:
                return None
            return current if current.attempt == 1 else None

        waiting = await wait_until(retry_scheduled)
    assert waiting.last_error is not None
    assert "ConnectionError: storage unreachable" in waiting.last_error
    assert waiting.worker_id is None
    assert waiting.lease_expires_at is None
    assert waiting.finished_at is None
    assert waiting.run_at >= waiting.updated_at


def fails_on_first_attempt(attempts: list[int]) -> Callable[[Job], Awaitable[None]]:
    """A handler that notes each attempt and fails the first."""

    async def flaky(job: Job) -> None:
        attempts.append(job.attempt)
        if job.attempt == 1:
            raise ConnectionError("storage unreachable")

    return flaky


async def test_job_that_fails_once_then_succeeds_is_completed_on_attempt_two(
    make_config: Callable[..., Config],
) -> None:
    attempts: list[int] = []
    flaky = fails_on_first_attempt(attempts)

    async with running_queue(make_config(), {"ocr": flaky}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        completed = await wait_for_state(queue, job.id, JobState.COMPLETED)
    assert attempts == [1, 2]
    assert completed.attempt == 2
    assert completed.finished_at is not None


async def test_an_idle_daemon_runs_a_retry_when_its_backoff_ends_not_at_the_next_poll(
    make_config: Callable[..., Config],
) -> None:
    attempts: list[int] = []
    flaky = fails_on_first_attempt(attempts)

    # The next poll is a minute away, and a retry writes no NOTIFY to wake the daemon.
    config = make_config(poll_interval=60, base_retry_delay=0.2, max_retry_delay=0.2)
    async with running_queue(config, {"ocr": flaky}) as queue:
        job = await queue.enqueue("default", "ocr", {})
        completed = await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=10)
    assert attempts == [1, 2]
    assert completed.attempt == 2


async def test_permanent_error_fails_at_once(make_config: Callable[..., Config]) -> None:
    attempts: list[int] = []

    async def reject(job: Job) -> None:
        attempts.append(job.attempt)
        raise NotADocument("file is a zip bomb")

    async with running_queue(make_config(), {"ocr": reject}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=5)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
    assert attempts == [1]
    assert failed.attempt == 1
    assert failed.last_error is not None
    assert "NotADocument" in failed.last_error
    assert "file is a zip bomb" in failed.last_error


async def test_per_handler_timeout_is_a_failed_attempt(
    make_config: Callable[..., Config],
) -> None:
    attempts: list[int] = []
    cancelled: list[int] = []

    async def stuck(job: Job) -> None:
        attempts.append(job.attempt)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(job.attempt)
            raise

    config = make_config(job_timeout=60)
    async with running_queue(config, {"ocr": stuck}, timeouts={"ocr": 0.2}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=2)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
    assert attempts == [1, 2]
    assert cancelled == [1, 2]
    assert failed.attempt == 2
    assert failed.last_error is not None
    assert "JobTimeout" in failed.last_error


async def test_global_job_timeout_applies_without_a_handler_timeout(
    make_config: Callable[..., Config],
) -> None:
    async def stuck(job: Job) -> None:
        await asyncio.sleep(60)

    async with running_queue(make_config(job_timeout=0.2), {"ocr": stuck}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=1)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
    assert failed.last_error is not None
    assert "JobTimeout" in failed.last_error


async def test_timeout_error_raised_by_the_handler_is_not_a_job_timeout(
    make_config: Callable[..., Config],
) -> None:
    async def upstream_timeout(job: Job) -> None:
        raise TimeoutError("upstream OCR service timed out")

    async with running_queue(make_config(job_timeout=30), {"ocr": upstream_timeout}) as queue:
        job = await queue.enqueue("default", "ocr", {}, max_attempts=1)
        failed = await wait_for_state(queue, job.id, JobState.FAILED)
    assert failed.last_error is not None
    assert "TimeoutError: upstream OCR service timed out" in failed.last_error
    assert "JobTimeout" not in failed.last_error


async def test_job_types_without_a_handler_are_left_waiting(
    make_config: Callable[..., Config],
) -> None:
    async def handle_a(job: Job) -> None:
        return None

    async with running_queue(make_config(), {"a": handle_a}) as queue:
        first_a = await queue.enqueue("default", "a", {})
        b = await queue.enqueue("default", "b", {})
        await wait_for_state(queue, first_a.id, JobState.COMPLETED)
        # Another full claim-and-complete cycle after 'b' was enqueued.
        second_a = await queue.enqueue("default", "a", {})
        await wait_for_state(queue, second_a.id, JobState.COMPLETED)
        waiting = await queue.get_job(b.id)
        counters = queue.counters
    assert waiting is not None
    assert waiting.state is JobState.AVAILABLE
    assert waiting.attempt == 0
    assert waiting.worker_id is None
    assert waiting.last_error is None
    # Never claimed at all (not claimed and handed back): the row was not touched.
    assert waiting.updated_at == b.updated_at
    assert (counters.claimed, counters.released) == (2, 0)


async def test_jobs_of_other_queues_are_left_waiting(make_config: Callable[..., Config]) -> None:
    async def handle(job: Job) -> None:
        return None

    async with running_queue(make_config(), {"ocr": handle}, queues=["documents"]) as queue:
        elsewhere = await queue.enqueue("mail", "ocr", {})
        here = await queue.enqueue("documents", "ocr", {})
        await wait_for_state(queue, here.id, JobState.COMPLETED)
        waiting = await queue.get_job(elsewhere.id)
    assert waiting is not None
    assert waiting.state is JobState.AVAILABLE
    assert waiting.attempt == 0
    assert waiting.updated_at == elsewhere.updated_at


async def test_handler_receives_the_stored_job(make_config: Callable[..., Config]) -> None:
    seen: list[Job] = []

    async def handle(job: Job) -> None:
        seen.append(job)

    async with running_queue(make_config(), {"ocr": handle}) as queue:
        job = await queue.enqueue("default", "ocr", {"document_id": 5}, priority=-2)
        await wait_for_state(queue, job.id, JobState.COMPLETED)
        worker_id = queue.worker_id
    [received] = seen
    assert received.id == job.id
    assert received.payload == {"document_id": 5}
    assert received.state is JobState.RUNNING
    assert received.attempt == 1
    assert received.priority == -2
    assert received.worker_id == worker_id


class Document:
    """Stands for what a handler holds while it works (a document's bytes)."""


async def test_a_failed_job_leaves_nothing_for_the_garbage_collector(
    make_config: Callable[..., Config],
) -> None:
    """What a failing handler held is freed as soon as its outcome is recorded, not when the
    cyclic garbage collector next runs: a run of failures must not pile up documents."""
    held: list[weakref.ref[Document]] = []

    async def broken(job: Job) -> None:
        document = Document()
        held.append(weakref.ref(document))
        raise ValueError(f"cannot parse {document!r}")

    gc.collect()
    gc.disable()
    try:
        async with running_queue(make_config(), {"ocr": broken}) as queue:
            job = await queue.enqueue("default", "ocr", {}, max_attempts=1)
            await wait_for_state(queue, job.id, JobState.FAILED)
            assert len(held) == 1
            await wait_until(lambda: held[0]() is None, timeout=5)
    finally:
        gc.enable()
