"""What the numbers were measured on: CPU, cores, RAM, PostgreSQL, Python, package versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from .adapters.base import System
from .db import server_settings, server_version


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def docko_revision() -> str:
    """The docko-worker commit benchmarked, marked when the package has uncommitted changes."""
    repo = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    dirty = git("status", "--porcelain", "--", "docko_worker", "sql", "pyproject.toml")
    return f"{commit} + uncommitted changes" if dirty else commit


async def describe(dsn: str, systems: list[System]) -> dict[str, Any]:
    versions = {system.package: system.version() for system in systems}
    if "docko-worker" in versions:
        versions["docko-worker"] += f" (git {docko_revision()})"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "postgresql": await server_version(dsn),
        "postgresql_settings": await server_settings(
            dsn, ["shared_buffers", "synchronous_commit", "fsync", "max_connections"]
        ),
        "versions": versions,
    }
