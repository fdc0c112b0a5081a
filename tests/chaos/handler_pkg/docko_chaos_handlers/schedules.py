"""The chaos fleet's periodic job (entry point group ``docko_worker.periodic``): none unless the
daemon's environment sets ``CHAOS_PERIODIC_EVERY`` (seconds), so the other chaos tests run without.

It enqueues ``chaos_tick`` jobs (a handler that does nothing) into the ``chaos`` queue; the test
counts their slots with ``chaos_checker.check_slots``.
"""

from __future__ import annotations

import os

from docko_worker import Periodic

EVERY_ENV = "CHAOS_PERIODIC_EVERY"


def _schedules() -> list[Periodic]:
    if EVERY_ENV not in os.environ:
        return []
    every = float(os.environ[EVERY_ENV])
    return [Periodic("chaos-tick", every=every, queue_name="chaos", job_type="chaos_tick")]


SCHEDULES = _schedules()
