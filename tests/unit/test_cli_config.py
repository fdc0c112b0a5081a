"""The CLI and the configuration: errors before anything runs, --help and --version.

Commands run in-process (``cli.main``) with a clean environment; none of them reaches a
database: each fails on its configuration first, or on a port where nothing listens.
"""

from __future__ import annotations

import importlib.metadata
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from settings_support import clear_settings, preserved_logging

import docko_worker
from docko_worker import cli
from docko_worker.config import settings_reference

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Secr3t-pw"
# Nothing listens on port 1: a connection is refused at once.
UNANSWERED = f"postgresql://alice:{SECRET}@127.0.0.1:1/documents"


@pytest.fixture(autouse=True)
def clean_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clear_settings(monkeypatch)
    with preserved_logging():
        yield


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(args)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("variable", "dsn"),
    [
        ("DOCKO_DATABASE_URL", f"host=db password={SECRET} dbname=app"),
        ("DOCKO_DATABASE_URL", f"host=127.0.0.1 port=1 password={SECRET}"),
        ("DOCKO_DATABASE_URL", "127.0.0.1:5432/db"),
        ("DATABASE_URL", f"host=db password={SECRET}"),
        ("DATABASE_URL", "mysql://x@h/db"),
        ("DOCKO_DATABASE_URL", "postgresql://postgres@127.0.0.1:abc/db"),
        ("DOCKO_DATABASE_URL", f"postgresql://u:pa/{SECRET}@127.0.0.1:1/db"),
        ("DOCKO_DATABASE_URL", f"postgresql://u:12?{SECRET}@127.0.0.1:1/db"),
        ("DOCKO_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:99999/db"),
    ],
)
@pytest.mark.parametrize("command", [["stats"], ["migrate"], ["enqueue", "q", "t", "{}"]])
def test_a_dsn_asyncpg_cannot_use_is_one_line_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    dsn: str,
    command: list[str],
) -> None:
    monkeypatch.setenv(variable, dsn)
    status, out, err = run(command, capsys)
    assert status == 2, err
    assert err.startswith(f"docko-worker: error: invalid configuration: {variable}: "), err
    assert len(err.splitlines()) == 1, err
    assert SECRET not in out + err
    assert dsn not in err


def test_an_unreachable_database_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKO_DATABASE_URL", UNANSWERED)
    status, _, err = run(["stats"], capsys)
    assert status == 1, err
    assert err.startswith("docko-worker: error: database unavailable at "), err
    assert "alice:***@127.0.0.1:1/documents" in err
    assert SECRET not in err


def test_an_option_asyncpg_refuses_is_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # asyncpg refuses the value when it connects; not a database that is unavailable.
    monkeypatch.setenv("DOCKO_DATABASE_URL", UNANSWERED + "?gsslib=kerberos")
    status, _, err = run(["stats"], capsys)
    assert status == 2, err
    assert err.startswith("docko-worker: error: invalid database configuration: "), err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DOCKO_VISIBILITY_TIMEOUT", "1e12"),
        ("DOCKO_POLL_INTERVAL", "inf"),
        ("DOCKO_COMPLETION_FLUSH_INTERVAL", "60"),
        ("DOCKO_MAX_RETRY_DELAY", "nan"),
    ],
)
def test_a_duration_out_of_range_stops_a_command_before_it_connects(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv("DOCKO_DATABASE_URL", UNANSWERED)
    monkeypatch.setenv(variable, value)
    status, _, err = run(["stats"], capsys)
    assert status == 2, err
    assert err.startswith(f"docko-worker: error: invalid configuration: {variable}: must be ")
    assert f"(got {value!r})" in err


def test_repeated_queues_are_warned_about_when_the_configuration_loads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKO_DATABASE_URL", UNANSWERED)
    monkeypatch.setenv("DOCKO_QUEUES", "ocr, index,ocr,thumbs,index")
    monkeypatch.setenv("DOCKO_LOG_FORMAT", "json")
    status, _, err = run(["stats"], capsys)  # fails to connect, after loading the configuration
    assert status == 1, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    [warning] = [r for r in records if r["event"] == "duplicate_queues_ignored"]
    assert warning["level"] == "warning"
    assert warning["duplicates"] == ["ocr", "index"]
    assert warning["queues"] == ["ocr", "index", "thumbs"]


# --help and --version


def normalized(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_lists_every_setting_with_its_default_and_range(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert exited.value.code == 0
    text = normalized(capsys.readouterr().out)
    reference = settings_reference()
    assert len(reference) == len(docko_worker.Config.model_fields)
    for setting in reference:
        assert f"{setting.variable} default: {setting.default} " in text, setting.variable
        if setting.range:
            assert f"Range: {setting.range}." in text, setting.variable


def test_help_takes_defaults_from_the_model() -> None:
    rows = {setting.variable: setting for setting in settings_reference()}
    assert rows["DOCKO_VISIBILITY_TIMEOUT"].default == "300"
    assert rows["DOCKO_VISIBILITY_TIMEOUT"].range == "1 to 604800 (7 days)"
    assert rows["DOCKO_COMPLETION_FLUSH_INTERVAL"].default == "0.005"
    assert rows["DOCKO_COMPLETION_FLUSH_INTERVAL"].range == "0 to 1"
    assert rows["DOCKO_QUEUES"].default == "default"
    assert rows["DOCKO_LISTEN"].default == "true"
    assert rows["DOCKO_FAILED_RETENTION"].default == "604800"
    assert rows["DOCKO_LOG_LEVEL"].range == "debug, info, warning or error"


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def test_version_has_one_home() -> None:
    assert docko_worker.__version__ == importlib.metadata.version("docko-worker")
    assert docko_worker.__version__ == pyproject_version()
    assert pyproject_version() not in (ROOT / "docko_worker" / "__init__.py").read_text()


def test_version_option_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"docko-worker {pyproject_version()}\n"


def readme_settings() -> dict[str, list[str]]:
    """The cells of the README's configuration table, by variable."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `DOCKO_"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_readme_table_shows_the_models_defaults_and_ranges() -> None:
    rows = readme_settings()
    reference = settings_reference()
    assert list(rows) == [setting.variable for setting in reference]
    for setting in reference:
        default, allowed, _meaning = rows[setting.variable]
        assert default.strip("`") == setting.default, setting.variable
        assert allowed == (setting.range or "—"), setting.variable
