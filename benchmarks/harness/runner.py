"""Runs the scenarios for each system and run, each in a fresh database, and collects results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .adapters.base import System
from .adapters.docko import Docko
from .db import scratch_database
from .scenarios import (
    Options,
    measure_burn_down,
    measure_enqueue,
    measure_latency,
    measure_lateness,
)

Log = Callable[[str], None]


async def run_system(
    system: System, admin_dsn: str, options: Options, run: int, log: Log
) -> dict[str, Any]:
    """Enqueue ``options.jobs``, burn them down, then the latency run and (where the system
    takes part) the scheduled-job lateness run, in one fresh database."""
    name = f"{system.key}-run{run}"
    async with scratch_database(admin_dsn, system.key) as dsn:
        await system.install(dsn)
        await system.open(dsn)
        try:
            enqueue = await measure_enqueue(system, options.jobs)
            log(f"  {system.label}: enqueue {enqueue['rate']:,.0f} jobs/s")
            burn = await measure_burn_down(system, dsn, options, f"{name}-burn", options.jobs)
            log(
                f"  {system.label}: burn-down {burn['throughput']:,.0f} jobs/s from start, "
                f"{burn.get('processing_rate') or 0:,.0f} jobs/s processing, "
                f"exactly once: {burn['exactly_once']}"
            )
            latency = await measure_latency(system, dsn, options, f"{name}-latency")
            log(
                f"  {system.label}: latency p50 {latency['p50_ms']:.1f} ms, "
                f"p99 {latency['p99_ms']:.1f} ms, exactly once: {latency['exactly_once']}"
            )
            results = {"enqueue": enqueue, "burn_down": burn, "latency": latency}
            if system.measures_lateness and options.lateness_jobs > 0:
                late = await measure_lateness(system, dsn, options, f"{name}-lateness")
                results["lateness"] = late
                log(
                    f"  {system.label}: scheduled-job lateness p50/p99 "
                    f"{late['enqueue']['p50_ms']:.1f}/{late['enqueue']['p99_ms']:.1f} ms "
                    f"(enqueue), {late['enqueue_many']['p50_ms']:.1f}/"
                    f"{late['enqueue_many']['p99_ms']:.1f} ms (enqueue_many), "
                    f"exactly once: {late['exactly_once']}"
                )
        finally:
            await system.close()
    return results


async def run_million_queued(
    admin_dsn: str, options: Options, jobs: int, milestone: int, run: int, log: Log
) -> dict[str, Any]:
    """docko (retention 0): ``jobs`` queued, burned down; rate overall and over ``milestone``."""
    system = Docko(retention=0)
    async with scratch_database(admin_dsn, "docko_million") as dsn:
        await system.install(dsn)
        await system.open(dsn)
        try:
            enqueue = await measure_enqueue(system, jobs)
            log(f"  docko {jobs:,} queued: enqueue {enqueue['rate']:,.0f} jobs/s")
        finally:
            await system.close()
        burn = await measure_burn_down(
            system,
            dsn,
            options,
            f"docko-million-queued-run{run}",
            jobs,
            poll=0.5,
            milestone=milestone,
        )
    log(
        f"  docko {jobs:,} queued: burn-down {burn['throughput']:,.0f} jobs/s "
        f"({burn['seconds']:.0f} s), exactly once: {burn['exactly_once']}"
    )
    return {"enqueue": enqueue, "burn_down": burn}
