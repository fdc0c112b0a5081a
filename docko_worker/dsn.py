"""The database DSN: which forms are accepted, and how one is shown without its secrets.

Only a ``postgresql://`` (or ``postgres://``) URL is accepted, in a form whose parts are not in
doubt: asyncpg splits a URL with ``urllib`` (the host part ends at the first ``/``, ``?`` or
``#``), so a password holding one of those characters unencoded spills into the host, port,
database or query, where asyncpg's own error messages would repeat it. ``check_dsn`` refuses
such a DSN, a libpq keyword/value string (asyncpg does not parse one) and anything else asyncpg
would choke on (a port that is not a number, a malformed query, an unknown ``sslmode`` or
``target_session_attrs``), with a message that never repeats the DSN. Several hosts
(``h1:5432,h2:5432``) with ``target_session_attrs`` are accepted: asyncpg tries them in order.

Because every accepted DSN has exactly one ``@``, before the host, ``redact_dsn`` can hide the
password for certain: the user information's password and every ``password``-like query parameter
(``password``, ``sslpassword``, in any case, however often repeated). ``hide_secrets`` removes the
same secrets from a text that might quote them (a driver's error message).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from .errors import describe_error

SCHEMES = ("postgresql", "postgres")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
HIDDEN = "***"
UNSHOWN = "<invalid DSN, not shown>"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_IPV6_HOST = re.compile(r"\[[^\[\]]+\](?::(.*))?")
_FORBIDDEN_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")


def _split(dsn: str) -> tuple[str, str, str, str]:
    """``scheme, netloc, path, query`` of a URL that ``check_dsn`` accepts."""
    match = _SCHEME.match(dsn)
    if match is None:
        raise ValueError(
            "must be a postgresql:// URL (postgresql://user:password@host:5432/dbname); "
            'a keyword/value string ("host=... dbname=...") is not supported'
        )
    scheme = match.group(1)
    rest = dsn[match.end() :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    path, _, query = tail.partition("?")
    return scheme, netloc, path, query


def _is_password_key(name: str) -> bool:
    return "password" in unquote_plus(name).lower()


def _check_port(port: str) -> None:
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(
            "a port is not a number from 1 to 65535 (a password without its user, a host "
            "without '@', or an IPv6 address without brackets?)"
        )


def _check_hosts(hostlist: str) -> None:
    for hostspec in hostlist.split(","):
        if hostspec.startswith("["):
            match = _IPV6_HOST.fullmatch(hostspec)
            if match is None:
                raise ValueError("an IPv6 host is malformed: write it as [address]:port")
            _check_port(match.group(1) or "")
        elif ":" in hostspec:
            _check_port(hostspec.split(":", 1)[1])


def check_dsn(dsn: str) -> str:
    """``dsn`` if asyncpg can use it as it reads; else ``ValueError`` without the DSN in it."""
    scheme, netloc, path, query = _split(dsn)
    if scheme.lower() not in SCHEMES:
        raise ValueError(f"must be a postgresql:// URL, not {scheme}://")
    if _FORBIDDEN_CHARACTERS.search(dsn):
        raise ValueError("contains a space or a control character (percent-encode it)")
    if netloc.count("@") > 1 or "@" in path or "@" in query or "#" in path + query:
        raise ValueError(
            "the user, password or database holds an unencoded '@', '/', '?' or '#': "
            "percent-encode them (%40, %2F, %3F, %23)"
        )
    _check_hosts(netloc.rpartition("@")[2])
    if query:
        try:
            fields = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError("the query string is malformed (name=value&name=value)") from None
        for name, value in fields:
            if name == "port":
                for port in value.split(","):
                    _check_port(port)
            elif name == "sslmode" and value not in SSL_MODES:
                raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}")
            elif name == "target_session_attrs" and value not in SESSION_ATTRS:
                raise ValueError(f"target_session_attrs must be one of {', '.join(SESSION_ATTRS)}")
    try:
        urlsplit(dsn)
    except ValueError:
        raise ValueError("cannot be parsed as a URL") from None
    return dsn


def redact_dsn(dsn: str | None) -> str:
    """The DSN with its password and password-like query parameters replaced, safe to log.

    A DSN ``check_dsn`` refuses is not shown at all: its parts are in doubt.
    """
    if not dsn:
        return ""
    try:
        scheme, netloc, path, query = _split(check_dsn(dsn))
    except ValueError:
        return UNSHOWN
    if "@" in netloc:
        userinfo, _, hosts = netloc.partition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{HIDDEN}@{hosts}"
    if query:
        query = "?" + "&".join(
            f"{field.partition('=')[0]}={HIDDEN}"
            if _is_password_key(field.partition("=")[0])
            else field
            for field in query.split("&")
        )
    return f"{scheme}://{netloc}{path}{query}"


def dsn_secrets(dsn: str | None) -> list[str]:
    """The secrets a DSN holds, as written and decoded, longest first."""
    if not dsn:
        return []
    found: set[str] = set()
    try:
        _, netloc, _, query = _split(dsn)
    except ValueError:
        return [dsn]  # no parts to tell apart: the whole string is the secret
    userinfo = netloc.rpartition("@")[0]
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        found |= {password, unquote(password)}
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if _is_password_key(name):
            found |= {value, unquote_plus(value)}
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def hide_secrets(text: str, dsn: str | None) -> str:
    """``text`` with every secret of ``dsn`` replaced (a driver's message may quote one)."""
    for secret in dsn_secrets(dsn):
        text = text.replace(secret, HIDDEN)
    return text


def describe_connection_error(exc: BaseException, dsn: str | None) -> str:
    """``describe_error`` of a connection error, without any secret of ``dsn`` it might quote."""
    return hide_secrets(describe_error(exc), dsn)
