"""The ``Config`` settings model: the only home of docko-worker's defaults.

Every setting is read from a ``DOCKO_*`` environment variable (``DOCKO_DATABASE_URL`` falls back to
``DATABASE_URL``). Durations are seconds; floats are allowed. ``load_config`` turns a validation
failure into a ``ConfigError`` whose message names the offending variable, so the CLI can print one
line and exit 2.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError

ENV_PREFIX = "DOCKO_"

PositiveSeconds = Annotated[float, Field(gt=0)]


class Config(BaseSettings):
    """docko-worker configuration, read from ``DOCKO_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
        populate_by_name=True,
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DOCKO_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="PostgreSQL DSN, e.g. postgresql://user:password@host:5432/dbname.",
    )
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["default"],
        description="Comma-separated queue names this daemon serves.",
    )
    worker_count: int = Field(default=4, ge=1, le=100_000, description="Concurrent jobs.")
    poll_interval: PositiveSeconds = Field(
        default=1.0,
        description="Seconds between polls when idle and nothing wakes the daemon sooner (a "
        "notification, the end of a retry's backoff).",
    )
    visibility_timeout: PositiveSeconds = Field(
        default=300.0,
        description="Lease length: a job is reclaimed this long after its worker dies.",
    )
    heartbeat_interval: PositiveSeconds | None = Field(
        default=None,
        description="Seconds between lease extensions; default a third of visibility_timeout.",
    )
    base_retry_delay: PositiveSeconds = Field(default=1.0, description="Backoff base.")
    max_retry_delay: PositiveSeconds = Field(default=3600.0, description="Backoff cap.")
    max_attempts: int = Field(default=5, ge=1, description="Default attempts per job.")
    job_timeout: PositiveSeconds | None = Field(
        default=None,
        description="Seconds a handler may run before it is cancelled (none: no limit).",
    )
    shutdown_timeout: Annotated[float, Field(ge=0)] = Field(
        default=30.0, description="Seconds running jobs get to finish after SIGTERM."
    )
    rescue_interval: PositiveSeconds = Field(
        default=5.0, description="Seconds between sweeps for jobs whose lease expired."
    )
    completed_retention: Annotated[float, Field(ge=0)] = Field(
        default=86_400.0,
        description="Seconds completed jobs are kept for inspection; 0 deletes them on completion.",
    )
    failed_retention: Annotated[float, Field(ge=0)] = Field(
        default=7 * 86_400.0, description="Seconds failed jobs are kept for inspection."
    )
    prune_interval: PositiveSeconds = Field(
        default=60.0, description="Seconds between deletions of finished jobs past retention."
    )
    claim_batch_size: int = Field(
        default=1000, ge=1, description="Most jobs one claim statement takes."
    )
    completion_batch_size: int = Field(
        default=1000, ge=1, description="Most outcomes one completion statement writes."
    )
    completion_flush_interval: Annotated[float, Field(ge=0)] = Field(
        default=0.005, description="Seconds an outcome may wait to be written with others."
    )
    listen: bool = Field(
        default=True,
        description="Use LISTEN/NOTIFY to wake idle workers (false: poll only, e.g. PgBouncer).",
    )
    statement_cache_size: int = Field(
        default=100, ge=0, description="asyncpg prepared-statement cache (0 behind PgBouncer)."
    )
    pool_size: int = Field(default=10, ge=2, description="Connections in the daemon's pool.")
    auto_migrate: bool = Field(default=True, description="Apply migrations when `run` starts.")
    health_file: str | None = Field(
        default=None, description="File the daemon touches while healthy (for `healthcheck`)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="json or console; default console on a TTY, JSON otherwise."
    )
    thread_pool_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Threads that run plain-def (sync) handlers: at most this many at once.",
    )

    @field_validator("database_url")
    @classmethod
    def _valid_dsn(cls, value: str | None) -> str | None:
        return None if value is None else check_dsn(value)

    @field_validator("queues", mode="before")
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

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_delays(self) -> Config:
        if self.max_retry_delay < self.base_retry_delay:
            raise ValueError("DOCKO_MAX_RETRY_DELAY must not be below DOCKO_BASE_RETRY_DELAY")
        if (
            self.heartbeat_interval is not None
            and self.heartbeat_interval >= self.visibility_timeout
        ):
            raise ValueError("DOCKO_HEARTBEAT_INTERVAL must be below DOCKO_VISIBILITY_TIMEOUT")
        return self

    @property
    def effective_heartbeat_interval(self) -> float:
        return self.heartbeat_interval or self.visibility_timeout / 3

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "DOCKO_DATABASE_URL is not set (nor DATABASE_URL): name the PostgreSQL database"
            )
        return self.database_url


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def load_config(**overrides: object) -> Config:
    """Read the configuration from the environment, raising ``ConfigError`` on a bad value."""
    try:
        return Config(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = first.get("loc", ())
    field = str(loc[0]) if loc else ""
    message = str(first.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if not field:
        return f"invalid configuration: {message}"
    name = env_name(field)
    raw = os.environ.get(name)
    shown = f" (got {raw!r})" if raw is not None and field != "database_url" else ""
    return f"invalid configuration: {name}: {message}{shown}"


def unknown_env_vars(environ: dict[str, str] | None = None) -> list[str]:
    """``DOCKO_*`` variables that name no setting: usually a typo worth a warning."""
    environ = dict(os.environ) if environ is None else environ
    known = {env_name(name) for name in Config.model_fields} | {"DOCKO_TEST_DATABASE_URL"}
    return sorted(
        key for key in environ if key.upper().startswith(ENV_PREFIX) and key.upper() not in known
    )


def _bad_ports(hostports: str) -> bool:
    """Whether a URL's host list (``h1:5432,[::1]:5433``) has a port that is not a number."""
    for hostport in hostports.split(","):
        port = hostport.rpartition("]")[2] if hostport.startswith("[") else hostport
        if ":" in port and not port.split(":", 1)[1].isdigit():
            return True
    return False


def check_dsn(dsn: str) -> str:
    """Refuse a DSN asyncpg would choke on, without repeating it (it may hold a password)."""
    if "://" not in dsn:
        return dsn  # a libpq keyword string ("host=... dbname=..."), left to asyncpg
    scheme = dsn.split("://", 1)[0].lower()
    if scheme not in ("postgres", "postgresql"):
        raise ValueError(f"must be a postgresql:// URL, not {scheme}://")
    netloc = urlsplit(dsn).netloc
    if _bad_ports(netloc.rpartition("@")[2]):
        raise ValueError(
            "the port is not a number (a password without its user, or a host without '@'?)"
        )
    return dsn


def redact_dsn(dsn: str | None) -> str:
    """The DSN with its password replaced, safe to log."""
    if not dsn:
        return ""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable dsn>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    elif _bad_ports(netloc):
        # "user:password/db" with the host forgotten: what follows the colon may be a secret.
        netloc = netloc.split(":", 1)[0] + ":***"
    query = parts.query
    if "password=" in query:
        query = "&".join(
            "password=***" if item.startswith("password=") else item for item in query.split("&")
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
