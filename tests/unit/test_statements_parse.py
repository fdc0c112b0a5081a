"""The named-statement loader (``docko_worker.statements``): parsing rules and completeness."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import docko_worker
from docko_worker.statements import SQL, load_statements, parse_statements

PACKAGE_DIR = Path(docko_worker.__file__).resolve().parent


def test_statements_and_fragments_are_split_and_pasted() -> None:
    text = """
-- A file comment.
-- fragment: cols
id, name

-- name: get_thing
-- What it does.
SELECT {{cols}} FROM things WHERE id = $1

-- name: list_things
SELECT {{cols}}
FROM things
ORDER BY id
"""
    statements = parse_statements(text)
    assert statements == {
        "get_thing": "SELECT id, name FROM things WHERE id = $1",
        "list_things": "SELECT id, name\nFROM things\nORDER BY id",
    }


def test_fragments_are_not_statements() -> None:
    statements = parse_statements("-- fragment: cols\nid\n-- name: one\nSELECT {{cols}}\n")
    assert list(statements) == ["one"]


def test_duplicate_name_is_rejected() -> None:
    text = "-- name: ping\nSELECT 1\n-- name: ping\nSELECT 2\n"
    with pytest.raises(ValueError, match="'ping' is defined twice"):
        parse_statements(text)


def test_fragment_and_statement_sharing_a_name_is_rejected() -> None:
    text = "-- fragment: ping\n1\n-- name: ping\nSELECT {{ping}}\n"
    with pytest.raises(ValueError, match="defined twice"):
        parse_statements(text)


def test_unknown_fragment_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fragment 'cols'"):
        parse_statements("-- name: get\nSELECT {{cols}} FROM things\n")


def test_fragment_must_be_defined_before_use() -> None:
    text = "-- name: get\nSELECT {{cols}} FROM t\n-- fragment: cols\nid\n"
    with pytest.raises(ValueError, match="unknown fragment"):
        parse_statements(text)


def test_empty_statement_is_rejected() -> None:
    with pytest.raises(ValueError, match="'nothing' is empty"):
        parse_statements("-- name: nothing\n-- only a comment\n-- name: ping\nSELECT 1\n")


def test_load_statements_is_read_only() -> None:
    statements = load_statements()
    with pytest.raises(TypeError):
        statements["ping"] = "SELECT 2"  # type: ignore[index]


def test_unknown_attribute_on_sql_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_statement"):
        _ = SQL.no_such_statement


def test_every_statement_the_package_uses_is_defined() -> None:
    used: set[str] = set()
    for path in PACKAGE_DIR.glob("*.py"):
        used.update(re.findall(r"\bSQL\.([a-z_][a-z0-9_]*)", path.read_text(encoding="utf-8")))
    store_uses = set(
        re.findall(
            r"\bSQL\.([a-z_][a-z0-9_]*)", (PACKAGE_DIR / "store.py").read_text(encoding="utf-8")
        )
    )
    assert {"claim_jobs", "complete_jobs", "retry_jobs", "fail_jobs"} <= store_uses
    missing = used - set(load_statements())
    assert not missing, f"statements used in code but not in queries.sql: {sorted(missing)}"


def test_no_statement_keeps_an_unpasted_fragment_reference() -> None:
    for name, sql in load_statements().items():
        assert "{{" not in sql, name
        assert sql.strip(), name
