"""What a job may carry: its payload, names, integers and due time, checked before any write.

Every enqueue path (``Queue.enqueue``, both paths of ``Queue.enqueue_many``, the command line)
runs these checks, so what a daemon could never store, decode or schedule is refused up front
instead of failing after the row committed:

- the payload must be JSON (``PayloadError``): no NaN or infinity, no lone surrogates, no two
  keys of one object that become the same JSON string (``{1: "a", "1": "b"}``), nested at most
  ``MAX_PAYLOAD_DEPTH`` levels, and no integer of more digits than a daemon's ``json.loads``
  accepts under Python's default limit (``DAEMON_INT_DIGITS``), even where the producer raised
  its own limits. Non-string keys that do not collide are converted as ``json.dumps`` does;
- queue names, job types and dedupe keys are non-empty Unicode text without NUL (``DockoError``);
- ``priority`` and ``max_attempts`` are ``int``s that fit PostgreSQL's ``integer``
  (``PayloadError``, a ``ValueError``); bools, floats and strings are refused, not converted;
- the due time (``run_at``, or now, plus ``delay``) lies within ``MAX_SCHEDULE_AHEAD`` of now
  (``DockoError``), so the stored time always converts back to a Python datetime.

``encode_payload`` is on bulk enqueue's hot path: each check beyond the encoding itself runs only
when the encoded text shows it could matter (a key that looks like a converted one, a text long
enough to be that deep, a producer with a raised integer limit).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import index
from typing import Any

from .errors import DockoError, PayloadError

# Deepest nesting of arrays and objects a payload may have. A daemon decodes payloads with
# ``json.loads`` under Python's default recursion limit (1,000, less the frames below it): a
# payload encoded by a producer that raised its own limit could never be decoded there.
MAX_PAYLOAD_DEPTH = 500
# Most digits an integer in a payload may have: what ``json.loads`` accepts under Python's
# default ``sys.set_int_max_str_digits`` (4,300), the limit a daemon decodes under.
DAEMON_INT_DIGITS: int = sys.int_info.default_max_str_digits
# How far from now a job's due time may lie, either way (a Python datetime ends in year 9999).
MAX_SCHEDULE_AHEAD = timedelta(days=36_525)  # 100 years

INT4_MIN = -(2**31)
INT4_MAX = 2**31 - 1

# One encoder for every payload: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
# The C encoder behind it, built once: ``JSONEncoder.encode`` builds it anew on every call, which
# is most of the cost of the small payloads jobs carry. No circular-reference markers: a marker
# table shared across calls keeps stale entries after an error, so a cycle is caught as
# RecursionError instead.
_C_ENCODE = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, False
    )
)

# An object key as a converted int, float, bool or None key is written: any such key in the
# text matches (so does a string key that reads the same, which the exact check then clears).
# (The lookaheads let most quotes fail on one character: measurably cheaper.)
_find_converted_key = re.compile(
    r'"(?=[-0-9tfn])(?:-?[0-9][0-9.e+-]*|true|false|null)"(?=:)'
).search
# A JSON string of the encoder's output (escapes included), to look past text for structure.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# Outside strings, a run of this many digits is an integer's (a float's repr is far shorter).
_TOO_MANY_DIGITS = re.compile(rf"(?<![0-9])[0-9]{{{DAEMON_INT_DIGITS + 1}}}")
# Brackets a text needs to be nested deeper than the limit: one opening, one closing per level.
_SHORTEST_TOO_DEEP = 2 * (MAX_PAYLOAD_DEPTH + 1)
# Texts at least this long are looked at with memchr-speed searches before any scan: a long text
# is mostly strings, which a scan reads character by character. Shorter ones can be neither too
# deep nor hold too long an integer.
_LONG_TEXT = 512
assert _LONG_TEXT <= _SHORTEST_TOO_DEEP < DAEMON_INT_DIGITS
# Payloads per key scan in ``encode_payloads``: as many as one message of bulk enqueue's COPY.
_KEY_SCAN_BATCH = 256


def encode_payload(payload: Any) -> str:
    """The payload as compact JSON text, or ``PayloadError`` before anything is written."""
    text = _encode(payload)
    if len(text) < _LONG_TEXT and _find_converted_key(text) is not None:
        _check_keys(payload)
    return text


def encode_payloads(payloads: Sequence[Any]) -> Iterator[str]:
    """``encode_payload`` of each payload, in order, encoded lazily a batch at a time.

    The key scan of a batch's short texts runs once over all of them: its per-call cost, most of
    its cost for a small payload, is shared by the batch. (A newline, which encoded JSON never
    contains, keeps one text's end from forming a key with the next one's start.)
    """
    for start in range(0, len(payloads), _KEY_SCAN_BATCH):
        batch = payloads[start : start + _KEY_SCAN_BATCH]
        texts = list(map(_encode, batch))
        short = texts
        if max(map(len, texts)) >= _LONG_TEXT:  # long texts were checked whole by _encode
            short = [text for text in texts if len(text) < _LONG_TEXT]
        if _find_converted_key("\n".join(short)) is not None:
            for payload, text in zip(batch, texts, strict=True):
                if len(text) < _LONG_TEXT and _find_converted_key(text) is not None:
                    _check_keys(payload)
        yield from texts


def _encode(payload: Any) -> str:
    """The payload as JSON text, checked but for the key scan of a short text."""
    try:
        text = _ENCODER.encode(payload) if _C_ENCODE is None else "".join(_C_ENCODE(payload, 0))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON-serializable: {exc}") from None
    except RecursionError:
        raise PayloadError(
            "payload is not JSON-serializable: it contains itself or is nested too deeply"
        ) from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError(
                "payload contains text that is not valid Unicode (a lone surrogate)"
            ) from None
    if len(text) >= _LONG_TEXT:  # shorter texts can be neither too deep nor too long
        _check_long_text(payload, text)
    return text


def _check_long_text(payload: Any, text: str) -> None:
    """Depth, digits and keys of a long text, which is mostly strings: scanned only if need be."""
    if text.find("{", 1) < 0 and text.find("[", 1) < 0:  # (memchr) nothing nested: depth 1
        if isinstance(payload, dict):  # the only object there is
            try:
                "".join(payload)
            except TypeError:  # a key that is not a string
                _check_keys(payload)
    else:
        if len(text) >= _SHORTEST_TOO_DEEP:
            _check_depth(text)
        if _find_converted_key(text) is not None:
            _check_keys(payload)
    if len(text) > DAEMON_INT_DIGITS and _int_digits_raised():
        _check_int_digits(text)


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_PAYLOAD_DEPTH:
        return  # even if every bracket opened inside the last
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)
    if depth > MAX_PAYLOAD_DEPTH:
        raise PayloadError(
            f"payload is nested {depth} levels deep; the limit is {MAX_PAYLOAD_DEPTH} "
            "(a worker could not decode it)"
        )


def _int_digits_raised() -> bool:
    """Whether this process can encode integers a daemon cannot decode (it raised the limit)."""
    limit = sys.get_int_max_str_digits()
    return limit == 0 or limit > DAEMON_INT_DIGITS


def _check_int_digits(text: str) -> None:
    if _TOO_MANY_DIGITS.search(text) is None:
        return
    if _TOO_MANY_DIGITS.search(_STRING.sub("", text)) is None:
        return  # the digits were text
    raise PayloadError(
        f"payload has an integer of more than {DAEMON_INT_DIGITS} digits, which a worker cannot "
        "decode (Python's default int string limit); send it as a string"
    )


def _objects(payload: Any) -> Iterator[dict[Any, Any]]:
    """Every dict in ``payload``, at any depth (an encodable payload holds no cycle)."""
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            yield value
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)


def _key_text(key: Any) -> str:
    """A dict key as the encoder writes it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    return float.__repr__(key) if isinstance(key, float) else int.__repr__(key)


