"""Plain-def handlers in a real daemon: blocking ``time.sleep`` runs in the daemon's threads.

The loop-block threshold is 1 s here (half the 2 s lease) and every handler blocks longer, so a
handler run on the event loop would show as ``event_loop_blocked``, and as leases lost for want of
heartbeats. A timed-out handler fails its attempt at its timeout while its thread sleeps on; a
SIGTERM past the shutdown timeout hands its job back and the daemon exits without waiting for
the thread.
"""

from __future__ import annotations

import signal

import pytest
from e2e_helpers import Daemons, Database, daemon_env, enqueue

pytestmark = pytest.mark.e2e


def test_blocking_sync_handlers_time_out_and_stop_without_blocking_the_loop(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(
        base_env,
        database_url,
        DOCKO_VISIBILITY_TIMEOUT="2",
        DOCKO_SHUTDOWN_TIMEOUT="1",
        DOCKO_WORKER_COUNT="4",
        DOCKO_THREAD_POOL_SIZE="4",
    )
    daemon = daemons.start(env)
    timed = enqueue(env, "e2e_block_sync_timed", {"seconds": 3}, "--max-attempts", "1")
    long = enqueue(env, "e2e_block_sync", {"seconds": 60})
    db.wait_for_run(long, 1, daemons=[daemon])

    failed = db.wait_for_state(timed, "failed", daemons=[daemon])
    assert failed["last_error"].startswith("JobTimeout: handler ran longer than 1s")
    [abandoned] = daemon.wait_for_event("sync_handler_abandoned")
    assert abandoned["job_id"] == str(timed)
    # The thread ran to its end after its attempt was over, and gave its slot back.
    [ended] = daemon.wait_for_event("sync_handler_abandoned_ended")
    assert ended["job_id"] == str(timed)
    [run] = db.runs(timed)
    assert run["finished_at"] is not None

    daemon.send(signal.SIGTERM)

    assert daemon.wait_exit() == 0, daemon.describe()
    job = db.job(long)
    assert (job["state"], job["attempt"]) == ("available", 0), daemon.describe()
    [run] = db.runs(long)
    assert run["finished_at"] is None
    events = daemon.event_names()
    assert "job_released" in events
    assert "sync_handler_abandoned" in events
    for never in ("event_loop_blocked", "lease_lost", "job_lease_expired"):
        assert never not in events, daemon.describe()
