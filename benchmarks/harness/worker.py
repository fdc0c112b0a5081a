"""A worker daemon run as a subprocess: start, sample CPU, read peak RSS, stop, read records."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .adapters.base import WorkerCommand

RECORD_FILE_ENV = "BENCH_RECORD_FILE"


class WorkerFailed(RuntimeError):
    """The worker exited early or did not finish; the message ends with its log's tail."""


@dataclass(frozen=True, slots=True)
class Record:
    """One handler start, as written by ``docko_bench_handlers.recorder``."""

    seq: int
    enqueued_at: float
    started_at: float


class WorkerProcess:
    """One worker subprocess; ``started_at`` (monotonic) and ``started_wall`` mark its start."""

    def __init__(self, command: WorkerCommand, record_file: Path, log_file: Path) -> None:
        self.command = command
        self.record_file = record_file
        self.log_file = log_file
        self.started_at = 0.0
        self.started_wall = 0.0
        self._popen: subprocess.Popen[bytes] | None = None
        self._process: psutil.Process | None = None

    def start(self) -> None:
        self.record_file.unlink(missing_ok=True)
        env = {**os.environ, **self.command.env, RECORD_FILE_ENV: str(self.record_file)}
        with self.log_file.open("wb") as log:
            self.started_wall = time.time()
            self.started_at = time.perf_counter()
            self._popen = subprocess.Popen(
                self.command.argv, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._process = psutil.Process(self._popen.pid)

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    def check_alive(self) -> None:
        assert self._popen is not None
        code = self._popen.poll()
        if code is not None:
            raise WorkerFailed(f"worker exited early with code {code}\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the worker has used so far."""
        assert self._process is not None
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def peak_rss_bytes(self) -> int:
        """The worker's peak resident set size (VmHWM; current RSS where /proc lacks it)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        assert self._process is not None
        return int(self._process.memory_info().rss)

    async def stop(self, grace: float = 60.0) -> int:
        """SIGTERM and wait for a graceful exit (SIGKILL after ``grace`` s); the exit code."""
        popen = self._popen
        if popen is None:
            return 0
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(popen.wait, grace)
            except subprocess.TimeoutExpired:
                popen.kill()
                await asyncio.to_thread(popen.wait)
                raise WorkerFailed(
                    f"worker ignored SIGTERM for {grace:g}s and was killed\n{self.log_tail()}"
                ) from None
        return int(popen.returncode)

    def kill(self) -> None:
        """Last resort when the harness itself fails."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()

    def records(self) -> list[Record]:
        if not self.record_file.exists():
            return []
        found = []
        with self.record_file.open(encoding="ascii") as lines:
            for line in lines:
                seq, enqueued_at, started_at = line.split()
                found.append(Record(int(seq), float(enqueued_at), float(started_at)))
        return found

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = text.splitlines()[-lines:]
        return f"--- last lines of {self.log_file} ---\n" + "\n".join(tail)
