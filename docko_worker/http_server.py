"""A small HTTP/1.1 server on the daemon's own event loop: asyncio streams, with h11 for HTTP.

h11 (python-hyper, the protocol engine under httpx and uvicorn) parses requests and frames
responses; this module only moves bytes between it and the socket. aiohttp's server would do as
well, but importing it costs 150-230 ms here, about a fifth of a 20,000-job burn-down that
counts from the daemon's start, where h11 costs about 10 ms (imported with the first
connection) and nothing else on the per-job path.

``bind`` opens the listening socket synchronously, so a port in use or an address that cannot be
had is a ``ConfigError`` before the daemon runs anything; ``serve`` serves until cancelled. Only
GET and HEAD are answered (405 otherwise); an unknown path gets 404. Connections are kept alive
between requests; a request head larger than 16 KiB, a body over 1 KiB, a client silent for
``IDLE_TIMEOUT`` seconds or more than ``MAX_CONNECTIONS`` connections at once are cut short.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from .errors import ConfigError

if TYPE_CHECKING:
    import h11

log = structlog.get_logger("docko_worker.http")

MAX_CONNECTIONS = 64
# Seconds a connection may stay silent (before or between requests) before it is closed.
IDLE_TIMEOUT = 30.0
MAX_REQUEST_HEAD = 16 * 1024
MAX_REQUEST_BODY = 1024
READ_SIZE = 64 * 1024
# Seconds ``close`` waits for open connections to end after cancelling them.
CLOSE_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    # Header names in lower case; a repeated header keeps its last value.
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Route = Callable[[Request], Response]


def text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode())


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``, or ``ConfigError`` saying why not."""
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"invalid configuration: DOCKO_HTTP_HOST: cannot listen on {where}: {_reason(exc)}"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted daemon may listen again while old connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve HTTP on {where} (DOCKO_HTTP_HOST, DOCKO_HTTP_PORT): {_reason(exc)}"
        ) from None
    return sock


def _reason(exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return reason[:1].lower() + reason[1:]


class HttpServer:
    """Serves ``routes`` (path -> function of the request) on one listening socket."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route]) -> None:
        self._host = host
        self._port = port
        self._routes = dict(routes)
        self._socket: socket.socket | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    def bind(self) -> tuple[str, int]:
        """Open the listening socket; returns the address it got (port 0 picks a free one)."""
        if self._socket is None:
            self._socket = listen(self._host, self._port)
        address = self._socket.getsockname()
        return str(address[0]), int(address[1])

    async def serve(self) -> None:
        """Serve until cancelled (binding again if a previous ``serve`` closed the socket)."""
        sock = self._socket or listen(self._host, self._port)
        self._socket = None
        server = await asyncio.start_server(self._connection, sock=sock)
        try:
            await server.serve_forever()
        finally:
            server.close()
            await self._close_connections()

    async def _close_connections(self) -> None:
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_GRACE)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, TimeoutError):
            pass
        except Exception:
            log.exception("http_connection_failed")
        finally:
            self._connections.discard(task)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        while True:
            try:
                event = await _next_event(conn, reader)
                if not isinstance(event, h11.Request):
                    return  # the client closed the connection
                request = _request(event)
                complete = await _skip_body(conn, reader)
            except h11.RemoteProtocolError as exc:
                await _send(conn, writer, text(exc.error_status_hint, "bad request"), "GET", True)
                return
            response = self._respond(request)
            await _send(conn, writer, response, request.method, not complete)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    def _respond(self, request: Request) -> Response:
        route = self._routes.get(request.path)
        if route is None:
            return text(404, "not found")
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"method not allowed\n", headers={"Allow": "GET, HEAD"})
        try:
            return route(request)
        except Exception:
            log.exception("http_route_failed", path=request.path)
            return text(500, "internal error")


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    import h11

    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        async with asyncio.timeout(IDLE_TIMEOUT):
            data = await reader.read(READ_SIZE)
        conn.receive_data(data)


async def _skip_body(conn: h11.Connection, reader: asyncio.StreamReader) -> bool:
    """Read the request's body and drop it; False when it is too large to read."""
    import h11

    size = 0
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.EndOfMessage):
            return True
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_REQUEST_BODY:
                return False
        else:
            return False


def _request(event: h11.Request) -> Request:
    target = event.target.decode("latin-1")
    return Request(
        method=event.method.decode("latin-1"),
        path=target.split("?", 1)[0],
        headers={name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers},
    )


async def _send(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    response: Response,
    method: str,
    close: bool,
) -> None:
    import h11

    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        ("Cache-Control", "no-store"),
        *response.headers.items(),
    ]
    if close:
        headers.append(("Connection", "close"))
    try:
        data = conn.send(h11.Response(status_code=response.status, headers=headers))
        if method != "HEAD":
            data = (data or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError:
        return  # the connection is in no state for a response (a protocol error came first)
    writer.write(data)
    await writer.drain()
