"""Per-type defaults at work: applied at enqueue by a queue that knows the type, and the type's
own backoff between its retries."""

from __future__ import annotations

from collections.abc import Callable

from docko_worker import Config, HandlerOptions, Job, JobState, Queue, handler_options
from tests.integration.support import wait_for_state


@handler_options(max_attempts=9, priority=-3)
async def ocr(job: Job) -> None:
    return None


async def test_a_registered_types_defaults_apply_at_enqueue_and_a_jobs_own_values_win(
    queue: Queue,
) -> None:
    queue.register_handler("ocr", ocr)
    by_default = await queue.enqueue("default", "ocr", {})
    own = await queue.enqueue("default", "ocr", {}, max_attempts=2, priority=4)
    [bulk_id] = await queue.enqueue_many("default", "ocr", [{}])
    other = await queue.enqueue("default", "index", {})
    bulk = await queue.get_job(bulk_id)
    assert (by_default.max_attempts, by_default.priority) == (9, -3)
    assert (own.max_attempts, own.priority) == (2, 4)
    assert bulk is not None and (bulk.max_attempts, bulk.priority) == (9, -3)
    assert (other.max_attempts, other.priority) == (queue.config.max_attempts, 0)


async def test_a_types_retry_backoff_is_its_own(make_config: Callable[..., Config]) -> None:
    """The global backoff here is an hour; the type's is 50 ms, so its retries come at once."""
    attempts: list[int] = []

    async def flaky(job: Job) -> None:
        attempts.append(job.attempt)
        if job.attempt < 3:
            raise ConnectionError("storage busy")

    config = make_config(base_retry_delay=3600, max_retry_delay=3600)
    async with await Queue.connect(config) as queue:
        queue.register_handler(
            "flaky", flaky, options=HandlerOptions(retry_base_delay=0.05, retry_max_delay=0.05)
        )
        await queue.start()
        job = await queue.enqueue("default", "flaky", {})
        done = await wait_for_state(queue, job.id, JobState.COMPLETED, timeout=15)
    assert attempts == [1, 2, 3]
    assert done.attempt == 3
