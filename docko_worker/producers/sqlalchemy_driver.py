"""SQLAlchemy 2 connections and sessions: the driver connection under them, in their transaction.

A ``Session`` (or ``scoped_session``) gives its ``Connection``; an ``AsyncSession`` (or
``async_scoped_session``) its ``AsyncConnection``. A connection not in a transaction yet begins
one, as its own ``execute`` would (SQLAlchemy 2 "autobegin"), so the job is written when the
caller commits and not before. The statements then run on the driver connection underneath,
through the psycopg or asyncpg runner: SQLAlchemy's asyncpg adapter begins its transaction only
with its own first statement, so where the driver connection is not in one yet a ``ping`` through
SQLAlchemy begins it first.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_scoped_session
from sqlalchemy.orm import Session, scoped_session

from ..statements import SQL


def is_async(conn: Any) -> bool:
    return isinstance(conn, AsyncConnection | AsyncSession | async_scoped_session)


def driver_connection(conn: Any) -> Any:
    """The DB-API connection under a sync ``Connection``, ``Session`` or ``scoped_session``."""
    if isinstance(conn, scoped_session):
        conn = conn()
    if isinstance(conn, Session):
        conn = conn.connection()
    if not isinstance(conn, Connection):
        raise TypeError(type(conn).__name__)
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection


async def async_driver_connection(conn: Any) -> Any:
    """The driver connection under an ``AsyncConnection``, ``AsyncSession`` or
    ``async_scoped_session``, in the transaction SQLAlchemy has begun."""
    if isinstance(conn, async_scoped_session):
        conn = conn()
    if isinstance(conn, AsyncSession):
        conn = await conn.connection()
    if not isinstance(conn, AsyncConnection):
        raise TypeError(type(conn).__name__)
    if not conn.in_transaction():
        await conn.begin()
    raw = (await conn.get_raw_connection()).driver_connection
    if isinstance(raw, asyncpg.Connection) and not raw.is_in_transaction():
        await conn.exec_driver_sql(SQL.ping)
    return raw
