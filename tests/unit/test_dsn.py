"""The DSN forms accepted, and their redaction: a password never shows, whatever the form.

A DSN is accepted only as a ``postgresql://`` URL whose parts are not in doubt; a refusal never
repeats the DSN. For every accepted DSN that holds a password, the password asyncpg itself would
send (read with asyncpg's own DSN parser) is absent from the redacted form.
"""

from __future__ import annotations

import inspect

import pytest
from asyncpg import connect_utils

from docko_worker.dsn import (
    UNSHOWN,
    check_dsn,
    describe_connection_error,
    hide_secrets,
    redact_dsn,
)

SECRET = "Secr3t"


def asyncpg_secrets(dsn: str) -> list[str]:
    """The password asyncpg reads from ``dsn`` (with its own parser, no connection), and any
    password-like parameter it would pass on to the server as a setting."""
    parse = connect_utils._parse_connect_dsn_and_args
    arguments = {name: None for name in inspect.signature(parse).parameters}
    arguments["dsn"] = dsn
    _, params = parse(**arguments)
    settings = params.server_settings or {}
    passed_on = [value for key, value in settings.items() if "password" in key.lower()]
    return [value for value in (params.password, *passed_on) if value]


ACCEPTED = {
    "userinfo": "postgresql://alice:Secr3t@db.example.com:6432/documents",
    "postgres scheme": "postgres://alice:Secr3t@db/documents",
    "upper-case scheme": "POSTGRESQL://alice:Secr3t@db/documents",
    "slash encoded": "postgresql://alice:pa%2FSecr3t@db/documents",
    "all specials encoded": "postgresql://alice:Secr3t%2F%40%23%3F%25x@db/documents",
    "colon in password": "postgresql://alice:pa:Secr3t@db/documents",
    "query password": "postgresql://alice@db/documents?password=Secr3t&sslmode=require",
    "query password upper case": "postgresql://alice@db/documents?PASSWORD=Secr3t",
    "query password repeated": "postgresql://alice@db/documents?password=x1&password=Secr3t",
    "sslpassword": "postgresql://alice@db/documents?sslpassword=Secr3t&sslkey=/k.pem",
    "sslpassword mixed case": "postgresql://alice@db/documents?SslPassword=Secr3t",
    "encoded query key": "postgresql://alice@db/documents?pass%77ord=Secr3t",
    "both": "postgresql://alice:Secr3t@db/documents?sslpassword=Secr3t2",
    "multi-host": "postgresql://alice:Secr3t@h1:5432,h2:5433/documents",
    "ipv6": "postgresql://alice:Secr3t@[::1]:5432/documents",
    "multi-host ipv6": "postgresql://alice:Secr3t@[::1]:5432,[fe80::2]:5433/documents",
    "unix socket in the query": "postgresql://postgres:Secr3t@/postgres?host=/tmp/pg",
    "embedded server form": "postgresql://postgres:@/postgres?host=/tmp/pg",
    "no password": "postgresql://alice@db:5432/documents",
    "nothing but the scheme": "postgresql://",
}


@pytest.mark.parametrize("dsn", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_forms_are_redacted(dsn: str) -> None:
    assert check_dsn(dsn) == dsn
    redacted = redact_dsn(dsn)
    assert SECRET not in redacted
    for secret in asyncpg_secrets(dsn):
        assert secret not in redacted


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        (
            "postgresql://alice:Secr3t@db.example.com:6432/documents",
            "postgresql://alice:***@db.example.com:6432/documents",
        ),
        (
            "postgresql://alice:pa%2FSecr3t@h1:5432,h2:5433/documents",
            "postgresql://alice:***@h1:5432,h2:5433/documents",
        ),
        (
            "postgresql://alice:Secr3t@[::1]:5432,[::2]/documents",
            "postgresql://alice:***@[::1]:5432,[::2]/documents",
        ),
        (
            "postgresql://alice@db/d?password=a&sslmode=require&PassWord=b&sslpassword=c",
            "postgresql://alice@db/d?password=***&sslmode=require&PassWord=***&sslpassword=***",
        ),
        ("postgresql://alice@db:5432/documents", "postgresql://alice@db:5432/documents"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql://postgres:***@/postgres?host=/tmp/pg",
        ),
    ],
)
def test_redaction_keeps_what_is_not_secret(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted


REFUSED = {
    "keyword/value": "host=db password=Secr3t dbname=app",
    "keyword/value without spaces": "password=Secr3t",
    "no scheme": "127.0.0.1:5432/db",
    "other scheme": "mysql://alice:Secr3t@db/app",
    "slash in password": "postgresql://u:pa/Secr3t@h/db",
    "slash after digits": "postgresql://u:12/Secr3t@h/db",
    "at in password": "postgresql://u:p@Secr3t@h/db",
    "at and slash in password": "postgresql://u:p@a/Secr3t@h/db",
    "question mark in password": "postgresql://u:12?Secr3t@h/db",
    "question mark and equals": "postgresql://u:12?x=Secr3t@h/db",
    "hash in password": "postgresql://u:12#Secr3t@h/db",
    "host forgotten": "postgresql://u:Secr3t/db",
    "port out of range": "postgresql://u:Secr3t@h:99999/db",
    "port zero": "postgresql://u:Secr3t@h:0/db",
    "ipv6 unbracketed": "postgresql://u:Secr3t@::1/db",
    "ipv6 unclosed": "postgresql://u:Secr3t@[::1/db",
    "query field without a value": "postgresql://u:Secr3t@h/db?Secr3t",
    "query port not a number": "postgresql://u@h/db?port=Secr3t",
    "unknown sslmode": "postgresql://u:Secr3t@h/db?sslmode=requires",
    "space": "postgresql://u:Secr 3t@h/db",
    "newline": "postgresql://u:Secr3t@h/db\nx",
}


@pytest.mark.parametrize("dsn", REFUSED.values(), ids=REFUSED.keys())
def test_refused_forms_are_neither_repeated_nor_shown(dsn: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_dsn(dsn)
    message = str(caught.value)
    assert "\n" not in message
    assert SECRET not in message and "Secr" not in message
    assert redact_dsn(dsn) == UNSHOWN


def test_a_refused_scheme_is_named_when_it_is_one() -> None:
    with pytest.raises(ValueError, match=r"not mysql://"):
        check_dsn("mysql://x@h/db")


def test_nothing_to_redact() -> None:
    assert redact_dsn(None) == ""
    assert redact_dsn("") == ""


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://alice:pa%2FSecr3t@db/x", "auth failed for pa/Secr3t or pa%2FSecr3t"),
        ("postgresql://alice@db/x?sslpassword=Secr3t%21", "bad key password Secr3t!"),
        ("host=db password=Secr3t", "bad DSN host=db password=Secr3t"),
    ],
)
def test_a_message_quoting_a_secret_is_cleaned(dsn: str, message: str) -> None:
    cleaned = hide_secrets(message, dsn)
    assert "Secr3t" not in cleaned
    assert "***" in cleaned
    assert describe_connection_error(OSError(message), dsn) == f"OSError: {cleaned}"


def test_a_message_without_secrets_is_kept() -> None:
    dsn = "postgresql://alice@db/x"
    assert hide_secrets("connection refused", dsn) == "connection refused"
    assert hide_secrets("anything", None) == "anything"
