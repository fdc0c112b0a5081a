"""docko-worker: a PostgreSQL-backed job queue and asyncio worker daemon.

The public surface is the names in ``__all__``; every other module is an implementation detail.
"""

from .config import Config, load_config
from .errors import (
    ConfigError,
    DockoError,
    MigrationError,
    PayloadError,
    PermanentError,
    RegistryError,
)
from .job import Job, JobState
from .periodic import PERIODIC_ENTRY_POINT_GROUP, Periodic, PeriodicInfo
from .queue import Queue
from .registry import ENTRY_POINT_GROUP, HandlerRegistry, handler_options
from .retry import next_retry_delay

__all__ = [
    "ENTRY_POINT_GROUP",
    "PERIODIC_ENTRY_POINT_GROUP",
    "Config",
    "ConfigError",
    "DockoError",
    "HandlerRegistry",
    "Job",
    "JobState",
    "MigrationError",
    "PayloadError",
    "Periodic",
    "PeriodicInfo",
    "PermanentError",
    "Queue",
    "RegistryError",
    "handler_options",
    "load_config",
    "next_retry_delay",
]

__version__ = "0.1.0"
