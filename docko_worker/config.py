"""The ``Config`` settings model: the only home of docko-worker's defaults and ranges.

Every setting is read from a ``DOCKO_*`` environment variable (``DOCKO_DATABASE_URL`` falls back to
``DATABASE_URL``). Durations are seconds, floats allowed; every number has a range, and ``inf`` or
``nan`` is never in it. ``settings_reference`` lists each setting with its default and range, read
from the fields (``settings_doc.py`` words them; the CLI's ``--help`` prints them). ``load_config``
turns a validation failure into a ``ConfigError`` whose message names the variable actually set,
so the CLI can print one line and exit 2. The DSN's password shows nowhere: not in the repr, nor
in an error (see ``dsn.py``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .dsn import check_dsn
from .dsn import redact_dsn as redact_dsn
from .errors import ConfigError
from .settings_doc import DAY, HOUR, YEAR, Setting, default_text, field_extra, range_text

ENV_PREFIX = "DOCKO_"
DATABASE_URL_VARIABLES = ("DOCKO_DATABASE_URL", "DATABASE_URL")


def _seconds(
    default: float | None,
    description: str,
    *,
    high: float | None,
    low: float = 0,
    low_included: bool = False,
    default_text: str | None = None,
    note: str | None = None,
) -> Any:
    """A duration: finite seconds above ``low`` (or from it, ``low_included``) up to ``high``.

    ``note`` states a rule between settings, which the model's validators check.
    """
    return Field(
        default,
        description=description,
        json_schema_extra=field_extra(unit="seconds", default_text=default_text, note=note),
        ge=low if low_included else None,
        gt=None if low_included else low,
        le=high,
        allow_inf_nan=False,
    )


class Config(BaseSettings):
    """docko-worker configuration, read from ``DOCKO_*`` environment variables.

    Its repr and str show the DSN with the password hidden; ``model_dump`` returns the values
    themselves (the DSN included), for code that builds another configuration from them.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
        populate_by_name=True,
        # A validation error's text would otherwise quote the value: the DSN with its password.
        hide_input_in_errors=True,
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(*DATABASE_URL_VARIABLES, "database_url"),
        description="PostgreSQL DSN, a URL: postgresql://user:password@host:5432/dbname "
        "(falls back to DATABASE_URL).",
    )
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["default"],
        description="Comma-separated queue names this daemon serves; a repeated name is "
        "ignored, with a warning.",
    )
    worker_count: int = Field(default=4, ge=1, le=100_000, description="Concurrent jobs.")
    poll_interval: float = _seconds(
        1.0,
        "Seconds between polls when idle and nothing wakes the daemon sooner (a notification, "
        "the end of a retry's backoff).",
        high=HOUR,
    )
    visibility_timeout: float = _seconds(
        300.0,
        "Lease length: a job is reclaimed this long after its worker dies.",
        high=7 * DAY,
        low=1,
        low_included=True,
    )
    heartbeat_interval: float | None = _seconds(
        None,
        "Seconds between lease extensions.",
        high=None,
        default_text="a third of DOCKO_VISIBILITY_TIMEOUT",
        note="below DOCKO_VISIBILITY_TIMEOUT",
    )
    base_retry_delay: float = _seconds(1.0, "Backoff base.", high=30 * DAY)
    max_retry_delay: float = _seconds(
        3600.0, "Backoff cap.", high=30 * DAY, note="not below DOCKO_BASE_RETRY_DELAY"
    )
    max_attempts: int = Field(
        default=5, ge=1, le=1_000_000, description="Default attempts per job."
    )
    job_timeout: float | None = _seconds(
        None,
        "Seconds a handler may run before it is cancelled.",
        high=7 * DAY,
        default_text="none (no limit)",
    )
    shutdown_timeout: float = _seconds(
        30.0, "Seconds running jobs get to finish after SIGTERM.", high=DAY, low_included=True
    )
    rescue_interval: float = _seconds(
        5.0, "Seconds between sweeps for jobs whose lease expired.", high=HOUR
    )
    completed_retention: float = _seconds(
        86_400.0,
        "Seconds completed jobs are kept for inspection; 0 deletes them on completion.",
        high=10 * YEAR,
        low_included=True,
    )
    failed_retention: float = _seconds(
        7 * 86_400.0,
        "Seconds failed and cancelled jobs are kept for inspection.",
        high=10 * YEAR,
        low_included=True,
    )
    prune_interval: float = _seconds(
        60.0, "Seconds between deletions of finished jobs past retention.", high=DAY
    )
    claim_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Most jobs one claim statement takes."
    )
    completion_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Most outcomes one completion statement writes."
    )
    completion_flush_interval: float = _seconds(
        0.005,
        "Seconds an outcome may wait to be written with others.",
        high=1,
        low_included=True,
    )
    listen: bool = Field(
        default=True,
        description="Use LISTEN/NOTIFY to wake idle workers (false: poll only, e.g. PgBouncer).",
    )
    statement_cache_size: int = Field(
        default=100, ge=0, description="asyncpg prepared-statement cache (0 behind PgBouncer)."
    )
    pool_size: int = Field(
        default=10, ge=2, le=1000, description="Connections in the daemon's pool."
    )
    auto_migrate: bool = Field(default=True, description="Apply migrations when `run` starts.")
    health_file: str | None = Field(
        default=None, description="File the daemon touches while healthy (for `healthcheck`)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severity logged."
    )
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="How log lines are written (to stderr).",
        json_schema_extra=field_extra(default_text="console on a TTY, else json"),
    )
    log_completed: bool = Field(
        default=False,
        description="Log each completed job at info (job_completed, with its duration); off by "
        "default, as a line per job costs throughput.",
    )
    thread_pool_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Threads that run plain-def (sync) handlers: at most this many at once.",
    )
    http_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the daemon's HTTP endpoint (GET /metrics, /healthz, /readyz); "
        "0: a free port chosen by the system, logged as http_listening.",
        json_schema_extra=field_extra(default_text="none (no endpoint)"),
    )
    http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the HTTP endpoint listens on (0.0.0.0: every IPv4 interface, "
        "as in the container image; :: every interface).",
    )
    metrics_sample_interval: float = _seconds(
        5.0,
        "Seconds between the HTTP endpoint's samples of the jobs table (queue depth and lag, "
        "one statement each time).",
        high=HOUR,
        low=0.1,
        low_included=True,
    )
    middleware: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated handler middleware, each module:attribute, outermost first "
        "(e.g. docko_worker.tracing:middleware); they wrap those added with add_middleware.",
        json_schema_extra=field_extra(default_text="none"),
    )
    dashboard_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address `docko-worker dashboard` listens on; any but a loopback address "
        "needs DOCKO_DASHBOARD_PASSWORD.",
    )
    dashboard_port: int = Field(
        default=8080, ge=1, le=65535, description="Port `docko-worker dashboard` listens on."
    )
    dashboard_user: str = Field(
        default="admin", min_length=1, description="User name of the dashboard's basic auth."
    )
    dashboard_password: SecretStr | None = Field(
        default=None,
        description="Password of the dashboard's basic auth; unset, the dashboard answers "
        "loopback clients only.",
    )
    dashboard_read_only: bool = Field(
        default=False,
        description="Dashboard without actions: no cancel, retry, pause or resume, and every "
        "state-changing request refused.",
    )

    _duplicate_queues: list[str] = PrivateAttr(default_factory=list)

    @field_validator("database_url")
    @classmethod
    def _valid_dsn(cls, value: str | None) -> str | None:
        return None if value is None else check_dsn(value.strip())

    @field_validator("queues", "middleware", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("queues")
    @classmethod
    def _queues_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one queue")
        return value

    @field_validator("middleware")
    @classmethod
    def _middleware_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            module, _, attribute = path.partition(":")
            if not module or not attribute:
                raise ValueError(f"{path!r} is not module:attribute")
        return value

    @field_validator("dashboard_password", mode="before")
    @classmethod
    def _empty_password_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("dashboard_user")
    @classmethod
    def _user_without_colon(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("must not contain ':' (basic auth splits the user from the password)")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_delays(self) -> Config:
        if self.max_retry_delay < self.base_retry_delay:
            raise ValueError("DOCKO_MAX_RETRY_DELAY: must not be below DOCKO_BASE_RETRY_DELAY")
        if (
            self.heartbeat_interval is not None
            and self.heartbeat_interval >= self.visibility_timeout
        ):
            raise ValueError("DOCKO_HEARTBEAT_INTERVAL: must be below DOCKO_VISIBILITY_TIMEOUT")
        return self

    @model_validator(mode="after")
    def _drop_duplicate_queues(self) -> Config:
        """Serve each queue once: a repeated name would make every claim lock rows twice."""
        unique = list(dict.fromkeys(self.queues))
        if len(unique) < len(self.queues):
            repeated = [name for i, name in enumerate(self.queues) if name in self.queues[:i]]
            self._duplicate_queues = list(dict.fromkeys(repeated))
            self.queues = unique
        return self

    @property
    def duplicate_queues(self) -> list[str]:
        """Queue names given more than once (``queues`` holds each once): worth a warning."""
        return list(self._duplicate_queues)

    @property
    def effective_heartbeat_interval(self) -> float:
        return self.heartbeat_interval or self.visibility_timeout / 3

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "DOCKO_DATABASE_URL is not set (nor DATABASE_URL): name the PostgreSQL database"
            )
        return self.database_url

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_dsn(value) if name == "database_url" and value else value


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def _environ_get(name: str) -> str | None:
    """An environment variable, found whatever its case (as the settings are read)."""
    for key, value in os.environ.items():
        if key.upper() == name:
            return value
    return None


def source_variable(field: str) -> str:
    """The variable ``field`` was read from: for the DSN, whichever of its two names is set."""
    if field == "database_url":
        for name in DATABASE_URL_VARIABLES:
            if _environ_get(name) is not None:
                return name
    return env_name(field)


def load_config(**overrides: object) -> Config:
    """Read the configuration from the environment, raising ``ConfigError`` on a bad value."""
    try:
        return Config(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


_OUT_OF_RANGE = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "finite_number",
}


def _field_of(loc: str) -> str | None:
    """The field an error location names (a field name, or an alias such as DATABASE_URL)."""
    if loc in Config.model_fields:
        return loc
    for name, info in Config.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and loc in alias.choices:
            return name
    return None


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = first.get("loc", ())
    field = _field_of(str(loc[0])) if loc else None
    message = str(first.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if field is None:
        return f"invalid configuration: {message}"
    if first.get("type") in _OUT_OF_RANGE:
        message = f"must be {range_text(Config.model_fields[field])}"
    name = source_variable(field)
    raw = _environ_get(name)
    shown = f" (got {raw!r})" if raw is not None and field != "database_url" else ""
    return f"invalid configuration: {name}: {message}{shown}"


def unknown_env_vars(environ: dict[str, str] | None = None) -> list[str]:
    """``DOCKO_*`` variables that name no setting: usually a typo worth a warning."""
    environ = dict(os.environ) if environ is None else environ
    known = {env_name(name) for name in Config.model_fields} | {"DOCKO_TEST_DATABASE_URL"}
    return sorted(
        key for key in environ if key.upper().startswith(ENV_PREFIX) and key.upper() not in known
    )


def settings_reference() -> list[Setting]:
    """Every setting of ``Config``, in its order: variable, default, range and meaning."""
    return [
        Setting(env_name(name), default_text(info), range_text(info), info.description or "")
        for name, info in Config.model_fields.items()
    ]
