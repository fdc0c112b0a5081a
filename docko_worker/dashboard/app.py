"""``create_app``: the dashboard as a Starlette (ASGI) application.

``docko-worker dashboard`` serves it with uvicorn; an application mounts the same object:

    from starlette.routing import Mount
    app = Starlette(routes=[Mount("/docko", app=create_app())])

It reads its settings from ``Config`` (``DOCKO_DASHBOARD_*``), and its database from the given
``queue``'s pool, or from a small pool of its own, opened at the first request (a mounted
application's lifespan is not run, so nothing waits for start-up) and closed at the lifespan's
end when there is one. A database that does not answer gives a 503 page naming why, and the
next request tries again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import Config, load_config
from ..dsn import describe_connection_error
from ..pool import CONNECT_ERRORS
from ..queue import Queue
from .data import DashboardData
from .render import Renderer
from .security import Csrf, Guard
from .views import Views


def create_app(
    config: Config | None = None,
    *,
    queue: Queue | None = None,
    external_auth: bool = False,
) -> Starlette:
    """The dashboard as an ASGI application.

    ``config``: the settings (default: read from the environment); ``DOCKO_DATABASE_URL`` is
    needed unless ``queue`` is given. ``queue``: an open ``Queue`` whose pool the dashboard
    reads and acts through (it is not closed by the dashboard). ``external_auth``: the
    application this one is mounted in authenticates every request itself; without a password
    the dashboard then answers every client, not only loopback ones.
    """
    config = config or load_config()
    if queue is None:
        config.require_database_url()
    password = config.dashboard_password
    csrf = Csrf()
    renderer = Renderer(csrf, read_only=config.dashboard_read_only)
    data = DashboardData.of(config, queue)
    views = Views(data, renderer, csrf)

    async def unavailable(request: Request, exc: Exception) -> Response:
        if isinstance(exc, asyncpg.PostgresError):
            reason = f"the database refused: {type(exc).__name__}: {exc}".splitlines()[0]
        else:
            reason = "database unavailable: " + describe_connection_error(exc, config.database_url)
        return renderer.page(
            request, "refused", {"message": reason, "status": 503}, status=503, live=False
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await data.close()

    static = StaticFiles(directory=str(files("docko_worker.dashboard") / "static"))
    routes = [
        Route("/", views.overview, name="overview"),
        Route("/jobs", views.jobs, name="jobs"),
        Route("/jobs/find", views.find, name="find"),
        Route("/jobs/bulk", views.bulk_confirm, name="bulk_confirm"),
        Route("/jobs/bulk", views.bulk, methods=["POST"], name="bulk"),
        Route("/jobs/{job_id}", views.job, name="job"),
        Route("/jobs/{job_id}/cancel", views.cancel, methods=["POST"], name="cancel"),
        Route("/jobs/{job_id}/retry", views.retry, methods=["POST"], name="retry"),
        Route("/queues/pause", views.pause, methods=["POST"], name="pause"),
        Route("/queues/resume", views.resume, methods=["POST"], name="resume"),
        Route("/periodic", views.periodic, name="periodic"),
        Mount("/static", app=static, name="static"),
    ]
    guard = Middleware(
        Guard,
        user=config.dashboard_user,
        password=None if password is None else password.get_secret_value(),
        external_auth=external_auth,
    )
    handlers: dict[type[Exception], object] = {
        error: unavailable for error in (*CONNECT_ERRORS, asyncpg.PostgresError)
    }
    return Starlette(
        routes=routes,
        middleware=[guard],
        exception_handlers=handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
