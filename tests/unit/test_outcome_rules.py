"""The rules that turn how a handler run ended into an outcome: no database, no event loop."""

from __future__ import annotations

import asyncio
import random

import pytest

from docko_worker import PermanentError
from docko_worker.errors import MAX_ERROR_LENGTH, describe_error, storable_text
from docko_worker.outcome import (
    HANDED_BACK,
    MAX_RETRY_IN,
    Interruption,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    outcome_of_error,
)

POLICY = RetryPolicy(base_delay=1.0, max_delay=60.0)


def decide(
    error: BaseException,
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    interruption: Interruption | None = None,
    timeout: float | None = None,
    reason: str | None = None,
    policy: RetryPolicy = POLICY,
) -> Outcome:
    return outcome_of_error(
        error,
        attempt=attempt,
        max_attempts=max_attempts,
        interruption=interruption,
        timeout=timeout,
        policy=policy,
        cancel_reason=reason,
        rng=random.Random(7),
    )


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class CustomBase(BaseException):
    pass


def test_an_error_with_attempts_left_is_retried_within_the_backoff_window() -> None:
    outcome = decide(ValueError("flaky"), attempt=2)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error == "ValueError: flaky"
    assert 0.0 <= outcome.retry_in <= 2.0


def test_the_last_attempt_fails() -> None:
    outcome = decide(ValueError("flaky"), attempt=3, max_attempts=3)
    assert outcome == Outcome(OutcomeKind.FAILED, "ValueError: flaky")


def test_a_permanent_error_fails_at_once() -> None:
    outcome = decide(PermanentError("corrupt"), attempt=1, max_attempts=5)
    assert outcome == Outcome(OutcomeKind.FAILED, "PermanentError: corrupt", permanent=True)


def test_shutdown_hands_back_whatever_the_handler_raised() -> None:
    for error in (asyncio.CancelledError(), ValueError("turned into this"), PermanentError()):
        assert decide(error, attempt=3, interruption=Interruption.SHUTDOWN) is HANDED_BACK


def test_a_cancel_request_cancels_with_its_reason() -> None:
    outcome = decide(asyncio.CancelledError(), interruption=Interruption.CANCEL_REQUESTED)
    assert outcome == Outcome(OutcomeKind.CANCELLED, "Cancelled")
    with_reason = decide(
        asyncio.CancelledError(), interruption=Interruption.CANCEL_REQUESTED, reason="runaway"
    )
    assert with_reason.error == "Cancelled: runaway"


def test_a_timeout_is_a_failed_attempt_naming_the_limit() -> None:
    outcome = decide(TimeoutError(), interruption=Interruption.TIMEOUT, timeout=2.5)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error == "JobTimeout: handler ran longer than 2.5s"
    last = decide(TimeoutError(), attempt=3, interruption=Interruption.TIMEOUT, timeout=2.5)
    assert last.kind is OutcomeKind.FAILED


def test_a_cancelled_error_the_handler_raised_itself_is_a_failed_attempt() -> None:
    """Only the daemon's own cancellation may hand a job back without spending the attempt."""
    outcome = decide(asyncio.CancelledError(), attempt=1)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error is not None and outcome.error.startswith("CancelledError")
    assert decide(asyncio.CancelledError(), attempt=3).kind is OutcomeKind.FAILED


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), CustomBase("odd")])
def test_base_exceptions_are_failed_attempts(error: BaseException) -> None:
    assert decide(error, attempt=1).kind is OutcomeKind.RETRY
    assert decide(error, attempt=3).kind is OutcomeKind.FAILED


def test_an_error_whose_message_cannot_be_read_still_gets_an_outcome() -> None:
    outcome = decide(UnprintableError(), attempt=3)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None and outcome.error.startswith("UnprintableError: <")


def test_a_retry_never_asks_for_a_delay_beyond_what_timestamps_hold() -> None:
    policy = RetryPolicy(base_delay=1e300, max_delay=1e308)
    outcome = decide(ValueError("x"), attempt=1, policy=policy)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.retry_in <= MAX_RETRY_IN


def test_error_text_is_storable() -> None:
    assert describe_error(ValueError("bad header \x00\x01")) == "ValueError: bad header \\x00\x01"
    surrogate = describe_error(FileNotFoundError("caf\udce9.pdf"))
    surrogate.encode("utf-8")
    assert "caf" in surrogate and "\\udce9" in surrogate
    assert len(describe_error(ValueError("x" * 10 * MAX_ERROR_LENGTH))) == MAX_ERROR_LENGTH
    assert describe_error(ValueError()) == "ValueError"
    assert storable_text("plain") == "plain"
    assert storable_text("naïve \x00") == "naïve \\x00"
