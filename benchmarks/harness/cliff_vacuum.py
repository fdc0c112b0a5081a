"""An emulated autovacuum of ``docko_jobs``, for a server configured without autovacuum.

A scenario about dead row versions (the held snapshot) means little on a server whose
``autovacuum`` is off, as on the development machine's CI configuration: nothing would ever
remove them, however long after the snapshot's release. Where the server's launcher is off,
``emulate`` does its work for the one table, by the server's own autovacuum settings: every
``autovacuum_naptime`` s (the first one ``autovacuum_naptime`` s after it starts), ``VACUUM`` when
``n_dead_tup`` exceeds ``autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor x
reltuples``, ``ANALYZE`` when ``n_mod_since_analyze`` exceeds the analyze threshold likewise, in a
session throttled as autovacuum is (``vacuum_cost_delay`` = ``autovacuum_vacuum_cost_delay``,
``vacuum_cost_limit`` = ``autovacuum_vacuum_cost_limit`` unless -1). What it ran, and when, is
returned for the results.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from .db import server_settings

SETTINGS = [
    "autovacuum",
    "autovacuum_naptime",
    "autovacuum_vacuum_threshold",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_threshold",
    "autovacuum_analyze_scale_factor",
    "autovacuum_vacuum_cost_delay",
    "autovacuum_vacuum_cost_limit",
    "vacuum_cost_limit",
]

DUE_SQL = """
SELECT stats.n_dead_tup, stats.n_mod_since_analyze, greatest(class.reltuples, 0) AS reltuples
FROM pg_stat_user_tables AS stats JOIN pg_class AS class ON class.oid = stats.relid
WHERE stats.relname = 'docko_jobs'
"""


async def autovacuum_settings(dsn: str) -> dict[str, str]:
    return await server_settings(dsn, SETTINGS)


def _seconds(value: str) -> float:
    """A setting in seconds (``60`` or ``1min``, as ``current_setting`` spells it)."""
    units = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    return float(value)


async def emulate(dsn: str, settings: dict[str, str], runs: list[dict[str, Any]]) -> None:
    """Until cancelled: autovacuum's work on ``docko_jobs`` (see the module); each command run is
    appended to ``runs`` as ``{"at": wall time, "command": ..., "seconds": ...}``."""
    naptime = _seconds(settings["autovacuum_naptime"])
    limit = settings["autovacuum_vacuum_cost_limit"]
    if limit == "-1":
        limit = settings["vacuum_cost_limit"]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SET vacuum_cost_delay = '{settings['autovacuum_vacuum_cost_delay']}'")
        await conn.execute(f"SET vacuum_cost_limit = {int(limit)}")
        while True:
            await asyncio.sleep(naptime)
            row = await conn.fetchrow(DUE_SQL)
            tuples = float(row["reltuples"])
            vacuum = (
                row["n_dead_tup"]
                > float(settings["autovacuum_vacuum_threshold"])
                + float(settings["autovacuum_vacuum_scale_factor"]) * tuples
            )
            analyze = (
                row["n_mod_since_analyze"]
                > float(settings["autovacuum_analyze_threshold"])
                + float(settings["autovacuum_analyze_scale_factor"]) * tuples
            )
            if not (vacuum or analyze):
                continue
            command = (
                "VACUUM (ANALYZE) docko_jobs"
                if vacuum and analyze
                else ("VACUUM docko_jobs" if vacuum else "ANALYZE docko_jobs")
            )
            at, started = time.time(), time.perf_counter()
            await conn.execute(command, timeout=3600)
            runs.append(
                {
                    "at": at,
                    "command": command,
                    "seconds": time.perf_counter() - started,
                    "dead_before": row["n_dead_tup"],
                }
            )
    finally:
        await conn.close()
