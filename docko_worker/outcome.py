"""What becomes of a job after one run of its handler: the ``Outcome`` and the rules that pick it.

Plain functions of plain values, no database and no event loop, so every rule has a unit test:

- the handler returned: **completed**;
- docko-worker stopped the handler itself for shutdown: **handed back**, the attempt not spent,
  whatever the handler turned the cancellation into;
- docko-worker stopped it because an operator cancelled the job: **cancelled**;
- the handler outran its timeout (it was cancelled, or it ignored that and was abandoned): a
  **failed attempt**;
- it raised ``PermanentError``: **failed** at once;
- it raised anything else, ``BaseException``s and a ``CancelledError`` of its own included: a
  **failed attempt**.

A failed attempt is **retried** after a backoff drawn from the retry policy, or **failed** when it
was the job's last attempt.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from enum import Enum

from .errors import PermanentError, describe_error, storable_text
from .retry import next_retry_delay

# The longest backoff an outcome asks for, whatever the policy says: the due time must stay
# within what PostgreSQL and Python can both represent.
MAX_RETRY_IN = 10 * 365 * 86_400.0


class OutcomeKind(Enum):
    COMPLETED = "completed"
    RETRY = "retry"
    FAILED = "failed"
    HANDED_BACK = "handed_back"
    CANCELLED = "cancelled"


class Interruption(Enum):
    """Why docko-worker itself stopped a handler."""

    SHUTDOWN = "shutdown"
    CANCEL_REQUESTED = "cancel_requested"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One run's result, as the completer writes it."""

    kind: OutcomeKind
    error: str | None = None
    retry_in: float = 0.0
    permanent: bool = False


COMPLETED = Outcome(OutcomeKind.COMPLETED)
HANDED_BACK = Outcome(OutcomeKind.HANDED_BACK)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (see ``retry.next_retry_delay``)."""

    base_delay: float
    max_delay: float


def failed_attempt(
    error: str, *, attempt: int, max_attempts: int, policy: RetryPolicy, rng: random.Random | None
) -> Outcome:
    """A retry after backoff, or a failure when ``attempt`` was the last one allowed."""
    if attempt >= max_attempts:
        return Outcome(OutcomeKind.FAILED, error)
    delay = next_retry_delay(attempt - 1, policy.base_delay, policy.max_delay, rng)
    return Outcome(OutcomeKind.RETRY, error, retry_in=min(delay, MAX_RETRY_IN))


def timeout_message(timeout: float, *, ignored_cancellation: bool = False) -> str:
    text = f"JobTimeout: handler ran longer than {timeout:g}s"
    return text + " and ignored cancellation" if ignored_cancellation else text


def cancelled_message(reason: str | None) -> str:
    return f"Cancelled: {storable_text(reason)}" if reason else "Cancelled"


def outcome_of_error(
    error: BaseException,
    *,
    attempt: int,
    max_attempts: int,
    interruption: Interruption | None,
    timeout: float | None,
    policy: RetryPolicy,
    cancel_reason: str | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """The outcome of a handler run that ended by raising ``error``.

    ``interruption`` says whether docko-worker had stopped the handler, and why; only then does a
    ``CancelledError`` (or whatever the handler turned it into) mean anything but a failure.
    """
    if interruption is Interruption.SHUTDOWN:
        return HANDED_BACK
    if interruption is Interruption.CANCEL_REQUESTED:
        return Outcome(OutcomeKind.CANCELLED, cancelled_message(cancel_reason))
    if interruption is Interruption.TIMEOUT and timeout is not None:
        text = timeout_message(timeout)
    elif isinstance(error, PermanentError):
        return Outcome(OutcomeKind.FAILED, describe_error(error), permanent=True)
    elif isinstance(error, asyncio.CancelledError):
        text = describe_error(error) + " (raised by the handler, not a cancellation by the daemon)"
    else:
        text = describe_error(error)
    return failed_attempt(text, attempt=attempt, max_attempts=max_attempts, policy=policy, rng=rng)
