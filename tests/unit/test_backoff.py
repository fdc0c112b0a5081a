"""Backoff math (``docko_worker.retry``): full-jitter bounds, the cap, and overflow safety."""

from __future__ import annotations

import random

import pytest

from docko_worker import next_retry_delay
from docko_worker.retry import backoff_ceiling

DRAWS = 500


def draws(attempt: int, *, base: float = 1.0, cap: float = 3600.0, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [next_retry_delay(attempt, base, cap, rng=rng) for _ in range(DRAWS)]


def test_defaults_are_base_one_second_cap_one_hour() -> None:
    rng_a, rng_b = random.Random(3), random.Random(3)
    assert next_retry_delay(20, rng=rng_a) == next_retry_delay(20, 1.0, 3600.0, rng=rng_b)
    assert max(next_retry_delay(30) for _ in range(DRAWS)) <= 3600.0


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (10, 1024.0), (11, 2048.0), (12, 3600.0)],
)
def test_ceiling_doubles_per_attempt_until_the_cap(attempt: int, ceiling: float) -> None:
    assert backoff_ceiling(attempt, 1.0, 3600.0) == ceiling


@pytest.mark.parametrize(("attempt", "upper"), [(0, 1.0), (2, 4.0), (10, 3600.0), (40, 3600.0)])
def test_draws_stay_within_zero_and_the_window(attempt: int, upper: float) -> None:
    values = draws(attempt)
    assert all(0.0 <= value <= upper for value in values)
    assert all(value <= backoff_ceiling(attempt, 1.0, 3600.0) for value in values)


def test_attempt_ten_is_never_above_one_hour() -> None:
    assert max(draws(10, seed=11)) <= 3600.0


def test_full_jitter_spreads_draws_over_the_whole_window() -> None:
    values = draws(4)
    assert len(set(values)) > DRAWS // 2
    # Full jitter, not "ceiling minus a little": draws land in both halves of [0, 16].
    assert min(values) < 4.0
    assert max(values) > 12.0


def test_unseeded_draws_are_not_all_equal() -> None:
    assert len({next_retry_delay(3) for _ in range(50)}) > 1


@pytest.mark.parametrize("attempt", [64, 65, 1_000, 10**6, 10**18])
def test_huge_attempts_are_capped_without_overflow(attempt: int) -> None:
    assert backoff_ceiling(attempt, 1.0, 3600.0) == 3600.0
    assert 0.0 <= next_retry_delay(attempt) <= 3600.0


def test_huge_base_is_capped_without_overflow() -> None:
    assert backoff_ceiling(10**6, 1e300, 3600.0) == 3600.0


def test_negative_attempt_is_treated_as_the_first() -> None:
    assert backoff_ceiling(-5, 2.0, 3600.0) == 2.0


def test_cap_below_base_times_growth_uses_the_cap() -> None:
    assert backoff_ceiling(3, 0.5, 1.0) == 1.0
    assert backoff_ceiling(1, 0.5, 1.0) == 1.0
    assert backoff_ceiling(0, 0.5, 1.0) == 0.5


def test_returns_float() -> None:
    assert isinstance(backoff_ceiling(3, 1, 3600), float)
    assert isinstance(next_retry_delay(3, 1, 3600), float)
