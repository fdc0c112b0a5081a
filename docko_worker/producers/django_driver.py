"""Django's database connection: the psycopg connection under it, as Django would use it.

``django.db.connection`` (or ``connections[alias]``) is connected if it is not yet, refused if
it is not PostgreSQL, and checked the way Django checks before its own queries (inside an
``atomic()`` block that must roll back, Django refuses every query, and so does this). Inside
``atomic()`` the statements join its transaction; outside, each commits at once, as Django's
autocommit does.
"""

from __future__ import annotations

from typing import Any

from ..errors import DockoError


def driver_connection(conn: Any) -> Any:
    """The DB-API connection under Django's ``conn``."""
    if conn.vendor != "postgresql":
        raise DockoError(f"Django's connection is to {conn.vendor}, not PostgreSQL")
    conn.ensure_connection()
    conn.validate_no_broken_transaction()
    return conn.connection
