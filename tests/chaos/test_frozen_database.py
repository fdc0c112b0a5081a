"""A database that stops answering (frozen, not down) cannot hang the daemon's shutdown.

Every process of the suite's own cluster is stopped with SIGSTOP: connections stay open and
queries never return, as behind a network partition. The daemon, polling fast so that a claim
is in flight, gets SIGTERM and must still exit, with status 0, within its shutdown budget
(in-flight claim and pool close are bounded). The cluster is thawed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from chaos_harness import Fleet, connect, daemon_env
from chaos_servers import OwnCluster

from tests.daemon_process import run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

# The daemon's own bounds: shutdown timeout, claim grace, outcome flush, pool close, plus slack.
EXIT_BUDGET = 60.0


def cluster_pids(cluster: OwnCluster) -> list[int]:
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [postmaster, *(int(pid) for pid in children)]


@contextmanager
def frozen(cluster: OwnCluster) -> Iterator[None]:
    pids = cluster_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_sigterm_while_the_database_is_frozen_still_exits(
    own_cluster: OwnCluster, base_env: dict[str, str], fleet: Fleet
) -> None:
    name = f"chaos_frozen_{uuid.uuid4().hex[:10]}"
    admin = await connect(own_cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    env = daemon_env(
        base_env, own_cluster.dsn(name), DOCKO_POLL_INTERVAL="0.02", DOCKO_SHUTDOWN_TIMEOUT="2"
    )
    try:
        assert run_cli(["migrate"], env).returncode == 0
        daemon = fleet.start(env)

        async def listening() -> bool:
            return daemon.event_count("listen_connected") > 0

        await wait_until(listening, 30, message="the daemon to listen")

        with frozen(own_cluster):
            await asyncio.sleep(0.5)  # a claim is now stuck on the frozen server
            daemon.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                status = daemon.proc.wait(timeout=EXIT_BUDGET)
            except subprocess.TimeoutExpired:
                pytest.fail(f"no exit {EXIT_BUDGET:g}s after SIGTERM\n{daemon.stderr()[-3000:]}")
            waited = time.monotonic() - started
        assert status == 0, daemon.stderr()[-3000:]
        assert waited < EXIT_BUDGET
    finally:
        admin = await connect(own_cluster.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
