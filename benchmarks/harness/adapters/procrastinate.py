"""procrastinate 3.x: ``Task.batch_defer_async``, and the ``procrastinate worker`` command.

The async worker runs ``--concurrency`` jobs at once over a psycopg pool with one connection
per concurrent job (plus LISTEN). Each job is fetched and finished with its own statement
(procrastinate has no batched claim), so concurrency mostly buys overlapping round trips.
Finished jobs are kept (``--delete-jobs`` left at its default, ``never``).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

from .base import Payload, System, WorkerCommand, run_tool, venv_script, worker_environment

APP = "docko_bench_handlers.procrastinate_app.app"


class Procrastinate(System):
    key = "procrastinate"
    label = "procrastinate"
    package = "procrastinate"
    chunk_size = 5000

    def __init__(self, *, concurrency: int = 20) -> None:
        self.concurrency = concurrency
        self._app: Any = None
        self._stack: AsyncExitStack | None = None

    @property
    def pool_size(self) -> int:
        return self.concurrency + 2

    def settings(self) -> dict[str, str]:
        return {
            "worker environment": worker_environment("procrastinate"),
            "command": f"procrastinate --app={APP} --log-level=warning worker "
            f"--concurrency={self.concurrency}",
            "connector": f"PsycopgConnector, pool {self.pool_size} connections",
            "listen_notify": "on (default)",
            "delete_jobs": "never (default)",
            "enqueue": f"Task.batch_defer_async, {self.chunk_size} per call; "
            "Task.defer_async for latency",
        }

    async def install(self, dsn: str) -> None:
        await run_tool(
            "procrastinate schema --apply",
            [venv_script("procrastinate", "procrastinate"), f"--app={APP}", "schema", "--apply"],
            env=_env(dsn, 2),
        )

    async def open(self, dsn: str) -> None:
        from docko_bench_handlers import procrastinate_app

        stack = AsyncExitStack()
        connector = procrastinate_app.make_connector(dsn)
        app = stack.enter_context(procrastinate_app.app.replace_connector(connector))
        await stack.enter_async_context(app.open_async())
        self._app, self._stack = app, stack

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = self._app = None

    def _task(self) -> Any:
        return self._app.tasks["noop"]

    async def enqueue_bulk(self, payloads: list[Payload]) -> None:
        await self._task().batch_defer_async(*payloads)

    async def enqueue_one(self, item: Payload) -> None:
        await self._task().defer_async(**item)

    def worker_command(self, dsn: str) -> WorkerCommand:
        argv = [
            venv_script("procrastinate", "procrastinate"),
            f"--app={APP}",
            "--log-level=warning",
            "worker",
            f"--concurrency={self.concurrency}",
        ]
        return WorkerCommand(argv, _env(dsn, self.pool_size))

    unfinished_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"


def _env(dsn: str, pool_size: int) -> dict[str, str]:
    return {**os.environ, "BENCH_DSN": dsn, "BENCH_PROCRASTINATE_POOL": str(pool_size)}
