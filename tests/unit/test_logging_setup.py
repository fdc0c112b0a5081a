"""``configure_logging``, public for applications that embed ``Queue``.

Lines go to stderr, or to the stream given; the standard ``logging`` module's records are rendered
the same way; a traceback never shows frame locals, which may hold the DSN's password. rich is
not installed in this project's environment (and a test never installs a package): its rendering
is tested where it is installed, and its configuration (rich tracebacks without locals) is tested
everywhere by making structlog believe rich is present.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from settings_support import preserved_logging

import docko_worker
from docko_worker import configure_logging

SECRET_DSN = "postgresql://alice:Secr3t-pw@db/documents"


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    with preserved_logging():
        yield


def console_renderer() -> Any:
    [renderer] = [
        processor
        for processor in structlog.get_config()["processors"]
        if isinstance(processor, structlog.dev.ConsoleRenderer)
    ]
    return renderer


def fail_with_a_secret_local() -> None:
    dsn = SECRET_DSN
    config = docko_worker.load_config(database_url=dsn)
    raise RuntimeError(f"boom with {len(config.queues)} queue")


def log_a_traceback() -> None:
    try:
        fail_with_a_secret_local()
    except RuntimeError:
        structlog.get_logger("test").exception("handler_crashed")


def test_configure_logging_is_public() -> None:
    assert "configure_logging" in docko_worker.__all__


def test_lines_go_to_the_stream_given_stdlib_records_too() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    structlog.get_logger("test").info("job_done", job_id="j1")
    structlog.get_logger("test").debug("below_the_level")
    logging.getLogger("some.library").warning("library says %s", "hello")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [record["event"] for record in records] == ["job_done", "library says hello"]
    assert records[1]["logger"] == "some.library"


def test_lines_go_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.get_logger("test").info("job_done")
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err)["event"] == "job_done"


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_traceback_does_not_show_the_password(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging("info", log_format, stream=stream)
    log_a_traceback()
    text = stream.getvalue()
    assert "fail_with_a_secret_local" in text, text
    assert "Secr3t" not in text


def test_console_tracebacks_never_show_locals_when_rich_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(structlog.dev, "rich", object())  # structlog's test of "rich installed"
    configure_logging("info", "console", stream=io.StringIO())
    formatter = console_renderer().exception_formatter
    assert isinstance(formatter, structlog.dev.RichTracebackFormatter)
    assert formatter.show_locals is False


def test_console_tracebacks_are_plain_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(structlog.dev, "rich", None)
    configure_logging("info", "console", stream=io.StringIO())
    assert console_renderer().exception_formatter is structlog.dev.plain_traceback


def test_rich_tracebacks_do_not_show_the_password() -> None:
    pytest.importorskip("rich")
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream)
    log_a_traceback()
    assert "fail_with_a_secret_local" in stream.getvalue()
    assert "Secr3t" not in stream.getvalue()


@pytest.mark.parametrize(("level", "log_format"), [("loud", None), ("info", "xml")])
def test_a_bad_level_or_format_is_a_clear_error(level: str, log_format: str | None) -> None:
    with pytest.raises(ValueError, match=r"log (level|format)"):
        configure_logging(level, log_format)
