"""The test layers' one polling loop (``tests/waiting.py``): what it returns and how it fails."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import poll, poll_blocking, wait_until, wait_until_blocking


class Broken:
    """A watch that fails on its first check."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    def check(self, what: str) -> None:
        self.checked.append(what)
        pytest.fail(f"the watched daemon died while waiting for {what}")

    def describe(self) -> str:
        return "daemon output"


async def test_wait_until_returns_the_first_truthy_result_of_a_sync_or_async_check() -> None:
    counter = itertools.count()
    assert await wait_until(lambda: next(counter) >= 3 and "ready", 5, interval=0) == "ready"

    async def rows() -> list[int]:
        return [1] if next(counter) >= 6 else []

    assert await wait_until(rows, 5, interval=0) == [1]


async def test_wait_until_fails_naming_what_it_waited_for_and_the_watch() -> None:
    class Quiet(Broken):
        def check(self, what: str) -> None:
            self.checked.append(what)

    with pytest.raises(pytest.fail.Exception) as failure:
        await wait_until(lambda: 0, 0.05, message="the job to start", watch=Quiet())
    text = str(failure.value)
    assert "timed out after 0.05s waiting for: the job to start" in text
    assert "daemon output" in text


async def test_wait_until_stops_at_once_when_the_watch_fails() -> None:
    watch = Broken()
    with pytest.raises(pytest.fail.Exception, match="died while waiting for the job"):
        await wait_until(lambda: None, 60, message="the job", watch=watch)
    assert watch.checked == ["the job"]


async def test_poll_returns_none_at_the_deadline() -> None:
    assert await poll(lambda: False, 0.05) is None


def test_the_blocking_loop_behaves_the_same() -> None:
    counter = itertools.count()
    assert wait_until_blocking(lambda: next(counter) >= 2 and 7, 5, interval=0) == 7
    assert poll_blocking(lambda: None, 0.05, interval=0.01) is None
    with pytest.raises(pytest.fail.Exception, match="waiting for: counts 3"):
        wait_until_blocking(lambda: None, 0.05, interval=0.01, message=lambda: "counts 3")
