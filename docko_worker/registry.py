"""The handler registry: job type -> handler, filled in code or from entry points.

A handler is an ``async def`` (run on the event loop) or a plain ``def`` (run in the daemon's
bounded pool of threads, see ``threads.py``); callable objects count by their ``__call__``.
Entry points live in group ``docko_worker.handlers``; the entry point's name is the job type and
its value the handler (``ocr = "acme_docs.handlers:ocr"``). An entry point that does not import, a
value that is not a function (a class, a generator function, anything not callable), or two
handlers for one job type raise ``RegistryError`` naming the culprit. ``load_periodic_entry_points``
reads the periodic jobs of group ``docko_worker.periodic`` the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from .errors import DockoError, RegistryError
from .payloads import check_max_attempts, check_priority
from .periodic import PERIODIC_ENTRY_POINT_GROUP, Periodic

if TYPE_CHECKING:
    from .job import Job

ENTRY_POINT_GROUP = "docko_worker.handlers"

# ``async def handler(job)`` or ``def handler(job)``.
Handler = Callable[["Job"], Awaitable[None] | None]

# Attribute a handler carries with its ``HandlerOptions`` (see ``handler_options``).
OPTIONS_ATTRIBUTE = "__docko_options__"


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """Defaults for the jobs of one type, kept beside its handler. None: the global setting.

    ``timeout`` and the retry delays apply where the handler runs. ``max_attempts`` and
    ``priority`` apply at enqueue, by a ``Queue`` that has the handler registered; a job's own
    values, given at enqueue, win, and a producer that does not know the type (another service,
    ``docko_worker.enqueue`` on a web app's connection) uses the global defaults.
    """

    timeout: float | None = None
    max_attempts: int | None = None
    priority: int | None = None
    retry_base_delay: float | None = None
    retry_max_delay: float | None = None

    def checked(self, job_type: str) -> HandlerOptions:
        """These options, or ``RegistryError`` naming the job type and the bad value."""
        for name in ("timeout", "retry_base_delay", "retry_max_delay"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float) and 0 < value <= MAX_HANDLER_SECONDS
            ):
                raise RegistryError(
                    f"{name} for job type {job_type!r} must be positive, at most "
                    f"{MAX_HANDLER_SECONDS:g} seconds, got {value!r}"
                )
        base, cap = self.retry_base_delay, self.retry_max_delay
        if base is not None and cap is not None and cap < base:
            raise RegistryError(
                f"retry_max_delay for job type {job_type!r} must not be below retry_base_delay"
            )
        try:
            if self.max_attempts is not None:
                check_max_attempts(self.max_attempts)
            if self.priority is not None:
                check_priority(self.priority)
        except DockoError as exc:
            raise RegistryError(f"job type {job_type!r}: {exc}") from None
        return self


# The longest timeout or retry delay a handler's options may name (30 days).
MAX_HANDLER_SECONDS = 30 * 86_400.0


@dataclass(frozen=True, slots=True)
class RegisteredHandler:
    job_type: str
    handler: Handler
    timeout: float | None
    source: str
    # False for a plain ``def``: it runs in a thread, never on the event loop.
    is_async: bool = True
    options: HandlerOptions = HandlerOptions()


def handler_options(
    *,
    timeout: float | None = None,
    max_attempts: int | None = None,
    priority: int | None = None,
    retry_base_delay: float | None = None,
    retry_max_delay: float | None = None,
) -> Callable[[Handler], Handler]:
    """Decorator for handlers: per-type defaults kept beside the code they concern.

    ``@handler_options(timeout=600, max_attempts=10, retry_base_delay=5)``; see
    ``HandlerOptions`` for where each applies.
    """
    options = HandlerOptions(timeout, max_attempts, priority, retry_base_delay, retry_max_delay)

    def decorate(handler: Handler) -> Handler:
        setattr(handler, OPTIONS_ATTRIBUTE, options)
        return handler

    return decorate


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - async callable objects count too
    return call is not None and inspect.iscoroutinefunction(call)


def _is_function(obj: Any) -> bool:
    """Something to call with a job: not a class, nor a function whose call runs nothing yet."""
    if not callable(obj) or inspect.isclass(obj):
        return False
    call = obj if inspect.isroutine(obj) else getattr(obj, "__call__", obj)  # noqa: B004
    return not (inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call))


class HandlerRegistry:
    """Maps job types to handlers; refuses duplicates and what is not a function."""

    def __init__(self) -> None:
        self._handlers: dict[str, RegisteredHandler] = {}

    def register(
        self,
        job_type: str,
        handler: Handler,
        *,
        timeout: float | None = None,
        options: HandlerOptions | None = None,
        source: str = "code",
    ) -> None:
        """``options`` (else those of ``handler_options`` on the handler) set the type's
        defaults; ``timeout`` overrides theirs."""
        if not isinstance(job_type, str) or not job_type:
            raise RegistryError(f"job type must be a non-empty string, got {job_type!r}")
        if not _is_function(handler):
            raise RegistryError(
                f"handler for job type {job_type!r} ({source}) must be a function "
                f"(async def, or a plain def run in a thread), not {type(handler).__name__}"
            )
        if job_type in self._handlers:
            existing = self._handlers[job_type]
            raise RegistryError(
                f"two handlers for job type {job_type!r}: {existing.source} and {source}"
            )
        if options is None:
            options = getattr(handler, OPTIONS_ATTRIBUTE, None) or HandlerOptions()
        if timeout is not None:
            options = dataclasses.replace(options, timeout=timeout)
        options = options.checked(job_type)
        self._handlers[job_type] = RegisteredHandler(
            job_type,
            handler,
            options.timeout,
            source,
            is_async=_is_async_callable(handler),
            options=options,
        )

    def load_entry_points(self, found: Iterable[EntryPoint] | None = None) -> list[str]:
        """Register every handler in the entry-point group; returns the job types added."""
        if found is None:
            found = entry_points(group=ENTRY_POINT_GROUP)
        added: list[str] = []
        for entry_point in found:
            handler, source = _load(entry_point, ENTRY_POINT_GROUP)
            self.register(entry_point.name, handler, source=source)
            added.append(entry_point.name)
        return added

    def get(self, job_type: str) -> RegisteredHandler | None:
        return self._handlers.get(job_type)

    @property
    def job_types(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)


def _load(entry_point: EntryPoint, group: str) -> tuple[Any, str]:
    """The entry point's value and a description of where it comes from, for error messages."""
    source = f"entry point {entry_point.name} = {entry_point.value!r}"
    if entry_point.dist is not None:
        source += f" (from {entry_point.dist.name})"
    try:
        return entry_point.load(), source
    except Exception as exc:
        raise RegistryError(
            f"{source} in group {group} does not import: {type(exc).__name__}: {exc}"
        ) from exc


def load_periodic_entry_points(found: Iterable[EntryPoint] | None = None) -> list[Periodic]:
    """The periodic jobs of every entry point in group ``docko_worker.periodic``.

    An entry point's value is a ``Periodic`` or a list of them. One that does not import (an
    invalid cron expression or time zone raises as its module builds the ``Periodic``), a value of
    another kind, or two periodic jobs of one name raise ``RegistryError`` naming the culprit.
    """
    if found is None:
        found = entry_points(group=PERIODIC_ENTRY_POINT_GROUP)
    periodics: dict[str, tuple[Periodic, str]] = {}
    for entry_point in found:
        value, source = _load(entry_point, PERIODIC_ENTRY_POINT_GROUP)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if not isinstance(item, Periodic):
                raise RegistryError(
                    f"{source} in group {PERIODIC_ENTRY_POINT_GROUP} must be a Periodic or a "
                    f"list of them, not {type(item).__name__}"
                )
            if item.name in periodics:
                raise RegistryError(
                    f"two periodic jobs named {item.name!r}: {periodics[item.name][1]} and {source}"
                )
            periodics[item.name] = (item, source)
    return [periodic for periodic, _ in periodics.values()]
