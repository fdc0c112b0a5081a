"""``Config`` defaults, parsing of ``DOCKO_*`` environment variables, errors, and DSN redaction."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from docko_worker import Config, ConfigError, load_config
from docko_worker.config import redact_dsn, unknown_env_vars


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from an environment with no docko settings in it."""
    for key in list(os.environ):
        if key.upper().startswith("DOCKO_") or key.upper() == "DATABASE_URL":
            monkeypatch.delenv(key)
    yield


def test_defaults() -> None:
    config = load_config()
    assert config.poll_interval == 1.0
    assert config.worker_count == 4
    assert config.base_retry_delay == 1.0
    assert config.max_retry_delay == 3600.0
    assert config.visibility_timeout == 300.0
    assert config.queues == ["default"]
    assert config.max_attempts == 5
    assert config.job_timeout is None
    assert config.log_format is None
    assert config.database_url is None
    assert config.listen is True


def test_heartbeat_defaults_to_a_third_of_the_visibility_timeout() -> None:
    assert load_config(visibility_timeout=30).effective_heartbeat_interval == 10.0
    assert load_config(heartbeat_interval=2).effective_heartbeat_interval == 2.0


def test_queues_are_comma_separated_and_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_QUEUES", "a, b,c")
    assert load_config().queues == ["a", "b", "c"]


def test_durations_accept_float_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("DOCKO_VISIBILITY_TIMEOUT", "90")
    monkeypatch.setenv("DOCKO_JOB_TIMEOUT", "2.25")
    config = load_config()
    assert config.poll_interval == 0.5
    assert config.visibility_timeout == 90.0
    assert config.job_timeout == 2.25


def test_integers_and_enums_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_WORKER_COUNT", "16")
    monkeypatch.setenv("DOCKO_MAX_ATTEMPTS", "9")
    monkeypatch.setenv("DOCKO_LOG_FORMAT", "JSON")
    monkeypatch.setenv("DOCKO_LOG_LEVEL", "Debug")
    config = load_config()
    assert config.worker_count == 16
    assert config.max_attempts == 9
    assert config.log_format == "json"
    assert config.log_level == "debug"


def test_database_url_from_docko_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_DATABASE_URL", "postgresql://docko@db/docko")
    assert load_config().database_url == "postgresql://docko@db/docko"


def test_database_url_falls_back_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    assert load_config().database_url == "postgresql://app@db/app"


def test_docko_database_url_wins_over_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    monkeypatch.setenv("DOCKO_DATABASE_URL", "postgresql://docko@db/docko")
    assert load_config().database_url == "postgresql://docko@db/docko"


def test_missing_database_url_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="DOCKO_DATABASE_URL"):
        load_config().require_database_url()


@pytest.mark.parametrize("value", ["false", "0", "no", "off", "FALSE"])
def test_listen_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DOCKO_LISTEN", value)
    assert load_config().listen is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DOCKO_WORKER_COUNT", "abc"),
        ("DOCKO_WORKER_COUNT", "0"),
        ("DOCKO_POLL_INTERVAL", "0"),
        ("DOCKO_POLL_INTERVAL", "-1"),
        ("DOCKO_VISIBILITY_TIMEOUT", "five minutes"),
        ("DOCKO_MAX_ATTEMPTS", "0"),
        ("DOCKO_JOB_TIMEOUT", "-3"),
        ("DOCKO_LISTEN", "maybe"),
        ("DOCKO_LOG_FORMAT", "xml"),
        ("DOCKO_LOG_LEVEL", "loud"),
        ("DOCKO_QUEUES", " , "),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert variable in str(caught.value)


def test_bad_value_message_is_one_line_with_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_WORKER_COUNT", "abc")
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert "\n" not in message
    assert "'abc'" in message


def test_max_retry_delay_below_base_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_BASE_RETRY_DELAY", "10")
    monkeypatch.setenv("DOCKO_MAX_RETRY_DELAY", "5")
    with pytest.raises(ConfigError, match="DOCKO_MAX_RETRY_DELAY"):
        load_config()


def test_heartbeat_not_below_visibility_timeout_is_rejected() -> None:
    with pytest.raises(ConfigError, match="DOCKO_HEARTBEAT_INTERVAL"):
        load_config(visibility_timeout=10, heartbeat_interval=10)


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_WORKER_COUNT", "3")
    assert load_config(worker_count=7).worker_count == 7


def test_config_is_the_settings_model() -> None:
    assert isinstance(load_config(), Config)


def test_unknown_env_vars_flags_typos() -> None:
    environ = {
        "DOCKO_TYPO": "1",
        "DOCKO_QUEUES": "a",
        "DOCKO_DATABASE_URL": "postgresql://x@y/z",
        "DOCKO_TEST_DATABASE_URL": "postgresql://x@y/t",
        "DATABASE_URL": "postgresql://x@y/z",
        "PATH": "/usr/bin",
    }
    assert unknown_env_vars(environ) == ["DOCKO_TYPO"]


def test_unknown_env_vars_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_WORKER_CONUT", "4")
    assert unknown_env_vars() == ["DOCKO_WORKER_CONUT"]


def test_redact_dsn_hides_the_password_in_url_form() -> None:
    redacted = redact_dsn("postgresql://alice:s3cret@db.example.com:6432/documents")
    assert "s3cret" not in redacted
    assert redacted == "postgresql://alice:***@db.example.com:6432/documents"


def test_redact_dsn_hides_the_password_in_the_query() -> None:
    redacted = redact_dsn(
        "postgresql://alice@db.example.com/documents?password=s3cret&sslmode=require"
    )
    assert "s3cret" not in redacted
    assert "alice@db.example.com/documents" in redacted
    assert "sslmode=require" in redacted


def test_redact_dsn_keeps_a_dsn_without_password() -> None:
    dsn = "postgresql://alice@db.example.com:5432/documents"
    assert redact_dsn(dsn) == dsn


def test_redact_dsn_of_nothing_is_empty() -> None:
    assert redact_dsn(None) == ""
    assert redact_dsn("") == ""


def test_redact_dsn_keeps_an_ipv6_host_readable() -> None:
    redacted = redact_dsn("postgresql://alice:s3cret@[::1]:5432/documents")
    assert "s3cret" not in redacted
    assert redacted == "postgresql://alice:***@[::1]:5432/documents"
