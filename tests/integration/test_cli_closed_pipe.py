"""A command whose reader goes away (`docko-worker jobs list | head -1`) ends quietly: it is not a
database that cannot be reached."""

from __future__ import annotations

import asyncio
import subprocess

from docko_worker import Queue
from tests.daemon_process import CLI, CLI_TIMEOUT, minimal_environ


def list_into_a_pipe_closed_after_one_line(database_url: str) -> tuple[int, str]:
    """``docko-worker jobs list`` whose reader leaves after the first line; (status, stderr)."""
    env = minimal_environ([])
    env.update(DOCKO_DATABASE_URL=database_url, DOCKO_LOG_FORMAT="json")
    proc = subprocess.Popen(
        [CLI, "jobs", "list", "--limit", "2000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does once it has its line
    status = proc.wait(timeout=CLI_TIMEOUT)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return status, stderr


async def test_jobs_list_into_a_closed_pipe_says_nothing_of_the_database(
    queue: Queue, database_url: str
) -> None:
    # More lines than a pipe holds: the command is still writing when its reader leaves.
    await queue.enqueue_many("default", "ocr", [{"n": n} for n in range(2000)])
    status, stderr = await asyncio.to_thread(list_into_a_pipe_closed_after_one_line, database_url)
    assert "database unavailable" not in stderr
    assert "Traceback" not in stderr
    assert status == 141, stderr
