"""Pure backoff math: capped exponential backoff with full jitter.

``delay = random(0, min(cap, base * 2**attempt))`` where ``attempt`` counts the retries already
made (0 for the first retry). Full jitter spreads a burst of failures over the whole window, so a
fleet that failed together does not retry together.
"""

from __future__ import annotations

import random

# 2**64 seconds outlasts any cap; larger exponents only risk float overflow.
_MAX_EXPONENT = 64


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """The largest delay ``next_retry_delay`` can return for ``attempt``."""
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    return float(min(cap, base * (2**exponent)))


def reconnect_delay(failures: int, base: float, cap: float) -> float:
    """Seconds before reconnection attempt ``failures``: between half and all of the ceiling.

    Keeping half of the ceiling stops a fleet that lost its database together from hammering it
    with near-zero delays, while the other half still spreads the reconnections out.
    """
    return random.uniform(0.5, 1.0) * backoff_ceiling(failures, base, cap)


def next_retry_delay(
    attempt: int, base: float = 1.0, cap: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), drawn uniformly."""
    ceiling = backoff_ceiling(attempt, base, cap)
    return (rng or random).uniform(0.0, ceiling)
