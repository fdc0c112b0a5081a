"""How a migration file is read: transactional or not (its first line), and its steps."""

from __future__ import annotations

from pathlib import Path

from docko_worker.migrations import Migration, available_migrations


def migration(tmp_path: Path, sql: str) -> Migration:
    path = tmp_path / "0001_probe.sql"
    path.write_text(sql)
    return Migration(1, "probe", path)


def test_a_plain_file_is_one_transactional_migration(tmp_path: Path) -> None:
    assert migration(tmp_path, "CREATE TABLE a (id int);\n").transactional
    assert migration(tmp_path, "").transactional


def test_the_marker_must_be_the_first_line(tmp_path: Path) -> None:
    assert not migration(tmp_path, "-- docko: no-transaction\nSELECT 1;\n").transactional
    assert migration(tmp_path, "SELECT 1;\n-- docko: no-transaction\n").transactional


def test_steps_are_split_at_step_lines_and_comment_only_steps_dropped(tmp_path: Path) -> None:
    sql = (
        "-- docko: no-transaction\n"
        "-- what this does\n"
        "SET LOCAL lock_timeout = '2s';\n"
        "ALTER TABLE a ADD COLUMN b int;\n"
        "-- docko: step\n"
        "-- only a comment\n"
        "  -- docko: step  \n"
        "CREATE INDEX CONCURRENTLY i ON a (b);\n"
    )
    assert migration(tmp_path, sql).steps() == [
        "-- what this does\nSET LOCAL lock_timeout = '2s';\nALTER TABLE a ADD COLUMN b int;",
        "CREATE INDEX CONCURRENTLY i ON a (b);",
    ]


def test_the_shipped_operations_migration_builds_its_index_alone_in_a_step() -> None:
    operations = next(m for m in available_migrations() if m.name == "operations")
    assert not operations.transactional
    code = [
        [line for line in step.splitlines() if not line.lstrip().startswith("--")]
        for step in operations.steps()
    ]
    concurrent = [lines for lines in code if any("CONCURRENTLY" in line for line in lines)]
    assert concurrent
    for lines in concurrent:
        assert sum(line.count(";") for line in lines) == 1, lines
