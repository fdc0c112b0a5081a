"""The e2e package's periodic jobs (entry point group ``docko_worker.periodic``), chosen by the
test through the daemon's environment: none unless it sets one of

- ``E2E_PERIODIC_CRON``: a cron expression, in ``E2E_PERIODIC_TIMEZONE`` (default UTC);
- ``E2E_PERIODIC_EVERY``: an interval in seconds.

Either enqueues ``e2e_ok`` jobs named ``e2e-periodic`` into the ``e2e`` queue. An invalid
expression or time zone raises here, as the daemon loads the entry point.
"""

from __future__ import annotations

import os

from docko_worker import Periodic


def _schedules() -> list[Periodic]:
    options = {"queue_name": "e2e", "job_type": "e2e_ok", "payload": {"periodic": True}}
    timezone = os.environ.get("E2E_PERIODIC_TIMEZONE", "UTC")
    if "E2E_PERIODIC_CRON" in os.environ:
        cron = os.environ["E2E_PERIODIC_CRON"]
        return [Periodic("e2e-periodic", cron=cron, timezone=timezone, **options)]
    if "E2E_PERIODIC_EVERY" in os.environ:
        every = float(os.environ["E2E_PERIODIC_EVERY"])
        return [Periodic("e2e-periodic", every=every, timezone=timezone, **options)]
    return []


SCHEDULES = _schedules()
