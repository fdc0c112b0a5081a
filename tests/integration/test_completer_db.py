"""The completer against a real database: batches, guards, and one bad outcome among good ones."""

from __future__ import annotations

from docko_worker import Job, JobState, Queue
from docko_worker.completer import Completer
from docko_worker.held import HeldJobs
from tests.integration.support import store_of


async def claim(queue: Queue, count: int) -> list[Job]:
    for n in range(count):
        await queue.enqueue("default", "ocr", {"n": n})
    return await store_of(queue).claim_jobs(
        queues=["default"], job_types=["ocr"], limit=count, worker_id="w", lease_seconds=60
    )


def completer_for(queue: Queue, held: HeldJobs) -> Completer:
    return Completer(
        store_of(queue), held, batch_size=10, flush_interval=0.001, delete_completed=False
    )


async def test_written_outcomes_leave_the_held_jobs(queue: Queue) -> None:
    jobs = await claim(queue, 3)
    held = HeldJobs()
    held.add(jobs)
    completer = completer_for(queue, held)
    completer.start()
    completer.complete(jobs[0])
    completer.retry(jobs[1], 0.0, "ValueError: again")
    completer.fail(jobs[2], "ValueError: no")
    assert await completer.close(grace=5) == []

    assert len(held) == 0
    assert (completer.totals.written, completer.totals.refused) == (3, 0)
    states = [(await queue.get_job(job.id)).state for job in jobs]  # type: ignore[union-attr]
    assert states == [JobState.COMPLETED, JobState.AVAILABLE, JobState.FAILED]


async def test_an_outcome_the_database_refuses_does_not_hold_up_the_others(queue: Queue) -> None:
    """A retry delay PostgreSQL cannot add to a timestamp fails its statement; before, the whole
    batch was retried forever and no outcome of the daemon was written again."""
    bad, good_retry, good_done = await claim(queue, 3)
    held = HeldJobs()
    held.add([bad, good_retry, good_done])
    completer = completer_for(queue, held)
    completer.start()
    completer.retry(bad, 1e300, "ValueError: bad")
    completer.retry(good_retry, 0.0, "ValueError: fine")
    completer.complete(good_done)
    assert await completer.close(grace=10) == []

    assert completer.totals.rejected == 1
    retried = await queue.get_job(good_retry.id)
    done = await queue.get_job(good_done.id)
    left = await queue.get_job(bad.id)
    assert retried is not None and retried.state is JobState.AVAILABLE
    assert done is not None and done.state is JobState.COMPLETED
    # Its lease is no longer extended by this process: it returns once the lease expires.
    assert left is not None and left.state is JobState.RUNNING
    assert not held.holds(bad)


async def test_close_returns_what_it_could_not_write(queue: Queue) -> None:
    [job] = await claim(queue, 1)
    held = HeldJobs()
    held.add([job])
    completer = completer_for(queue, held)
    completer.start()
    async with queue.pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE docko_jobs IN ACCESS EXCLUSIVE MODE")
        completer.complete(job)
        unwritten = await completer.close(grace=0.5)
    assert [j.id for j in unwritten] == [job.id]
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.state is JobState.RUNNING
