"""The waker: a dedicated LISTEN connection that wakes idle workers when jobs are enqueued, and
passes on operators' control notifications (a cancel request for a running job).

Notifications only shorten the wait; workers still poll every ``poll_interval``, so a lost
connection delays jobs but never strands them. The connection is checked periodically (a silent
network drop raises no error by itself), and on loss the waker logs it and reconnects with capped,
jittered backoff, waking the workers once it is back in case a notification was missed. The cap is
low, and ``retry_now`` (called when the daemon's pool reaches the database again) cuts the wait
short: jobs wait for the poll only while the database is really away.

A LISTEN connection to a server that takes no writes is no use: producers enqueue on the primary,
so it would never hear a job. The waker refuses one at connect and drops one whose server turned
read-only (a primary demoted in place, seen at the next check), and reconnects to wherever the DSN
leads (a multi-host DSN with ``target_session_attrs=read-write`` skips standbys).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from .config import Config, redact_dsn
from .db import Connection
from .dsn import describe_connection_error
from .pool import refuse_read_only
from .retry import reconnect_delay
from .statements import SQL
from .store import CONTROL_CHANNEL, NOTIFY_CHANNEL

log = structlog.get_logger("docko_worker.waker")

Connect = Callable[[], Coroutine[Any, Any, Connection]]


class Waker:
    """Listens on the jobs channel and calls ``wake(queue_name)`` for each notification."""

    def __init__(
        self,
        config: Config,
        connect: Connect,
        wake: Callable[[str], None],
        *,
        control: Callable[[str], None] | None = None,
        check_interval: float = 5.0,
        base_backoff: float = 0.25,
        max_backoff: float = 2.0,
    ) -> None:
        self._config = config
        self._connect = connect
        self._wake = wake
        self._control = control
        self._check_interval = check_interval
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._conn: Any = None
        self._lost = asyncio.Event()
        self._retry_now = asyncio.Event()
        self.connected = asyncio.Event()

    def retry_now(self) -> None:
        """The database answers again: reconnect at once if disconnected."""
        if not self.connected.is_set():
            self._retry_now.set()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        failures = 0
        try:
            while True:
                # A "database is back" signal counts from the attempt it follows.
                self._retry_now.clear()
                try:
                    await self._listen()
                    failures = 0
                    self.connected.set()
                    log.info("listen_connected", channel=NOTIFY_CHANNEL)
                    self._wake("")
                    await self._watch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    was_connected = self.connected.is_set()
                    self.connected.clear()
                    delay = reconnect_delay(failures, self._base_backoff, self._max_backoff)
                    # Said before the connection is closed: whoever sees it gone (a test, an
                    # operator watching pg_stat_activity) finds the reason already logged.
                    log.warning(
                        "listen_connection_lost" if was_connected else "listen_connect_failed",
                        error=describe_connection_error(exc, self._config.database_url),
                        dsn=redact_dsn(self._config.database_url),
                        retry_in=round(delay, 2),
                        polling_every=self._config.poll_interval,
                    )
                    await self._close()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._retry_now.wait(), timeout=delay)
        finally:
            self.connected.clear()
            await self._close()

    async def _listen(self) -> None:
        self._lost.clear()
        self._conn = await self._connect()
        refuse_read_only(self._conn)
        self._conn.add_termination_listener(self._on_termination)
        await self._conn.add_listener(NOTIFY_CHANNEL, self._on_notification)
        if self._control is not None:
            await self._conn.add_listener(CONTROL_CHANNEL, self._on_control)

    async def _watch(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), timeout=self._check_interval)
            except TimeoutError:
                await asyncio.wait_for(self._conn.fetchval(SQL.ping), timeout=10)
                # The ping's reply carries any change of the server's read-only state.
                refuse_read_only(self._conn)
                continue
            raise ConnectionError("the LISTEN connection was closed")

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._wake(payload)

    def _on_control(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        assert self._control is not None
        self._control(payload)

    def _on_termination(self, _conn: Any) -> None:
        self._lost.set()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=2)
        except Exception:
            conn.terminate()
