"""Pages as HTML: the Jinja2 environment (autoescaped), its helpers, and ``page``.

Everything a page shows of a job or a queue is user data, and goes through Jinja2's
autoescaping; helpers that build markup (``when``) build it with ``Markup.format``, which
escapes every argument. ``visible`` writes control characters as escapes (``\\x07``), so text
that only looks binary stays legible and never reaches the page raw.

A page has a live part (``templates/live/*.html``): a request with the ``X-Docko-Fragment``
header gets that part alone, which ``static/dashboard.js`` swaps in every few seconds; the
filters, the scroll position and the address stay as they are.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .. import __version__
from ..cli_display import age, span
from ..job import JobState
from ..periodic import describe_schedule
from .security import CSRF_COOKIE, Csrf

FRAGMENT_HEADER = "x-docko-fragment"
# Seconds between refreshes of a page's live part.
REFRESH_SECONDS = 5
# Characters of a payload the job page shows; the rest is left to `jobs show --json`.
PAYLOAD_SHOWN = 200_000

STATE_ICONS = {
    JobState.AVAILABLE.value: "○",
    JobState.RUNNING.value: "▶",
    JobState.COMPLETED.value: "✓",
    JobState.FAILED.value: "✕",
    JobState.CANCELLED.value: "⊘",
}

# Control characters, and the invisible ones that reorder or hide text (bidirectional overrides,
# zero-width characters): shown as escapes.
# What a page shows for a time or a duration that is not there.
NONE_SHOWN = "\u2013"  # an en dash

_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def visible(text: object) -> str:
    """``text`` with control and invisible characters (tab and newline aside) written as
    escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def shorten(text: object, width: int) -> str:
    line = " ".join(visible(text).split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def exact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def when(moment: datetime | None, now: datetime) -> Markup:
    """``<time>``: the age as text, the exact time on hover and in ``datetime``."""
    if moment is None:
        return Markup('<span class="muted">{}</span>').format(NONE_SHOWN)
    if moment.year in (1, 9999):
        return Markup('<span class="muted">{}</span>').format(
            "-infinity" if moment.year == 1 else "infinity"
        )
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        moment.isoformat(), exact(moment), age(moment, now)
    )


def pretty(payload: Any) -> tuple[str, bool]:
    """The payload as indented JSON, cut to ``PAYLOAD_SHOWN`` characters; and whether it was."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if len(text) > PAYLOAD_SHOWN:
        return visible(text[:PAYLOAD_SHOWN]), True
    return visible(text), False


def lag(seconds: float | None) -> str:
    return NONE_SHOWN if seconds is None else span(seconds)


def short_id(job_id: UUID) -> str:
    return str(job_id)[:8] + "…" + str(job_id)[-4:]


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("docko_worker.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(visible=visible, shorten=shorten, lag=lag, short_id=short_id)
    env.globals.update(
        STATE_ICONS=STATE_ICONS,
        STATES=[state.value for state in JobState],
        VERSION=__version__,
        describe=describe_schedule,
        REFRESH_MS=REFRESH_SECONDS * 1000,
    )
    return env


class Links:
    """Paths within the dashboard, under the path it is served or mounted at."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def __call__(self, path: str, **query: object) -> str:
        given = {key: str(value) for key, value in query.items() if value not in (None, "")}
        return self.base + path + ("?" + urlencode(given) if given else "")

    def job(self, job_id: UUID) -> str:
        return self(f"/jobs/{job_id}")

    def static(self, name: str) -> str:
        return self(f"/static/{name}", v=__version__)


class Renderer:
    def __init__(self, csrf: Csrf, *, read_only: bool) -> None:
        self.env = environment()
        self.csrf = csrf
        self.read_only = read_only

    def page(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        live: bool = True,
    ) -> HTMLResponse:
        """Template ``name`` (``live/<name>`` alone for a fragment request), its session
        cookie set when new."""
        session, new = self.csrf.session(request)
        links = Links(request.scope.get("root_path", ""))
        values = {
            "request": request,
            "now": datetime.now(UTC),
            "link": links,
            "when": when,
            "csrf_token": self.csrf.token(session),
            "actions": not self.read_only,
            "read_only": self.read_only,
            "page": name,
            "live": live,
            "notice": None,
            **context,
        }
        fragment = live and request.headers.get(FRAGMENT_HEADER) == "1"
        template = self.env.get_template(f"live/{name}.html" if fragment else f"{name}.html")
        response = HTMLResponse(template.render(values), status_code=status)
        response.headers["vary"] = "X-Docko-Fragment"
        if new:
            response.set_cookie(
                CSRF_COOKIE,
                session,
                path=links.base or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response
