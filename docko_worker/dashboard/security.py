"""Who may use the dashboard, and what its responses allow a browser to do.

- **Authentication**: HTTP basic auth against ``DOCKO_DASHBOARD_USER`` and
  ``DOCKO_DASHBOARD_PASSWORD`` (compared in constant time; a failure is a 401 and a
  ``dashboard_login_failed`` log line without the password). Without a password the dashboard
  answers loopback clients only, and only under a loopback ``Host`` (no DNS rebinding), unless
  the application it is mounted in authenticates every request itself (``external_auth``).
- **Listening**: ``check_listen`` refuses a non-loopback address without a password.
- **CSRF**: every state-changing request is a POST carrying a token tied to the browser's
  session cookie (random, HttpOnly, SameSite=Strict) by an HMAC under a key of the process;
  a POST from another origin (``Origin``, ``Sec-Fetch-Site``) is refused before the token is read.
- **Headers**: a strict Content-Security-Policy (scripts and styles from the dashboard's own
  files only: no inline script or style), no framing, no sniffing, no caching of pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from ..errors import ConfigError

log = structlog.get_logger("docko_worker.dashboard")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
CSRF_COOKIE = "docko_csrf"
CSRF_FIELD = "csrf"
REALM = 'Basic realm="docko-worker", charset="UTF-8"'
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ``::1`` (brackets allowed)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_listen(host: str, has_password: bool) -> None:
    """Refuse to serve on a non-loopback address without a password (``ConfigError``)."""
    if not has_password and not is_loopback(host):
        raise ConfigError(
            f"DOCKO_DASHBOARD_HOST={host} is not a loopback address and "
            "DOCKO_DASHBOARD_PASSWORD is not set: set a password, or listen on 127.0.0.1"
        )


def _host_name(host_header: str) -> str:
    """The name of a ``Host`` header, without its port."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The user and password of a ``Basic`` Authorization header, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 (UnicodeDecodeError)
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class Guard:
    """ASGI middleware: authentication for every request, security headers on every answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        user: str,
        password: str | None,
        external_auth: bool,
    ) -> None:
        self.app = app
        self.user = user.encode()
        self.password = None if password is None else password.encode()
        self.external_auth = external_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{scope.get('root_path', '')}/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-cache" if static else "no-store"
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    def _refusal(self, scope: Scope) -> PlainTextResponse | None:
        headers = Headers(scope=scope)
        client = scope.get("client")
        client_host = client[0] if client else "unknown"
        if self.password is not None:
            given = basic_credentials(headers.get("authorization"))
            if given is not None and self._matches(*given):
                return None
            if given is not None:
                log.warning("dashboard_login_failed", user=given[0][:100], client=client_host)
            return PlainTextResponse(
                "401: the dashboard needs its user name and password\n",
                status_code=401,
                headers={"www-authenticate": REALM},
            )
        if self.external_auth:
            return None
        if not is_loopback(client_host) or not is_loopback(_host_name(headers.get("host", ""))):
            return PlainTextResponse(
                "403: without DOCKO_DASHBOARD_PASSWORD the dashboard answers requests to and "
                "from this machine only\n",
                status_code=403,
            )
        return None

    def _matches(self, user: str, password: str) -> bool:
        assert self.password is not None
        # Both compared, whatever the first gives: the time taken tells nothing.
        user_ok = hmac.compare_digest(user.encode(), self.user)
        password_ok = hmac.compare_digest(password.encode(), self.password)
        return user_ok and password_ok


class Csrf:
    """Per-session tokens: the session is a random cookie, the token its HMAC under ``key``."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def token(self, session: str) -> str:
        return hmac.new(self.key, session.encode(), hashlib.sha256).hexdigest()

    def session(self, request: Request) -> tuple[str, bool]:
        """The request's session id, and whether it is new (the answer must set the cookie)."""
        current = request.cookies.get(CSRF_COOKIE)
        if current and 20 <= len(current) <= 100:
            return current, False
        return secrets.token_urlsafe(32), True

    def valid(self, request: Request, token: str | None) -> bool:
        session = request.cookies.get(CSRF_COOKIE)
        if not session or not token:
            return False
        return hmac.compare_digest(self.token(session), token)


def cross_origin(request: Request) -> bool:
    """True when the browser says the request comes from another site or origin."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.lower() != expected.lower()
