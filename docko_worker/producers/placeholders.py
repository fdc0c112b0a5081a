"""The named statements' ``$n`` placeholders in the ``%s`` style psycopg takes.

``sql/queries.sql`` is written for PostgreSQL's own numbered placeholders, which asyncpg passes
through as they are. psycopg takes ``%s`` placeholders, in order, and reads every other ``%`` as
the start of one. ``format_style`` rewrites a statement once (the result is cached): each ``$n``
outside quotes becomes ``%s``, each ``%`` becomes ``%%``, and the argument order is kept beside it,
so a placeholder used twice, or out of order, takes the right argument. ``bind`` applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any


@cache
def format_style(query: str) -> tuple[str, tuple[int, ...]]:
    """``query`` with ``%s`` placeholders, and the 0-based argument index of each, in order."""
    out: list[str] = []
    order: list[int] = []
    i, size = 0, len(query)
    while i < size:
        char = query[i]
        if char in "'\"":
            # A quoted literal or identifier, copied whole (a doubled quote closes and reopens).
            end = query.find(char, i + 1)
            end = size if end < 0 else end + 1
            out.append(query[i:end].replace("%", "%%"))
            i = end
        elif char == "$" and i + 1 < size and query[i + 1].isdigit():
            j = i + 1
            while j < size and query[j].isdigit():
                j += 1
            out.append("%s")
            order.append(int(query[i + 1 : j]) - 1)
            i = j
        elif char == "$":
            # A dollar-quoted string ($$...$$ or $tag$...$tag$), copied whole.
            close = query.find("$", i + 1)
            tag = query[i : close + 1] if close > 0 else "$"
            if close < 0 or not _is_tag(tag):
                out.append(char)
                i += 1
                continue
            end = query.find(tag, close + 1)
            end = size if end < 0 else end + len(tag)
            out.append(query[i:end].replace("%", "%%"))
            i = end
        elif char == "%":
            out.append("%%")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out), tuple(order)


def _is_tag(tag: str) -> bool:
    inner = tag[1:-1]
    return not inner or (inner.replace("_", "a").isalnum() and not inner[0].isdigit())


def bind(query: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
    """The ``%s``-style statement and its parameters, for ``cursor.execute``."""
    text, order = format_style(query)
    return text, [args[index] for index in order]
