"""The ``docko-worker periodic`` command: the schedules declared in the database, table or JSON.

Each schedule some daemon has declared (``docko_periodic``): its name, expression (an interval as
``@every <seconds>s``), time zone, next slot by the database's clock, the last slot enqueued with
its job id, and when a running daemon last had it (``seen_at``: a schedule no daemon runs any more
keeps its row, and its ``seen_at`` grows old). Times are ISO 8601 in the schedule's time zone.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from .config import Config
from .periodic import PeriodicInfo, describe_schedule, load_zone
from .queue import Queue


async def show_periodic(config: Config, *, as_json: bool) -> int:
    async with await Queue.connect(config) as queue:
        infos = await queue.list_periodic()
    if as_json:
        print(json.dumps([periodic_document(info) for info in infos]))
    elif not infos:
        print("(no periodic jobs declared: a daemon declares its schedules when it starts)")
    else:
        from .cli import format_table

        rows = [
            [value or "-" for value in periodic_document(info, timespec="seconds").values()]
            for info in infos
        ]
        header = ["NAME", "SCHEDULE", "TIMEZONE", "NEXT SLOT", "LAST SLOT", "LAST JOB", "SEEN"]
        print(format_table(header, rows))
    return 0


def periodic_document(info: PeriodicInfo, timespec: str = "auto") -> dict[str, str | None]:
    """The JSON object for one schedule: times in ISO 8601, in the schedule's time zone."""
    try:
        zone: ZoneInfo | None = load_zone(info.timezone)
    except ValueError:
        zone = None

    def iso(moment: datetime | None) -> str | None:
        if moment is None:
            return None
        return (moment.astimezone(zone) if zone else moment).isoformat(timespec=timespec)

    return {
        "name": info.name,
        "schedule": describe_schedule(info.schedule),
        "timezone": info.timezone,
        "next_slot": iso(info.next_slot),
        "last_slot": iso(info.last_slot),
        "last_job_id": None if info.last_job_id is None else str(info.last_job_id),
        "seen_at": iso(info.seen_at),
    }
