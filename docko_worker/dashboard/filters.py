"""The jobs page's filters, read from its query string, and the form bodies of actions.

A filter the operator mistyped (an unknown state, a malformed ``before`` id) is dropped with a
message the page shows, never an error page: the address stays usable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qs
from uuid import UUID

from starlette.requests import Request

from ..errors import DockoError
from ..job import JobState
from ..operations import parse_job_id, parse_state
from ..payloads import optional_text

# Bytes of a form body read at most: the dashboard's forms carry a token and a few names.
MAX_FORM_BYTES = 64 * 1024
# Jobs per page of the list.
PAGE_SIZE = 50


class FormTooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class JobFilters:
    queue: str | None = None
    type: str | None = None
    state: JobState | None = None
    before: UUID | None = None

    @classmethod
    def read(cls, params: Mapping[str, str]) -> tuple[JobFilters, list[str]]:
        problems: list[str] = []
        state = before = None
        try:
            state = parse_state(params.get("state") or None)
        except DockoError as exc:
            problems.append(str(exc))
        try:
            before = parse_job_id(params["before"]) if params.get("before") else None
        except DockoError as exc:
            problems.append(str(exc))
        texts = []
        for name in ("queue", "type"):
            try:
                texts.append(optional_text(name, params.get(name) or None))
            except DockoError as exc:
                problems.append(str(exc))
                texts.append(None)
        return cls(texts[0], texts[1], state, before), problems

    def query(self, **changes: object) -> dict[str, object]:
        """The query string of these filters with ``changes``, for links."""
        changed = replace(self, **changes)  # type: ignore[arg-type]
        return {
            "queue": changed.queue,
            "type": changed.type,
            "state": None if changed.state is None else changed.state.value,
            "before": changed.before,
        }

    @property
    def any(self) -> bool:
        return any(value is not None for value in (self.queue, self.type, self.state))


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded body as a mapping (the first value of each name)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}
