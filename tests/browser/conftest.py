"""Fixtures of the browser layer: one Chromium for the session, and for each test its database,
a daemon with the handlers below, and ``docko-worker dashboard`` processes, stopped at teardown.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser_helpers import (
    PASSWORD,
    USER,
    Browser,
    DashboardProcess,
    Database,
    ThreadDaemon,
    basic_auth,
)

from docko_worker import Config, Job
from tests.conftest import fast_config

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
QUEUES = ["documents", "previews", "emails", "held"]
SLOW_STARTED = threading.Event()
SLOW_CANCELLED = threading.Event()


async def quick(job: Job) -> None:
    await asyncio.sleep(0.01)


async def flaky(job: Job) -> None:
    """Fails its first three attempts, as a service that was down would; then succeeds."""
    if job.attempt <= 3:
        raise ConnectionError(f"attempt {job.attempt}: the OCR service did not answer")


async def broken(job: Job) -> None:
    raise ValueError(f"page {job.payload.get('page', 1)} is not a PDF")


async def slow(job: Job) -> None:
    SLOW_STARTED.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        SLOW_CANCELLED.set()
        raise


async def hostile(job: Job) -> None:
    raise RuntimeError(job.payload["error"])


HANDLERS = {
    "ocr": quick,
    "thumbnail": quick,
    "send": quick,
    "flaky": flaky,
    "broken": broken,
    "slow": slow,
    "hostile": hostile,
}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    chromium = Browser()
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def chromium(browser: Browser) -> Browser:
    """The session's browser, reset for this test, with the right credentials."""
    browser.reset(basic_auth(USER, PASSWORD))
    return browser


@pytest.fixture
def config(database_url: str) -> Config:
    return fast_config(database_url, queues=QUEUES, max_attempts=3)


@pytest.fixture
def db(config: Config) -> Database:
    return Database(config)


@pytest.fixture
def start_daemon(config: Config) -> Iterator[Callable[..., ThreadDaemon]]:
    daemons: list[ThreadDaemon] = []
    SLOW_STARTED.clear()
    SLOW_CANCELLED.clear()

    def start(queues: list[str] | None = None) -> ThreadDaemon:
        daemon = ThreadDaemon(config, HANDLERS, queues or QUEUES)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def start_dashboard(database_url: str, tmp_path: Path) -> Iterator[Callable[..., DashboardProcess]]:
    """``start_dashboard(**env)``: a dashboard with a password (unless overridden)."""
    processes: list[DashboardProcess] = []

    def start(**settings: str) -> DashboardProcess:
        env = {"DOCKO_DASHBOARD_USER": USER, "DOCKO_DASHBOARD_PASSWORD": PASSWORD, **settings}
        process = DashboardProcess(database_url, tmp_path, **env)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()
