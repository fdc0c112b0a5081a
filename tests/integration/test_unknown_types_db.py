"""The warning about due jobs of types this daemon has no handler for, and the completed-job log."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from structlog.testing import capture_logs

from docko_worker import Config, Job, JobState
from docko_worker.maintenance import UnknownTypeWatch
from tests.integration.support import running_queue, store_of, wait_for_state


async def test_jobs_of_an_unknown_type_waiting_a_minute_are_warned_about_once(
    make_config: Callable[..., Config], db: asyncpg.Connection
) -> None:
    async def handle(job: Job) -> None:
        return None

    async with running_queue(make_config(), {"ocr": handle}) as queue:
        fresh = await queue.enqueue("default", "thumbnail", {})
        stale = await queue.enqueue_many("default", "thumbnail", [{}, {}])
        elsewhere = await queue.enqueue("other", "index", {})
        await db.execute(
            "UPDATE docko_jobs SET run_at = now() - interval '5 minutes'"
            " WHERE id = ANY($1::uuid[])",
            [*stale, elsewhere.id],
        )
        watch = UnknownTypeWatch(store_of(queue), ["default"], ["ocr"])
        with capture_logs() as logs:
            first = await watch.run_once()
            again = await watch.run_once()
        assert (await queue.get_job(fresh.id)).state is JobState.AVAILABLE  # type: ignore[union-attr]

    assert first == [("default", "thumbnail")]
    assert again == []
    [warning] = [e for e in logs if e["event"] == "jobs_waiting_for_unknown_type"]
    assert (warning["queue"], warning["job_type"], warning["waiting"]) == (
        "default",
        "thumbnail",
        2,
    )
    assert warning["oldest_wait"] >= 299


async def test_completed_jobs_are_logged_at_info_when_asked(
    make_config: Callable[..., Config],
) -> None:
    async def handle(job: Job) -> None:
        return None

    with capture_logs() as logs:
        async with running_queue(make_config(log_completed=True), {"ocr": handle}) as queue:
            job = await queue.enqueue("default", "ocr", {})
            await wait_for_state(queue, job.id, JobState.COMPLETED)
    [done] = [e for e in logs if e["event"] == "job_completed"]
    assert done["log_level"] == "info"
    assert done["job_id"] == str(job.id)
    assert done["duration"] >= 0
