"""A daemon whose stderr reader went away (``docko-worker run 2>&1 | head``) still stops cleanly.

Once the pipe is closed every log line fails to be written; shutdown must still hand the job
back and the process must exit, instead of dying half-way and idling forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from e2e_helpers import Database, daemon_env, enqueue

from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


def test_sigterm_with_stderr_closed_hands_the_job_back_and_exits(
    db: Database, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_SHUTDOWN_TIMEOUT="1")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "docko_worker", "run"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=write_end,
    )
    os.close(write_end)
    try:
        job_id = enqueue(env, "e2e_slow", {"seconds": 30})
        wait_until_blocking(lambda: db.runs(job_id) or None, 30, message="the job to start")
        os.close(read_end)  # the reader goes away: every later log line hits a closed pipe
        read_end = -1
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the daemon did not exit after SIGTERM with its stderr closed")
        job = db.job(job_id)
        assert (job["state"], job["attempt"]) == ("available", 0)
    finally:
        if read_end >= 0:
            os.close(read_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
