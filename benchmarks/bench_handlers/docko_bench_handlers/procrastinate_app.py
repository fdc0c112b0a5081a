"""procrastinate app for ``procrastinate --app=docko_bench_handlers.procrastinate_app.app``.

The worker's DSN comes from ``BENCH_DSN``; the harness defers through ``app.with_connector``.
``BENCH_PROCRASTINATE_POOL`` sizes the psycopg pool (the worker needs one connection per
concurrent job plus the LISTEN connection).
"""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector

from .recorder import record


def make_connector(dsn: str | None = None) -> PsycopgConnector:
    size = int(os.environ.get("BENCH_PROCRASTINATE_POOL", "4"))
    return PsycopgConnector(
        conninfo=dsn if dsn is not None else os.environ.get("BENCH_DSN", ""),
        min_size=size,
        max_size=size,
    )


app = App(connector=make_connector())


@app.task(name="noop")
async def noop(seq: int, t: float) -> None:
    record(seq, t)
