"""The daemon's pool plans each statement once; other pools keep PostgreSQL's default."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from docko_worker import Config, Queue, load_config
from docko_worker.pool import create_pool


async def plan_cache_modes(config: Config, *, generic_plans: bool) -> set[str]:
    pool = await create_pool(config, min_size=2, max_size=2, generic_plans=generic_plans)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            return {await conn.fetchval("SHOW plan_cache_mode") for conn in (first, second)}
    finally:
        await pool.close()


async def test_the_daemons_connections_use_generic_plans(
    make_config: Callable[..., Config],
) -> None:
    assert await plan_cache_modes(make_config(), generic_plans=True) == {"force_generic_plan"}


@pytest.mark.parametrize(
    ("generic_plans", "statement_cache_size"),
    [(False, 100), (True, 0)],
    ids=["not-the-daemon", "no-statement-cache"],
)
async def test_other_pools_keep_the_default_plan_choice(
    make_config: Callable[..., Config], generic_plans: bool, statement_cache_size: int
) -> None:
    config = make_config(statement_cache_size=statement_cache_size)
    assert await plan_cache_modes(config, generic_plans=generic_plans) == {"auto"}


async def test_connect_waits_for_a_database_that_is_not_there_yet_when_asked(
    database_url: str,
) -> None:
    nowhere = load_config(database_url="postgresql://postgres@127.0.0.1:9/nowhere")
    with pytest.raises(OSError):
        await Queue.connect(nowhere)
    with capture_logs() as logs, pytest.raises(OSError):
        await Queue.connect(nowhere, wait=0.6)
    assert [e["event"] for e in logs if e["event"] == "database_unavailable"]
    async with await Queue.connect(load_config(database_url=database_url), wait=5) as queue:
        assert await queue.get_job(uuid.uuid4()) is None
