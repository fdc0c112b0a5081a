"""Job headers: string metadata stored with a job (``enqueue(..., headers=...)``), read back as
``job.headers``.

Headers carry what travels with a job but is not its payload: a trace context, a request id, the
tenant a log line should name. Keys and values are strings (keys non-empty), without NUL
characters or lone surrogates, and the whole set, as JSON, is at most ``MAX_HEADERS_BYTES``:
anything else is a ``PayloadError`` before anything is written. They are stored as a JSON object
in the nullable ``headers`` column (``NULL`` when a job has none).

When OpenTelemetry's API is installed (the ``opentelemetry`` extra), the current trace context is
added to the headers of every enqueue (``traceparent`` and, when set, ``tracestate`` and
``baggage``); headers the caller gives win over it. Outside a span nothing is added.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from functools import cache

from .errors import PayloadError

# The most a job's headers may take, as UTF-8 JSON: room for a W3C trace context with its
# largest baggage (8 KiB) and more.
MAX_HEADERS_BYTES = 16 * 1024


class _NoHeaders(Mapping[str, str]):
    """An empty, read-only mapping that shows as ``{}``."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


# ``job.headers`` of a job without headers: one shared, read-only empty mapping.
NO_HEADERS: Mapping[str, str] = _NoHeaders()

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _check(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"headers: {name} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise PayloadError(f"headers: {name} must not contain a NUL character")
    return value


def encode_headers(headers: Mapping[str, str] | None) -> str | None:
    """``headers`` (plus the current trace context, if any) as JSON text; None for none."""
    merged: dict[str, str] = {}
    inject = _trace_injector()
    if inject is not None:
        inject(merged)
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise PayloadError(
                f"headers must be a mapping of strings to strings, got {type(headers).__name__}"
            )
        for key, value in headers.items():
            _check("a key", key)
            if not key:
                raise PayloadError("headers: a key must not be empty")
            merged[key] = _check(f"the value of {key!r}", value)
    if not merged:
        return None
    text = _ENCODER.encode(merged)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise PayloadError(
            "headers contain text that is not valid Unicode (a lone surrogate)"
        ) from None
    if size > MAX_HEADERS_BYTES:
        raise PayloadError(f"headers take {size} bytes as JSON, more than {MAX_HEADERS_BYTES}")
    return text


def decode_headers(text: str | None) -> Mapping[str, str]:
    """A stored ``headers`` column as a mapping (empty for NULL or anything but an object)."""
    if text is None:
        return NO_HEADERS
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return NO_HEADERS
    if not isinstance(value, dict):
        return NO_HEADERS
    return {str(key): str(item) for key, item in value.items()}


@cache
def _trace_injector() -> Callable[[dict[str, str]], None] | None:
    """OpenTelemetry's context injection, when its API is installed (looked up once)."""
    try:
        from .tracing import inject_trace_context
    except ImportError:
        return None
    return inject_trace_context
