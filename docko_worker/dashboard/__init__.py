"""The web dashboard for operators (extra ``docko-worker[dashboard]``).

``create_app(config=None, *, queue=None, external_auth=False)`` returns it as an ASGI
application (Starlette), which ``docko-worker dashboard`` serves with uvicorn and an application
may mount. Modules: ``app`` (routes, the application), ``views`` (pages and actions),
``data`` (reads and the throughput cache), ``chart`` (per-minute charts as SVG geometry),
``filters`` (the jobs page's filters, form bodies), ``render`` (Jinja2, autoescaped),
``security`` (authentication, CSRF, headers), ``server`` (the command); ``templates/`` and
``static/`` (CSS, JavaScript, icon: every asset is served by the dashboard itself).
"""

from __future__ import annotations

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in tests
    raise ImportError(
        "the dashboard needs the 'dashboard' extra: pip install 'docko-worker[dashboard]'"
    ) from exc

from .app import create_app

__all__ = ["create_app"]
