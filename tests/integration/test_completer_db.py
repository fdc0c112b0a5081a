"""The completer against a real database: what it reports after a write never undoes the write."""

from __future__ import annotations

from docko_worker import JobState, Queue
from docko_worker.completer import Completer


async def test_a_failing_report_is_not_taken_for_a_failed_write(queue: Queue) -> None:
    await queue.enqueue("default", "ocr", {})
    [job] = await queue.store.claim_jobs(
        queues=["default"], job_types=["ocr"], limit=1, worker_id="w", lease_seconds=60
    )
    reports: list[object] = []

    def broken(items: list[object]) -> None:
        reports.append(items)
        raise RuntimeError("a bug in the callback")

    completer = Completer(
        queue.store,
        batch_size=10,
        flush_interval=0.001,
        delete_completed=False,
        on_written=broken,
        on_retries_written=broken,
    )
    completer.start()
    completer.complete(job)
    await completer.close(grace=5)

    # Written once, reported once: not retried into a refusal by its own attempt guard.
    assert (completer.totals.written, completer.totals.refused) == (1, 0)
    assert len(reports) == 1
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED
