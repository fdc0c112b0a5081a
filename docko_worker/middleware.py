"""Handler middleware: functions that wrap every handler call, for tracing, error reporting and
context (``queue.add_middleware``).

A middleware is ``async def middleware(job, call_next)``: it does what it wants before and after
``await call_next(job)``, which runs the next middleware, and after the last one the handler
itself (however the executor runs it). Whatever ``call_next`` raises is the handler's outcome if
the middleware lets it through; a middleware that swallows an exception turns the attempt into a
success, one that raises fails it. The first middleware added is the outermost. The handler's
timeout and cancellation cover the whole chain.

    async def timing(job: Job, call_next: CallNext) -> None:
        started = time.perf_counter()
        try:
            await call_next(job)
        finally:
            log.info("handled", job_type=job.job_type, seconds=time.perf_counter() - started)
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from .errors import DockoError, RegistryError, describe_error

if TYPE_CHECKING:
    from .job import Job

CallNext = Callable[["Job"], Awaitable[None]]
Middleware = Callable[["Job", CallNext], Awaitable[None]]


def check_middleware(middleware: object) -> Middleware:
    """``middleware`` itself, or ``DockoError`` when it is not an async callable."""
    call = getattr(middleware, "__call__", None)  # noqa: B004 - async callable objects count too
    if not (inspect.iscoroutinefunction(middleware) or inspect.iscoroutinefunction(call)):
        raise DockoError(
            f"middleware must be an async function of (job, call_next), got {middleware!r}"
        )
    return middleware  # type: ignore[return-value]


def load_middleware(path: str) -> Middleware:
    """The middleware a ``module:attribute`` path names (``DOCKO_MIDDLEWARE``), or
    ``RegistryError`` saying why not."""
    module_name, _, attribute = path.partition(":")
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:
        raise RegistryError(
            f"DOCKO_MIDDLEWARE: {path!r} does not import: {describe_error(exc)}"
        ) from None
    try:
        return check_middleware(found)
    except DockoError as exc:
        raise RegistryError(f"DOCKO_MIDDLEWARE: {path!r}: {exc}") from None


def _step(middleware: Middleware, call_next: CallNext, job: Job) -> Awaitable[None]:
    return middleware(job, call_next)


def wrap(middlewares: Sequence[Middleware], innermost: CallNext) -> CallNext:
    """``innermost`` wrapped in ``middlewares``, the first one outermost."""
    call = innermost
    for middleware in reversed(middlewares):
        call = partial(_step, middleware, call)
    return call
