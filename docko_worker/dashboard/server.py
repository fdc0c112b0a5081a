"""``docko-worker dashboard``: the dashboard served by uvicorn on ``DOCKO_DASHBOARD_HOST`` and
``DOCKO_DASHBOARD_PORT``.

Before anything is served: a non-loopback address without ``DOCKO_DASHBOARD_PASSWORD`` is
refused (``ConfigError``: one line, exit 2), and the address is bound here, so an address in use
is one line too, not a traceback. SIGTERM and SIGINT stop uvicorn gracefully.
"""

from __future__ import annotations

import logging
import socket

import structlog
import uvicorn

from ..config import Config
from ..errors import ConfigError
from .app import create_app
from .security import check_listen

log = structlog.get_logger("docko_worker.dashboard")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (IPv4 or IPv6), or a ``ConfigError`` naming why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(config: Config) -> int:
    check_listen(config.dashboard_host, config.dashboard_password is not None)
    config.require_database_url()
    app = create_app(config)
    sock = listen(config.dashboard_host, config.dashboard_port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # uvicorn's own lines (start-up chatter) only from warnings on; requests are not logged.
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    log.info(
        "dashboard_listening",
        url=f"http://{shown}:{port}/",
        read_only=config.dashboard_read_only,
        password=config.dashboard_password is not None,
    )
    server.run(sockets=[sock])
    return 0
