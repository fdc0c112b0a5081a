"""How a setting is shown to people: its default and its range, in words, from the field itself.

``Config`` (``config.py``) declares each field once, with its default and bounds; this module
reads them back for the CLI's ``--help``, the README's table and the messages of out-of-range
errors, so no list of defaults or ranges is ever written by hand. A field may carry, in its
``json_schema_extra`` (see ``field_extra``): ``unit`` ("seconds": the upper bound is also
given in days or hours), ``default_text`` (what a ``None`` default means) and ``note`` (a rule
between settings, checked by the model's validators).
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le
from pydantic.fields import FieldInfo

HOUR = 3600
DAY = 24 * HOUR
YEAR = 365 * DAY


def field_extra(**items: str | None) -> dict[str, Any]:
    """A field's ``json_schema_extra``: the items given, those that are None left out."""
    return {key: value for key, value in items.items() if value is not None}


class Setting(NamedTuple):
    """One row of the reference: ``DOCKO_POLL_INTERVAL``, ``1``, ``over 0, up to 3600 ...``."""

    variable: str
    default: str
    range: str
    description: str


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _duration(seconds: float) -> str:
    """``seconds`` for people: ``7 days``, ``1 hour``; empty when seconds say it well enough."""
    for size, unit in ((YEAR, "year"), (DAY, "day")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''}"
    if seconds >= HOUR and seconds % HOUR == 0:
        hours = int(seconds // HOUR)
        return f"{hours} hour{'s' if hours > 1 else ''}"
    return ""


def _extras(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def range_text(info: FieldInfo) -> str:
    """The values a field accepts, in words: ``1 to 604800 (7 days)``, ``json or console``, plus
    its ``note``; empty when any value of its type will do."""
    low = high = None
    low_included = False
    for item in info.metadata:
        if isinstance(item, Ge | Gt):
            low_included = isinstance(item, Ge)
            low = float(item.ge if isinstance(item, Ge) else item.gt)  # type: ignore[arg-type]
        elif isinstance(item, Le):
            high = float(item.le)  # type: ignore[arg-type]
    words = ""
    if low is not None:
        words = _number(low) if low_included else f"over {_number(low)}"
        if high is None:
            words += " or more" if low_included else ""
        else:
            human = _duration(high) if _extras(info).get("unit") == "seconds" else ""
            words += " to " if low_included else ", up to "
            words += _number(high) + (f" ({human})" if human else "")
    choices = _choices(info.annotation)
    if not words and choices:
        words = ", ".join(choices[:-1]) + f" or {choices[-1]}"
    note = _extras(info).get("note")
    return ", ".join(part for part in (words, note) if part)


def _choices(annotation: Any) -> list[str]:
    """The values of a ``Literal`` or ``bool`` annotation (``None`` left out), as spelt."""
    if annotation is bool:
        return ["true", "false"]
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    if get_origin(annotation) in (Union, UnionType):
        return [c for arg in get_args(annotation) for c in _choices(arg)]
    return []


def default_text(info: FieldInfo) -> str:
    """A field's default as a variable would spell it (``300``, ``true``, ``default``)."""
    meaning = _extras(info).get("default_text")
    if meaning:
        return str(meaning)
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return _number(value)
    return str(value)
