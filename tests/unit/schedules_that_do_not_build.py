"""A module whose periodic job has an invalid cron expression: it raises as it is imported."""

from __future__ import annotations

from docko_worker import Periodic

BROKEN = Periodic("broken-nightly", cron="0 25 * * *", queue_name="q", job_type="reindex")
