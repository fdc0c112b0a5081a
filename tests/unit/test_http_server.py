"""``http_server.HttpServer`` on the loopback interface: routes, methods, keep-alive, errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from docko_worker.errors import ConfigError
from docko_worker.http_server import HttpServer, Request, Response, text


def broken(_request: Request) -> Response:
    raise RuntimeError("route bug")


def echo(request: Request) -> Response:
    return text(200, f"{request.method} {request.path} {request.headers.get('accept', '-')}")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    http = HttpServer("127.0.0.1", 0, {"/echo": echo, "/broken": broken})
    address = http.bind()
    serving = asyncio.create_task(http.serve())
    try:
        yield address
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def exchange(address: tuple[str, int], raw: bytes) -> bytes:
    """Send ``raw`` on one connection; everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return data


async def test_a_route_answers_with_its_status_and_body(server: tuple[str, int]) -> None:
    data = await exchange(
        server, b"GET /echo?x=1 HTTP/1.1\r\nHost: t\r\nAccept: a/b\r\nConnection: close\r\n\r\n"
    )
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 14" in head.lower()
    assert body == b"GET /echo a/b\n"


async def test_two_requests_on_one_kept_alive_connection(server: tuple[str, int]) -> None:
    data = await exchange(
        server,
        b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"
        b"HEAD /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    assert data.count(b"HTTP/1.1 200 ") == 2
    assert data.count(b"GET /echo -\n") == 1, "HEAD answers without a body"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"POST /echo HTTP/1.1", b"405"),
        (b"GET /nowhere HTTP/1.1", b"404"),
        (b"GET /broken HTTP/1.1", b"500"),
    ],
)
async def test_errors_are_statuses(
    server: tuple[str, int], request_line: bytes, status: bytes
) -> None:
    data = await exchange(
        server, request_line + b"\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 " + status + b" ")


async def test_a_malformed_request_gets_400_and_the_connection_closes(
    server: tuple[str, int],
) -> None:
    data = await exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")


async def test_an_oversized_body_closes_the_connection_after_the_answer(
    server: tuple[str, int],
) -> None:
    body = b"x" * 4096
    data = await exchange(
        server, b"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + body
    )
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in data.lower()


def test_a_port_in_use_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="address already in use"):
            HttpServer("127.0.0.1", port, {}).bind()


def test_a_host_that_does_not_resolve_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="DOCKO_HTTP_HOST: cannot listen on"):
        HttpServer("no-such-host.invalid", 0, {}).bind()
