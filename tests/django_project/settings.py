"""Settings of the Django test project: one PostgreSQL database, no apps, nothing on the network.

The default database named here is a placeholder: each test points it at its own copy of the
migrated template before connecting (``django_database`` in
``tests/integration/producer_drivers.py``), so Django never connects anywhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def database_settings(url: str) -> dict[str, Any]:
    """Django's ``DATABASES`` entry for a ``postgresql://`` URL (a Unix socket in ``?host=``)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": query.get("host", [parts.hostname or ""])[0],
        "PORT": str(parts.port or query.get("port", [""])[0]),
    }


SECRET_KEY = "docko-worker-tests-not-a-secret"
INSTALLED_APPS: list[str] = []
USE_TZ = True
DATABASES = {"default": database_settings("postgresql://postgres@127.0.0.1:5432/postgres")}
