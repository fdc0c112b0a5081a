"""Periodic jobs behind the hand-made entry points of ``test_periodic_slot_math.py``."""

from __future__ import annotations

from docko_worker import Periodic

NIGHTLY = Periodic("nightly", cron="0 2 * * *", queue_name="q", job_type="reindex")
TWO = [
    Periodic("hourly", cron="0 * * * *", queue_name="q", job_type="cleanup"),
    Periodic("recheck", every=60, queue_name="q", job_type="recheck"),
]
NIGHTLY_AGAIN = Periodic("nightly", every=86400, queue_name="q", job_type="reindex")
NOT_A_PERIODIC = {"name": "nightly", "cron": "0 2 * * *"}
