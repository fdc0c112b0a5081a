"""Fixtures of the chaos layer: the handler package, daemons, a PostgreSQL of its own, PgBouncer.

The handler package in ``handler_pkg/`` is really installed (built by pip with the virtual
environment's build backend, no network) into a temporary target directory, and reaches the
daemons only through their ``PYTHONPATH``: the shared virtual environment stays as it was.

Two servers (see ``chaos_servers.py``) are started here, once per session and stopped at its end:
a PostgreSQL cluster of the suite's own (``initdb`` + ``pg_ctl`` on a spare port in a temporary
directory), for the test that restarts the database mid-run (the shared server on 5432 is never
restarted), and PgBouncer in transaction pooling mode in front of the shared server.

Each test adds a line to the chaos report, which the terminal summary prints at the end of the
session (so it shows in CI logs without ``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chaos_checker import ChaosReport
from chaos_harness import Daemon, Fleet, create_runs_table, free_port
from chaos_servers import (
    OS_USER,
    PG_BIN,
    OwnCluster,
    PgBouncer,
    os_user,
    owned_temp_dir,
    pgbouncer_binary,
    wait_for_port,
)

from tests.conftest import install_package
from tests.daemon_process import minimal_environ

HERE = Path(__file__).parent


# The report


_REPORT = pytest.StashKey[ChaosReport]()


def _report_of(config: pytest.Config) -> ChaosReport:
    if _REPORT not in config.stash:
        config.stash[_REPORT] = ChaosReport()
    return config.stash[_REPORT]


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> ChaosReport:
    """Where a test puts its per-fault counts for the end-of-session report."""
    return _report_of(request.config)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    report = config.stash.get(_REPORT, None)
    if report is None or not (report.results or report.lines):
        return
    write = terminalreporter.write_line
    terminalreporter.section("docko-worker chaos report")
    write(
        "execs: executions recorded by the handlers; dups: successful executions beyond the one "
        "that completed the job; intr: executions cut off (those a cancel found running are "
        "counted apart); unexec: attempts whose handler never started"
    )
    header = (
        "fault",
        "jobs",
        "execs",
        "done",
        "failed",
        "cancelled",
        "dups",
        "intr",
        "unexec",
        "lost",
    )
    rows = [header] + [
        (
            r.fault,
            str(r.jobs),
            str(r.executions),
            str(r.completed),
            str(r.failed),
            str(r.cancelled),
            str(r.duplicate_count),
            str(sum(r.interrupted.values())),
            str(r.unexecuted_claims),
            str(r.lost),
        )
        for r in report.results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for r in report.results:
        details = [f"duplicates: {n} x {cause}" for cause, n in sorted(r.duplicates.items())]
        details += [f"interrupted: {n} x {cause}" for cause, n in sorted(r.interrupted.items())]
        details += [
            f"found running by a cancel: {n} x {how}" for how, n in sorted(r.cancelled_runs.items())
        ]
        if r.retried:
            details.append(f"retried: {r.retried} jobs, {r.retried_completed} then completed")
        if r.unexecuted_claims:
            details.append(
                f"unexecuted claims: {r.unexecuted_claims} (lease expired before the handler "
                "started: claimer killed, or the claim's reply lost with its connection)"
            )
        if r.handed_back_runs:
            details.append(
                f"handed back mid-run without spending the attempt: {r.handed_back_runs}"
            )
        details += [f"{key}: {value}" for key, value in r.notes.items()]
        if r.problems:
            details.append(f"{len(r.problems)} PROBLEMS, first: {r.problems[0]}")
        if details:
            write(f"{r.fault}: " + "; ".join(details))
        for example in r.duplicate_examples[:10]:
            write(f"  duplicate: {example}")
        if len(r.duplicate_examples) > 10:
            write(f"  ... and {len(r.duplicate_examples) - 10} more duplicates, causes as counted")
    for line in report.lines:
        write(line)


# The handler package and daemons


@pytest.fixture(scope="session")
def chaos_handlers_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the installed ``docko-chaos-handlers`` distribution."""
    return install_package(HERE / "handler_pkg", tmp_path_factory.mktemp("chaos-handlers"))


@pytest.fixture
def base_env(chaos_handlers_path: Path) -> dict[str, str]:
    """A minimal environment (no DOCKO_* variable) in which the chaos handlers are installed."""
    return minimal_environ([chaos_handlers_path])


@pytest.fixture
def chaos_db(database_url: str) -> str:
    """The test's own migrated database on the shared server, with ``chaos_runs``."""
    asyncio.run(create_runs_table(database_url))
    return database_url


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet[Daemon]]:
    """Starts daemon processes; kills any still running when the test ends."""
    started = Fleet(tmp_path, Daemon)
    try:
        yield started
    finally:
        started.kill_all()


# Servers


@pytest.fixture(scope="session")
def own_cluster() -> Iterator[OwnCluster]:
    """initdb + pg_ctl start on a spare port; stopped and removed at the end of the session."""
    for binary in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / binary).exists():
            pytest.fail(f"{PG_BIN / binary} is missing: set CHAOS_PG_BIN to PostgreSQL's bin dir")
    directory = owned_temp_dir("docko-chaos-pg-")
    cluster = OwnCluster(directory, free_port())
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(Exception):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(tcp_server_dsn: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the shared server, for this session."""
    binary = pgbouncer_binary()
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    server = urlsplit(tcp_server_dsn)
    user = server.username or "postgres"
    directory = owned_temp_dir("docko-chaos-pgbouncer-")
    port = free_port()
    # Clients are trusted; the password (if any) is what PgBouncer logs in to the server with.
    (directory / "userlist.txt").write_text(
        f'"{user}" "{server.password or ""}"\n', encoding="utf-8"
    )
    (directory / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {directory / 'userlist.txt'}",
                "pool_mode = transaction",
                "max_client_conn = 400",
                "default_pool_size = 8",
                "ignore_startup_parameters = extra_float_digits",
                f"logfile = {directory / 'pgbouncer.log'}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    for path in directory.iterdir():
        if os.geteuid() == 0:
            shutil.chown(path, OS_USER, OS_USER)
    proc = subprocess.Popen(
        [binary, str(directory / "pgbouncer.ini")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **os_user(directory),  # type: ignore[call-overload]
    )
    bouncer = PgBouncer(port, version, directory)
    try:
        try:
            wait_for_port(port, 20, proc)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"pgbouncer did not start: {exc}\n{bouncer.log()[-3000:]}")
        yield bouncer
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
