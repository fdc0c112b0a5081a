"""Loads ``sql/queries.sql`` into a read-only mapping of named statements.

All runtime SQL lives in that one file; Python code refers to statements by name only. The loader
also locates the ``sql/`` directory, which a built wheel carries inside the package and a source
checkout keeps at the project's top level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

_HEADER = re.compile(r"^-- (name|fragment): *([a-z_][a-z0-9_]*) *$", re.MULTILINE)
_REFERENCE = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")


def sql_dir() -> Path:
    """The directory holding ``queries.sql`` and the numbered migrations."""
    packaged = Path(__file__).with_name("sql")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


def parse_statements(text: str) -> dict[str, str]:
    """Split the file into ``{name: sql}``, pasting fragments into the statements that use them."""
    fragments: dict[str, str] = {}
    statements: dict[str, str] = {}
    headers = list(_HEADER.finditer(text))
    for index, header in enumerate(headers):
        kind, name = header.group(1), header.group(2)
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = _strip_comments(text[header.end() : end])
        if name in fragments or name in statements:
            raise ValueError(f"queries.sql: {name!r} is defined twice")
        if not body:
            raise ValueError(f"queries.sql: {name!r} is empty")

        def paste(match: re.Match[str], name: str = name) -> str:
            fragment = match.group(1)
            if fragment not in fragments:
                raise ValueError(f"queries.sql: {name!r} uses unknown fragment {fragment!r}")
            return fragments[fragment]

        body = _REFERENCE.sub(paste, body)
        (fragments if kind == "fragment" else statements)[name] = body
    return statements


def _strip_comments(body: str) -> str:
    lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip()


@cache
def load_statements() -> Mapping[str, str]:
    text = (sql_dir() / "queries.sql").read_text(encoding="utf-8")
    return MappingProxyType(parse_statements(text))


class _Statements:
    """Attribute access to the named statements: ``SQL.claim_jobs``."""

    def __getattr__(self, name: str) -> str:
        try:
            return load_statements()[name]
        except KeyError:
            raise AttributeError(f"no statement named {name!r} in queries.sql") from None


SQL = _Statements()
