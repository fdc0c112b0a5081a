"""docko-worker: a PostgreSQL-backed job queue and asyncio worker daemon.

The public surface is the names in ``__all__``; every other module is an implementation detail.

Each name is imported from its module on first use (PEP 562), so importing a submodule (the
``docko-worker`` command does, first thing) does not import them all: ``run`` needs neither the
producers nor the installed distribution's metadata, and its start-up is mostly imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

    __version__: str

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

# The module each public name comes from.
_HOMES = {
    "Config": "config",
    "load_config": "config",
    "ConfigError": "errors",
    "DockoError": "errors",
    "LeaseLost": "errors",
    "MigrationError": "errors",
    "PayloadError": "errors",
    "PermanentError": "errors",
    "RegistryError": "errors",
    "Job": "job",
    "JobError": "job",
    "JobState": "job",
    "configure_logging": "logs",
    "QueueInfo": "operations",
    "PERIODIC_ENTRY_POINT_GROUP": "periodic",
    "Periodic": "periodic",
    "PeriodicInfo": "periodic",
    "complete": "producers",
    "complete_async": "producers",
    "enqueue": "producers",
    "enqueue_async": "producers",
    "enqueue_many": "producers",
    "enqueue_many_async": "producers",
    "Queue": "queue",
    "ENTRY_POINT_GROUP": "registry",
    "HandlerOptions": "registry",
    "HandlerRegistry": "registry",
    "handler_options": "registry",
    "next_retry_delay": "retry",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


def _installed_version() -> str:
    # The version's one home is pyproject.toml; the installed distribution's metadata carries it.
    import importlib.metadata

    try:
        return importlib.metadata.version("docko-worker")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
