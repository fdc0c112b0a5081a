"""The demo database: ``docko_demo``, dropped and created afresh on the chosen server.

This module owns the database the demo writes to. The demo never writes to the configured
database itself: on its server it drops and creates ``docko_demo``, connecting to ``postgres``
instead when the configured database is ``docko_demo``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg
from asyncpg.types import ServerVersion

from ..config import Config, redact_dsn
from ..errors import DockoError, describe_error
from ..pool import CONNECT_ERRORS, connect
from ..statements import SQL

DEMO_DATABASE = "docko_demo"  # fixed: the drop/create statements in queries.sql name it


def with_database(dsn: str, database: str) -> str:
    """``dsn`` naming ``database`` instead of the one it names."""
    parts = urlsplit(dsn)
    query = "&".join(
        item
        for item in parts.query.split("&")
        if item and item.split("=", 1)[0] not in ("dbname", "database")
    )
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, query, parts.fragment))


def version_text(version: ServerVersion) -> str:
    """asyncpg's ``ServerVersion`` as PostgreSQL writes it: ``15.20``, ``9.6.24``, ``17beta1``.

    Since PostgreSQL 10 a version has two numbers, and asyncpg files the second under ``micro``
    (15.20 is ``ServerVersion(major=15, minor=0, micro=20, ...)``).
    """
    if version.releaselevel != "final":
        return f"{version.major}{version.releaselevel}{version.serial or ''}"
    if version.major >= 10:
        return f"{version.major}.{version.micro}"
    return f"{version.major}.{version.minor}.{version.micro}"


def _database_of(dsn: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    return query.get("dbname") or query.get("database") or parts.path.lstrip("/")


async def recreate_demo_database(config: Config, server_dsn: str) -> tuple[str, str]:
    """Drop and create ``docko_demo`` on the server of ``server_dsn``.

    Returns the demo database's DSN and the server's version.
    """
    admin_dsn = server_dsn
    if _database_of(server_dsn) == DEMO_DATABASE:  # cannot drop the database we are connected to
        admin_dsn = with_database(server_dsn, "postgres")
    shown = redact_dsn(admin_dsn)
    try:
        conn: Any = await connect(config.model_copy(update={"database_url": admin_dsn}))
    except CONNECT_ERRORS as exc:
        raise DockoError(f"cannot connect to {shown}: {describe_error(exc)}") from None
    try:
        version = conn.get_server_version()
        await conn.execute(SQL.drop_demo_database)
        await conn.execute(SQL.create_demo_database)
    except asyncpg.ObjectInUseError:
        raise DockoError(
            f"database {DEMO_DATABASE} on {shown} is in use by another session "
            "(another demo still running?): close it and run the demo again"
        ) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DockoError(
            f"cannot drop and create database {DEMO_DATABASE} on {shown}: {exc} (the demo needs "
            "a role with CREATEDB; unset DOCKO_DATABASE_URL to use an embedded PostgreSQL)"
        ) from None
    finally:
        await conn.close()
    return with_database(server_dsn, DEMO_DATABASE), version_text(version)
