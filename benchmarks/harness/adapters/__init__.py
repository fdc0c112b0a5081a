"""The benchmarked systems, one module each, all implementing ``base.System``."""

from __future__ import annotations

from .base import System
from .docko import Docko
from .pgqueuer import PgQueuer
from .procrastinate import Procrastinate

__all__ = ["SYSTEM_KEYS", "System", "make_systems"]

SYSTEM_KEYS = (
    "docko",
    "docko-retain",
    "docko-sync",
    "docko-metrics",
    "pgqueuer-balanced",
    "pgqueuer-volatile",
    "procrastinate",
)


def make_systems(keys: list[str], *, procrastinate_concurrency: int) -> list[System]:
    """The systems named by ``keys`` (``docko`` also selects ``docko-retain`` and ``docko-sync``),
    in table order."""
    chosen: set[str] = set()
    for key in keys:
        if key == "docko":
            chosen |= {"docko", "docko-retain", "docko-sync"}
        elif key == "pgqueuer":
            chosen |= {"pgqueuer-balanced", "pgqueuer-volatile"}
        elif key in SYSTEM_KEYS:
            chosen.add(key)
        else:
            raise ValueError(f"unknown system {key!r}; choose from {', '.join(SYSTEM_KEYS)}")
    factories = {
        "docko": lambda: Docko(retention=0),
        "docko-retain": lambda: Docko(retention=86_400),
        "docko-sync": lambda: Docko(retention=0, sync_handlers=True),
        "docko-metrics": lambda: Docko(retention=0, metrics=True),
        "pgqueuer-balanced": lambda: PgQueuer(durability="balanced"),
        "pgqueuer-volatile": lambda: PgQueuer(durability="volatile"),
        "procrastinate": lambda: Procrastinate(concurrency=procrastinate_concurrency),
    }
    return [factories[key]() for key in SYSTEM_KEYS if key in chosen]
