"""Fixtures for the integration tests (a real PostgreSQL; see ``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from docko_worker import Config
from docko_worker.store import CONTROL_CHANNEL, NOTIFY_CHANNEL
from tests.conftest import fast_config, scratch_database


@pytest.fixture
def make_config(database_url: str) -> Callable[..., Config]:
    """``make_config(**overrides)``: the quick test settings for this test's database."""

    def make(**overrides: Any) -> Config:
        return fast_config(database_url, **overrides)

    return make


@pytest.fixture
def empty_database_url(server_dsn: str) -> Iterator[str]:
    """A database of its own with no schema at all (for migration tests)."""
    with scratch_database(server_dsn, "docko_empty") as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection of the test's own to its database (not one of the queue's)."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def _listening(
    database_url: str, channel: str, decode: Callable[[str], Any]
) -> AsyncIterator[asyncio.Queue[Any]]:
    received: asyncio.Queue[Any] = asyncio.Queue()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        received.put_nowait(decode(payload))

    conn = await asyncpg.connect(database_url)
    await conn.add_listener(channel, on_notify)
    try:
        yield received
    finally:
        await conn.close()


@pytest.fixture
async def notifications(database_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Payloads of the NOTIFYs on the jobs channel, as a separate LISTEN connection sees them."""
    async with _listening(database_url, NOTIFY_CHANNEL, str) as received:
        yield received


@pytest.fixture
async def control(database_url: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """The control notifications (cancel, pause, resume), decoded, as a daemon receives them."""
    async with _listening(database_url, CONTROL_CHANNEL, json.loads) as received:
        yield received
