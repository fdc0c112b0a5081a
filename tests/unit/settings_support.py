"""What the unit tests that read settings or run the CLI in-process share.

``clear_settings`` empties the environment of docko's variables (``monkeypatch`` restores them);
``preserved_logging`` puts back structlog's and the ``logging`` module's set-up, which
``configure_logging`` (called by every CLI command) replaces for the whole process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import structlog


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("DOCKO_") or key.upper() == "DATABASE_URL":
            monkeypatch.delenv(key)


@contextmanager
def preserved_logging() -> Iterator[None]:
    root = logging.getLogger()
    asyncpg_pool = logging.getLogger("asyncpg.pool")
    handlers, level, pool_level = root.handlers[:], root.level, asyncpg_pool.level
    structlog_config = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**structlog_config)
        root.handlers = handlers
        root.setLevel(level)
        asyncpg_pool.setLevel(pool_level)
