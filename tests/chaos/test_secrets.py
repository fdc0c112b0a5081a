"""A DSN's password never appears in anything the daemon or the CLI prints.

A role with a password (``CREATE ROLE ... LOGIN PASSWORD``; the shared server's trust
authentication accepts it) is given what the daemon needs on a fresh database, and the daemon and
the CLI are run with a DSN carrying that password (percent-encoded, since it holds ``/ @ # ? %``):
through a successful run at debug level, a connection that fails (nothing listens on the port),
the password given as a query parameter instead, a DSN whose host was forgotten (so the password
sits where the port belongs), and a bad setting beside the DSN. A failing connection must also be
reported in lines, not tracebacks. Every line of stdout and stderr
is searched for the password, raw and percent-encoded.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import (
    Fleet,
    Producer,
    connect,
    daemon_env,
    free_port,
    stop_and_check,
    wait_until_final,
)
from chaos_harness import workload as make_workload

from tests.daemon_process import run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

PASSWORD = "Chaos-S3cret/pw@#?%x"
ENCODED = quote(PASSWORD, safe="")
ROLE = f"chaos_pw_{uuid.uuid4().hex[:8]}"
JOBS = 200


async def _admin(dsn: str, *statements: str) -> None:
    conn = await connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def password_role(tcp_server_dsn: str) -> Iterator[str]:
    """A login role with a password, dropped when the module is done."""
    asyncio.run(_admin(tcp_server_dsn, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"))
    yield ROLE
    asyncio.run(_admin(tcp_server_dsn, f"DROP ROLE IF EXISTS {ROLE}"))


@pytest.fixture
def secret_db(chaos_db: str, password_role: str) -> str:
    """``chaos_db`` where the password role may migrate (a no-op) and run the daemon."""
    database = urlsplit(chaos_db).path.lstrip("/")
    asyncio.run(
        _admin(
            chaos_db,
            f'GRANT CONNECT ON DATABASE "{database}" TO {password_role}',
            f"GRANT USAGE, CREATE ON SCHEMA public TO {password_role}",
            f"GRANT SELECT ON docko_schema_migrations TO {password_role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON docko_jobs TO {password_role}",
            f"GRANT SELECT ON docko_queues TO {password_role}",
        )
    )
    return chaos_db


def dsn_with(dsn: str, *, netloc: str, query: str = "") -> str:
    parts = urlsplit(dsn)
    return parts._replace(netloc=netloc, query=query).geturl()


def leaks(text: str) -> list[str]:
    return [line for line in text.splitlines() if PASSWORD in line or ENCODED in line]


def host_port(dsn: str) -> str:
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}"


async def test_password_is_not_logged_through_a_successful_run(
    secret_db: str,
    base_env: dict[str, str],
    fleet: Fleet,
    chaos_report: ChaosReport,
) -> None:
    dsn = dsn_with(secret_db, netloc=f"{ROLE}:{ENCODED}@{host_port(secret_db)}")
    env = daemon_env(base_env, dsn, DOCKO_LOG_LEVEL="debug", CHAOS_RUNS_DSN=secret_db)
    outputs = []
    for args in (["migrate"], ["enqueue", "chaos", "chaos_work", '{"n": -1}'], ["stats"]):
        result = run_cli(args, env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    async with Producer(secret_db) as producer:
        ids = await producer.enqueue(make_workload(JOBS))
    fleet.start(env)
    conn = await connect(secret_db)
    try:
        await wait_until_final(conn, fleet, JOBS + 1)
        ids += [
            row["id"]
            for row in await conn.fetch("SELECT id FROM docko_jobs WHERE payload->>'n' = '-1'")
        ]
    finally:
        await conn.close()
    result = await stop_and_check("password DSN run", secret_db, fleet, ids, Faults())
    chaos_report.add(result)
    result.assert_ok()
    everything = "\n".join([*outputs, fleet.all_output()])
    assert f"{ROLE}:***@" in everything, "the redacted DSN is logged, as a check of this test"
    assert not leaks(everything), leaks(everything)[:5]


@pytest.mark.parametrize(
    "shape",
    ["password in userinfo", "password as query parameter", "host forgotten"],
)
async def test_password_is_not_logged_when_the_connection_fails(
    shape: str, secret_db: str, base_env: dict[str, str], fleet: Fleet
) -> None:
    database = urlsplit(secret_db).path
    closed = f"127.0.0.1:{free_port()}"
    dsn = {
        "password in userinfo": f"postgresql://{ROLE}:{ENCODED}@{closed}{database}",
        "password as query parameter": f"postgresql://{ROLE}@{closed}{database}?password={ENCODED}",
        # The host was left out: the password now sits where a port belongs.
        "host forgotten": f"postgresql://{ROLE}:{ENCODED}{database}",
    }[shape]
    env = daemon_env(base_env, dsn, DOCKO_LOG_LEVEL="debug")
    outputs = []
    for args in (["migrate"], ["enqueue", "chaos", "chaos_work", "{}"], ["stats"]):
        result = run_cli(args, env)
        assert result.returncode != 0
        outputs.append(result.stdout + result.stderr)
    daemon = fleet.start(env)
    daemon.exit_expected = True  # retrying is right, but exiting with one line would do

    async def retrying_or_exited() -> bool:
        return not daemon.alive() or daemon.event_count("database_unavailable") >= 2

    await wait_until(retrying_or_exited, 30, message="the daemon to retry the connection (or exit)")
    if daemon.alive():
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0, daemon.describe()
    everything = "\n".join([*outputs, fleet.all_output()])
    leaked = leaks(everything)
    assert not leaked, f"the password appears in {len(leaked)} line(s):\n" + "\n".join(
        line[:300] for line in leaked[:5]
    )
    for text in [*outputs, daemon.stderr()]:
        assert "Traceback" not in text, f"a traceback instead of one line:\n{text[-1500:]}"


async def test_password_is_not_logged_with_a_bad_setting(
    secret_db: str, base_env: dict[str, str], fleet: Fleet
) -> None:
    dsn = dsn_with(secret_db, netloc=f"{ROLE}:{ENCODED}@{host_port(secret_db)}")
    env = daemon_env(base_env, dsn, DOCKO_WORKER_COUNT="none", DOCKO_POLL_INTERVAL="-1")
    daemon = fleet.start(env)
    daemon.exit_expected = True
    assert await daemon.wait_exit() == 2, daemon.describe()
    text = daemon.stdout() + daemon.stderr()
    assert "DOCKO_WORKER_COUNT" in text or "DOCKO_POLL_INTERVAL" in text, text
    assert not leaks(text), leaks(text)
