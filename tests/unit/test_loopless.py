"""``run_without_loop``: the sync producers' way of running the async code without a loop."""

from __future__ import annotations

import asyncio

import pytest

from docko_worker.producers.loopless import run_without_loop


async def answer(value: int) -> int:
    async def inner() -> int:
        return value * 2

    return await inner()


async def fails() -> None:
    raise ValueError("from inside")


async def really_waits() -> None:
    await asyncio.sleep(0)


def test_returns_what_the_coroutine_returns() -> None:
    assert run_without_loop(answer(21)) == 42


def test_raises_what_the_coroutine_raises() -> None:
    with pytest.raises(ValueError, match="from inside"):
        run_without_loop(fails())


def test_a_coroutine_that_suspends_is_an_error_not_a_hang() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        run_without_loop(really_waits())


async def test_works_in_a_thread_whose_loop_is_running() -> None:
    assert run_without_loop(answer(2)) == 4
