"""docko-worker: a PostgreSQL-backed job queue and asyncio worker daemon.

The public surface is the names in ``__all__``; every other module is an implementation detail.
"""

import importlib.metadata

from .config import Config, load_config
from .errors import (
    ConfigError,
    DockoError,
    LeaseLost,
    MigrationError,
    PayloadError,
    PermanentError,
    RegistryError,
)
from .job import Job, JobError, JobState
from .logs import configure_logging
from .operations import QueueInfo
from .periodic import PERIODIC_ENTRY_POINT_GROUP, Periodic, PeriodicInfo
from .producers import (
    complete,
    complete_async,
    enqueue,
    enqueue_async,
    enqueue_many,
    enqueue_many_async,
)
from .queue import Queue
from .registry import ENTRY_POINT_GROUP, HandlerOptions, HandlerRegistry, handler_options
from .retry import next_retry_delay

__all__ = [
    "ENTRY_POINT_GROUP",
    "PERIODIC_ENTRY_POINT_GROUP",
    "Config",
    "ConfigError",
    "DockoError",
    "HandlerOptions",
    "HandlerRegistry",
    "Job",
    "JobError",
    "JobState",
    "LeaseLost",
    "MigrationError",
    "PayloadError",
    "Periodic",
    "PeriodicInfo",
    "PermanentError",
    "Queue",
    "QueueInfo",
    "RegistryError",
    "complete",
    "complete_async",
    "configure_logging",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
    "handler_options",
    "load_config",
    "next_retry_delay",
]

# The version's one home is pyproject.toml; the installed distribution's metadata carries it.
try:
    __version__ = importlib.metadata.version("docko-worker")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
