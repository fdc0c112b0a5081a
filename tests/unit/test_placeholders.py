"""``$n`` to psycopg's ``%s``: every named statement translates; arguments land in place."""

from __future__ import annotations

import re

import pytest

from docko_worker.copy_format import COPY_COLUMNS
from docko_worker.producers.placeholders import bind, format_style
from docko_worker.statements import load_statements


def test_numbered_placeholders_become_positional_in_order_of_use() -> None:
    text, order = format_style("SELECT $2, $1, $2::int, $10")
    assert text == "SELECT %s, %s, %s::int, %s"
    assert order == (1, 0, 1, 9)
    assert bind("SELECT $2, $1", ["a", "b"]) == ("SELECT %s, %s", ["b", "a"])


def test_percent_signs_are_escaped_and_quotes_left_alone() -> None:
    query = "SELECT '$1 100%', \"col$1\", $$ $2 % $$, $tag$ $3 $tag$, 5 % $1"
    text, order = format_style(query)
    assert text == "SELECT '$1 100%%', \"col$1\", $$ $2 %% $$, $tag$ $3 $tag$, 5 %% %s"
    assert order == (0,)


def test_a_doubled_quote_stays_inside_its_literal() -> None:
    text, order = format_style("SELECT 'it''s $1', $1")
    assert text == "SELECT 'it''s $1', %s"
    assert order == (0,)


@pytest.mark.parametrize("name", sorted(load_statements()))
def test_every_named_statement_translates(name: str) -> None:
    query = load_statements()[name]
    text, order = format_style(query)
    used = sorted({int(n) - 1 for n in re.findall(r"\$(\d+)", query)})
    assert sorted(set(order)) == used
    assert text.count("%s") == len(order)
    # No numbered placeholder is left (a '$' inside a literal, a JSON path, stays as it is).
    assert not re.search(r"\$\d", text)


def test_the_copy_statement_names_the_copy_columns_in_order() -> None:
    statement = load_statements()["copy_jobs"]
    columns = statement.split("(", 1)[1].split(")", 1)[0]
    assert tuple(column.strip() for column in columns.split(",")) == COPY_COLUMNS
    assert "FORMAT binary" in statement