def _check_keys(payload: Any) -> None:
    for obj in _objects(payload):
        if all(type(key) is str for key in obj):
            continue
        seen: dict[str, Any] = {}
        for key in obj:
            text = _key_text(key)
            if text in seen:
                raise PayloadError(
                    f"payload has an object whose keys {seen[text]!r} and {key!r} are both "
                    f"{text!r} in JSON: a worker would receive only one of them"
                )
            seen[text] = key


def check_text(name: str, value: object) -> str:
    """``value`` if it is non-empty Unicode text without NUL; else ``DockoError`` naming it."""
    if not isinstance(value, str) or not value:
        raise DockoError(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise DockoError(f"{name} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DockoError(f"{name} must be valid Unicode text (it has a lone surrogate)") from None
    return value


def optional_text(name: str, value: str | None) -> str | None:
    """``check_text`` for a value that may be absent (None)."""
    return None if value is None else check_text(name, value)


def _int4(name: str, value: object, minimum: int) -> int:
    number = None if isinstance(value, bool) else _as_int(value)
    if number is None or not minimum <= number <= INT4_MAX:
        raise PayloadError(
            f"{name} must be an integer from {minimum} to {INT4_MAX}, got {_shown(value)}"
        )
    return number


def _as_int(value: object) -> int | None:
    try:
        return index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def check_priority(priority: object) -> int:
    """``priority`` as an ``int`` PostgreSQL's ``integer`` holds, else ``PayloadError``."""
    return _int4("priority", priority, INT4_MIN)


def check_max_attempts(max_attempts: object) -> int:
    """``max_attempts`` as an ``int`` from 1 to 2**31 - 1, else ``PayloadError``."""
    return _int4("max_attempts", max_attempts, 1)


def check_schedule(
    run_at: datetime | None, delay: float | timedelta | None
) -> tuple[datetime | None, float]:
    """``run_at`` and ``delay`` in seconds, if the job's due time lies within the bound.

    ``DockoError`` for a naive ``run_at``, a negative or non-finite ``delay``, or a due time
    (``run_at`` or now, plus ``delay``) more than ``MAX_SCHEDULE_AHEAD`` from now.
    """
    seconds = _delay_seconds(delay)
    if run_at is None:
        return None, seconds
    if not isinstance(run_at, datetime) or run_at.tzinfo is None or run_at.utcoffset() is None:
        raise DockoError("run_at must be a timezone-aware datetime")
    ahead = (run_at - datetime.now(UTC)).total_seconds() + seconds
    if abs(ahead) > MAX_SCHEDULE_AHEAD.total_seconds():
        raise DockoError(
            f"run_at{' plus delay' if seconds else ''} must lie within "
            f"{MAX_SCHEDULE_AHEAD.days // 365} years of now, got {run_at.isoformat()}"
            + (f" plus {seconds:g} s" if seconds else "")
        )
    return run_at, seconds


def _delay_seconds(delay: float | timedelta | None) -> float:
    if delay is None:
        return 0.0
    try:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise DockoError(f"delay must be a non-negative number of seconds, got {_shown(delay)}")
    if seconds > MAX_SCHEDULE_AHEAD.total_seconds():
        raise DockoError(
            f"delay must be at most {MAX_SCHEDULE_AHEAD.total_seconds():.0f} seconds "
            f"({MAX_SCHEDULE_AHEAD.days // 365} years), got {_shown(delay)}"
        )
    return seconds


def _shown(value: object, width: int = 40) -> str:
    """``value``'s repr for an error message, shortened (a huge int has no repr at all)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond this process's int string limit
        return f"an integer of {value.bit_length()} bits"  # type: ignore[attr-defined]
    return text if len(text) <= width else text[: width - 3] + "..."
