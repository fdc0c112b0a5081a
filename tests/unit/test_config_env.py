"""``Config`` defaults, parsing of ``DOCKO_*`` environment variables, errors, and DSN redaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from settings_support import clear_settings

from docko_worker import Config, ConfigError, load_config
from docko_worker.config import redact_dsn, unknown_env_vars


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment with no docko settings in it."""
    clear_settings(monkeypatch)


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


# The variable named by an error is the one actually set (issue 11).


def test_a_bad_dsn_names_docko_database_url_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_DATABASE_URL", "postgresql://postgres@127.0.0.1:abc/db")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value).startswith("invalid configuration: DOCKO_DATABASE_URL: ")


def test_a_bad_dsn_in_database_url_names_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x@h/db")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value).startswith("invalid configuration: DATABASE_URL: "), caught.value


@pytest.mark.parametrize(
    "dsn",
    [
        "127.0.0.1:5432/db",
        "host=db password=Secr3t-pw dbname=app",
        "host=db:5432 password=Secr3t-pw",
        "dbname=app",
    ],
)
def test_a_dsn_that_is_not_a_url_is_refused_without_echo(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    monkeypatch.setenv("DOCKO_DATABASE_URL", dsn)
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert message.startswith("invalid configuration: DOCKO_DATABASE_URL: "), message
    assert "postgresql://" in message
    assert dsn not in message
    assert "Secr3t" not in message and "127.0.0.1" not in message


# The password shows in no repr, str or validation error (issue 18, item 8).

SECRET_DSN = "postgresql://alice:Secr3t-pw@db.example.com/documents"


def test_config_repr_and_str_hide_the_password() -> None:
    config = load_config(database_url=SECRET_DSN)
    for text in (repr(config), str(config), f"{config!r}", f"{config}"):
        assert "Secr3t" not in text
        assert "alice:***@db.example.com/documents" in text
    assert config.database_url == SECRET_DSN  # the value itself is intact


def test_a_validation_error_does_not_quote_the_dsn() -> None:
    with pytest.raises(ValidationError) as caught:
        Config(database_url="postgresql://alice:Secr3t-pw@db:abc/documents")
    assert "Secr3t" not in str(caught.value)
    assert "Secr3t" not in repr(caught.value)


# Every duration and count has a range; inf and nan are never in it (issue 18, item 9).

FLOAT_SETTINGS = [
    name for name, info in Config.model_fields.items() if "float" in str(info.annotation)
]


def test_every_number_has_an_upper_bound_except_the_statement_cache() -> None:
    from annotated_types import Le

    unbounded = [
        name
        for name, info in Config.model_fields.items()
        if ("float" in str(info.annotation) or info.annotation is int)
        and not any(isinstance(item, Le) for item in info.metadata)
    ]
    assert unbounded == ["heartbeat_interval", "statement_cache_size"]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e308"])
@pytest.mark.parametrize("field", FLOAT_SETTINGS)
def test_durations_refuse_inf_nan_and_huge(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    variable = f"DOCKO_{field.upper()}"
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert f"{variable}: " in str(caught.value), caught.value


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("DOCKO_VISIBILITY_TIMEOUT", "1e12", "1 to 604800 (7 days)"),
        ("DOCKO_VISIBILITY_TIMEOUT", "0.5", "1 to 604800 (7 days)"),
        ("DOCKO_POLL_INTERVAL", "3601", "over 0, up to 3600 (1 hour)"),
        ("DOCKO_RESCUE_INTERVAL", "86400", "over 0, up to 3600 (1 hour)"),
        ("DOCKO_COMPLETION_FLUSH_INTERVAL", "2", "0 to 1"),
        (
            "DOCKO_MAX_RETRY_DELAY",
            "31536000",
            "over 0, up to 2592000 (30 days), not below DOCKO_BASE_RETRY_DELAY",
        ),
        ("DOCKO_COMPLETED_RETENTION", "1e10", "0 to 315360000 (10 years)"),
        ("DOCKO_SHUTDOWN_TIMEOUT", "90000", "0 to 86400 (1 day)"),
        ("DOCKO_JOB_TIMEOUT", "1e9", "over 0, up to 604800 (7 days)"),
        ("DOCKO_POOL_SIZE", "5000", "2 to 1000"),
        ("DOCKO_CLAIM_BATCH_SIZE", "1000000", "1 to 100000"),
        ("DOCKO_MAX_ATTEMPTS", "3000000000", "1 to 1000000"),
    ],
)
def test_a_value_out_of_range_is_one_line_with_the_range(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == (
        f"invalid configuration: {variable}: must be {allowed} (got {value!r})"
    )


def test_the_largest_values_in_range_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(
        visibility_timeout=7 * 86_400,
        poll_interval=3600,
        completion_flush_interval=1,
        max_retry_delay=30 * 86_400,
        failed_retention=10 * 365 * 86_400,
        shutdown_timeout=86_400,
    )
    assert config.visibility_timeout == 604_800.0


def test_heartbeat_nan_is_refused() -> None:
    with pytest.raises(ConfigError, match="DOCKO_HEARTBEAT_INTERVAL"):
        load_config(heartbeat_interval=float("nan"))


# A repeated queue is served once, and the repetition is kept for a warning (issue 18, item 11).


@pytest.mark.parametrize(
    ("value", "queues", "repeated"),
    [
        ("default, default", ["default"], ["default"]),
        ("a,b,a", ["a", "b"], ["a"]),
        ("b,a,b,a,b,c", ["b", "a", "c"], ["b", "a"]),
        ("a,b", ["a", "b"], []),
    ],
)
def test_repeated_queues_are_served_once(
    monkeypatch: pytest.MonkeyPatch, value: str, queues: list[str], repeated: list[str]
) -> None:
    monkeypatch.setenv("DOCKO_QUEUES", value)
    config = load_config()
    assert config.queues == queues
    assert config.duplicate_queues == repeated


def test_repeated_queues_from_python_are_served_once() -> None:
    config = load_config(queues=["x", "y", "x"])
    assert config.queues == ["x", "y"]
    assert config.duplicate_queues == ["x"]
