"""The demo names the server's version as PostgreSQL does (``15.20``, not ``15.0``)."""

from __future__ import annotations

import pytest
from asyncpg.serverversion import split_server_version_string

from docko_worker.demo.database import version_text


@pytest.mark.parametrize(
    ("reported", "shown"),
    [
        ("15.20 (Debian 15.20-0+deb12u1)", "15.20"),
        ("16.0", "16.0"),
        ("16.4", "16.4"),
        ("9.6.24", "9.6.24"),
        ("17beta1", "17beta1"),
        ("18devel", "18devel"),
    ],
)
def test_the_version_is_shown_as_postgresql_writes_it(reported: str, shown: str) -> None:
    assert version_text(split_server_version_string(reported)) == shown
