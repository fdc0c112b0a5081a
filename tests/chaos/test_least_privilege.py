"""Least privilege: the daemon runs with only what it needs at run time; migrations need more.

``RUNTIME_GRANTS`` is the complete list of privileges the daemon's role gets (the README prints
it): the workload runs to the end as that role, with ``DOCKO_AUTO_MIGRATE=false``, and no
permission error is logged (the pruner's DELETE and the rescuer's UPDATE run meanwhile). Producers
get ``PRODUCER_GRANTS`` and enqueue the workload as their own role. The handlers record their runs
through a separate superuser DSN (``CHAOS_RUNS_DSN``), so the daemon role holds nothing for them.

With auto-migration left on, the runtime role cannot even check the (current) schema: the daemon
must say so in one line and exit 2. Migrating an empty database needs ``CREATE`` on the schema
(tables, indexes and the ``docko_job_state`` type); ``USAGE`` alone is refused in one line.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from chaos_checker import ChaosReport, Faults
from chaos_harness import Fleet, Producer, connect, daemon_env, stop_and_check, wait_until_final
from chaos_harness import workload as make_workload

from tests.daemon_process import run_cli

pytestmark = pytest.mark.chaos

JOBS = 1000

# Everything the daemon's role is granted: {db} and {role} are filled in.
RUNTIME_GRANTS = (
    'GRANT CONNECT ON DATABASE "{db}" TO {role}',
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, UPDATE, DELETE ON docko_jobs TO {role}",
    "GRANT SELECT ON docko_queues TO {role}",
)
# Everything a producer's role is granted (enqueue, get_job).
PRODUCER_GRANTS = (
    'GRANT CONNECT ON DATABASE "{db}" TO {role}',
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT ON docko_jobs TO {role}",
)
# What `docko-worker migrate` needs on an empty database.
MIGRATOR_GRANTS = (
    'GRANT CONNECT ON DATABASE "{db}" TO {role}',
    "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
)


def with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}@{host}").geturl()


@dataclass
class Roles:
    server_dsn: str
    names: list[str]

    async def create(self, dsn: str, grants: tuple[str, ...]) -> str:
        """A new login role with exactly ``grants`` on the database of ``dsn``."""
        role = f"chaos_lp_{uuid.uuid4().hex[:10]}"
        database = urlsplit(dsn).path.lstrip("/")
        admin = await connect(self.server_dsn)
        try:
            await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB")
        finally:
            await admin.close()
        self.names.append(role)
        conn = await connect(dsn)
        try:
            for grant in grants:
                await conn.execute(grant.format(db=database, role=role))
        finally:
            await conn.close()
        return role

    async def execute(self, dsn: str, statement: str) -> None:
        conn = await connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def drop(self, dsn: str) -> None:
        """Drop the roles, after what they own or were granted in the database of ``dsn``."""
        conn = await connect(dsn)
        try:
            for role in self.names:
                await conn.execute(f"DROP OWNED BY {role}")
        finally:
            await conn.close()
        admin = await connect(self.server_dsn)
        try:
            for role in self.names:
                await admin.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await admin.close()


@pytest.fixture
async def roles(server_dsn: str, chaos_db: str) -> AsyncIterator[Roles]:
    made = Roles(server_dsn, [])
    yield made
    await made.drop(chaos_db)


@pytest.fixture
def empty_db(server_dsn: str) -> Iterator[str]:
    """A database with no schema at all; its roles are dropped with it."""
    name = f"chaos_empty_{uuid.uuid4().hex[:10]}"

    async def run(statement: str) -> None:
        admin = await connect(server_dsn)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(server_dsn)
    yield parts._replace(path=f"/{name}").geturl()
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_the_daemon_runs_with_only_the_runtime_privileges(
    chaos_db: str,
    roles: Roles,
    base_env: dict[str, str],
    fleet: Fleet,
    chaos_report: ChaosReport,
) -> None:
    # Take PostgreSQL's default grants to PUBLIC away, so the roles hold only what is listed.
    database = urlsplit(chaos_db).path.lstrip("/")
    await roles.execute(chaos_db, f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
    await roles.execute(chaos_db, "REVOKE ALL ON SCHEMA public FROM PUBLIC")
    runtime = await roles.create(chaos_db, RUNTIME_GRANTS)
    producer_role = await roles.create(chaos_db, PRODUCER_GRANTS)
    async with Producer(with_user(chaos_db, producer_role)) as producer:
        ids = await producer.enqueue(make_workload(JOBS))
    env = daemon_env(
        base_env,
        with_user(chaos_db, runtime),
        DOCKO_AUTO_MIGRATE="false",
        DOCKO_PRUNE_INTERVAL="0.3",
        CHAOS_RUNS_DSN=chaos_db,
    )
    for _ in range(2):
        fleet.start(env)
    conn = await connect(chaos_db)
    try:
        await wait_until_final(conn, fleet, JOBS)
    finally:
        await conn.close()
    await asyncio.sleep(1.0)  # a few more sweeps of the rescuer and the pruner
    result = await stop_and_check("least-privilege role", chaos_db, fleet, ids, Faults())
    result.notes["daemon role"] = "; ".join(
        grant.format(db="<db>", role="<role>") for grant in RUNTIME_GRANTS
    )
    chaos_report.add(result)
    result.assert_ok()
    output = fleet.all_output()
    for marker in ("permission denied", "InsufficientPrivilege", "maintenance_failed"):
        assert marker not in output, f"{marker!r} in the daemon's output:\n{fleet.describe()}"


async def test_auto_migrate_as_the_runtime_role_is_refused_in_one_line(
    chaos_db: str, roles: Roles, base_env: dict[str, str], fleet: Fleet
) -> None:
    runtime = await roles.create(chaos_db, RUNTIME_GRANTS)
    daemon = fleet.start(daemon_env(base_env, with_user(chaos_db, runtime)))
    daemon.exit_expected = True
    status = await daemon.wait_exit()
    stderr = daemon.stderr()
    errors = [line for line in stderr.splitlines() if line.startswith("docko-worker: error:")]
    assert status == 2, daemon.describe()
    assert errors and "permission denied" in errors[0], daemon.describe()
    assert "Traceback" not in stderr, daemon.describe()


async def test_migrations_need_create_on_the_schema(
    empty_db: str, server_dsn: str, base_env: dict[str, str]
) -> None:
    made = Roles(server_dsn, [])
    try:
        usage_only = await made.create(empty_db, MIGRATOR_GRANTS)
        await made.execute(empty_db, f"REVOKE CREATE ON SCHEMA public FROM {usage_only}")
        refused = run_cli(["migrate"], daemon_env(base_env, with_user(empty_db, usage_only)))
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("docko-worker: error:"), refused.stderr
        assert "permission denied for schema public" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

        migrator = await made.create(empty_db, MIGRATOR_GRANTS)
        applied = run_cli(["migrate"], daemon_env(base_env, with_user(empty_db, migrator)))
        assert applied.returncode == 0, applied.stderr
        assert "applied 0001_initial" in applied.stdout
    finally:
        await made.drop(empty_db)
