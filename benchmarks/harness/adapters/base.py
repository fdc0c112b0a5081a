"""The interface every benchmarked system implements, and the payload shape they share.

An adapter knows how to install its system's schema in an empty database, enqueue through the
system's own public APIs (one bulk call, one single call), start the system's worker as users
run it (a CLI subprocess), and count unfinished jobs with one SQL statement of its own. A system
that takes part in the scheduled-job lateness scenario (``measures_lateness``) also enqueues with
a delay, through both APIs, reporting each job's due time, and starts its worker with a long poll
interval; the others are reported "n/a" there.
"""

from __future__ import annotations

import asyncio
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

Payload = dict[str, Any]

# The queue name used wherever a system has queues, and the job type / task / entrypoint name.
QUEUE = "default"
JOB_TYPE = "noop"


def payload(seq: int, enqueued_at: float) -> Payload:
    """The payload every system carries: a sequence number and the enqueue time."""
    return {"seq": seq, "t": enqueued_at}


BENCHMARKS_DIR = Path(__file__).resolve().parents[2]


def _worker_venv(system: str) -> Path:
    """``system``'s worker environment, built by run.sh with only that system and the handlers."""
    return BENCHMARKS_DIR / f".venv-{system}"


def venv_script(name: str, system: str) -> str:
    """A console script from ``system``'s worker environment, else from the harness's own."""
    own = _worker_venv(system) / "bin" / name
    if own.exists():
        return str(own)
    return str(Path(sys.executable).parent / name)


async def run_tool(what: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run a system's own command to completion; if it fails, raise with the end of its output."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed: {output.decode()[-2000:]}")


def worker_environment(system: str) -> str:
    """Where ``system``'s worker runs from, for the results."""
    if (_worker_venv(system) / "bin" / "python").exists():
        return f"benchmarks/.venv-{system} (worker-envs/{system}.txt: the system and the handlers)"
    return "benchmarks/.venv (the harness's environment, every system installed)"


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    argv: list[str]
    env: dict[str, str]


class System(ABC):
    """One benchmarked system in one configuration (a row of the results table)."""

    #: Short key used on the command line and in results (``docko``, ``pgqueuer``, ...).
    key: str
    #: Row label in the table and chart.
    label: str
    #: The distribution benchmarked (its version goes in the results).
    package: str
    #: Jobs per bulk enqueue call.
    chunk_size: int = 5000

    @abstractmethod
    def settings(self) -> dict[str, str]:
        """The worker configuration, as recorded in the results."""

    def version(self) -> str:
        """The installed version of ``package``."""
        return version(self.package)

    @abstractmethod
    async def install(self, dsn: str) -> None:
        """Create the system's schema in the (empty) database ``dsn``."""

    @abstractmethod
    async def open(self, dsn: str) -> None:
        """Open the producer side (connection or pool) used by the enqueue methods."""

    @abstractmethod
    async def close(self) -> None:
        """Close what ``open`` opened."""

    @abstractmethod
    async def enqueue_bulk(self, payloads: list[Payload]) -> None:
        """Enqueue ``payloads`` with the system's fastest public bulk API (one call)."""

    @abstractmethod
    async def enqueue_one(self, item: Payload) -> None:
        """Enqueue one job with the system's ordinary single-job API."""

    @abstractmethod
    def worker_command(self, dsn: str) -> WorkerCommand:
        """The worker daemon's command line and environment (the record file is added later)."""

    #: SQL returning the number of jobs not finished yet (queued, scheduled or running).
    unfinished_sql: str

    #: Whether the scheduled-job lateness scenario runs for this system (else "n/a").
    measures_lateness: bool = False

    async def enqueue_one_delayed(self, item: Payload, delay: float) -> float:
        """Enqueue one job due ``delay`` s from now (single-job API); its due time, epoch s."""
        raise NotImplementedError(f"{self.label} does not take part in the lateness scenario")

    async def enqueue_bulk_delayed(self, payloads: list[Payload], delay: float) -> list[float]:
        """Enqueue ``payloads`` due ``delay`` seconds from now (bulk API, one call); due times."""
        raise NotImplementedError(f"{self.label} does not take part in the lateness scenario")

    def lateness_worker_command(self, dsn: str, poll_interval: float) -> WorkerCommand:
        """``worker_command`` with the worker's poll interval set to ``poll_interval`` seconds."""
        raise NotImplementedError(f"{self.label} does not take part in the lateness scenario")
