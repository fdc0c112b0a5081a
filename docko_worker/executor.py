"""One run of one job: the handler under its timeout, middleware and interruptions, and the
``Outcome``.

What happens when a handler raises is decided here and in ``outcome.py`` (the rules), nowhere
else. The executor catches every way a handler can end, ``BaseException``s included, so a worker
never dies with a job in hand. It tells its own cancellations (a timeout, a shutdown, an operator's
cancel request) from a ``CancelledError`` the handler raised by itself: only the first kind can
hand a job back or cancel it.

A handler that ignores the cancellation is abandoned ``CANCEL_GRACE`` seconds later: its outcome is
recorded then (a failed attempt after a timeout, ``cancelled`` after a cancel request), its worker
slot goes to a new worker, and its coroutine runs on detached (Python cannot stop it), its result
ignored.

The handler is called through the middleware added with ``queue.add_middleware`` (see
``middleware.py``), composed once per handler; the innermost ``call_next`` is ``_handler_call``,
the one place that says how a handler itself is run.
A plain-``def`` handler runs the same way, in a thread of ``HandlerThreads``: only its invocation
differs (``_handler_call``). Cancelled, its run ends at once and its thread is abandoned (see
``threads.py``), so it is never abandoned by the watchdog.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, cast

from .middleware import CallNext, Middleware, wrap
from .outcome import (
    COMPLETED,
    Interruption,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    cancelled_message,
    failed_attempt,
    outcome_of_error,
    timeout_message,
)

if TYPE_CHECKING:
    from .job import Job
    from .registry import HandlerOptions, RegisteredHandler
    from .threads import HandlerThreads

# Seconds a cancelled handler gets to unwind before it is abandoned.
CANCEL_GRACE = 5.0


class Execution:
    """One run of a handler, as the daemon sees it while it lasts."""

    __slots__ = (
        "abandoned",
        "cancel_reason",
        "cancels_sent",
        "error",
        "interruption",
        "job",
        "options",
        "started",
        "task",
        "watchdog",
    )

    def __init__(self, job: Job, task: asyncio.Task[None]) -> None:
        self.job = job
        # The job type's handler options, set when the run starts (its retry backoff).
        self.options: HandlerOptions | None = None
        self.task = task
        self.started = time.monotonic()
        self.interruption: Interruption | None = None
        self.cancel_reason: str | None = None
        # Task.cancel() calls made for a cancel request, undone once the run is over.
        self.cancels_sent = 0
        self.abandoned = False
        # The exception the handler ended with, kept for the log line of its outcome.
        self.error: BaseException | None = None
        self.watchdog: asyncio.TimerHandle | None = None


class Executor:
    """Runs handlers and turns how each run ended into an ``Outcome``."""

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        default_timeout: float | None,
        on_abandoned: Callable[[Execution, Outcome], None],
        threads: HandlerThreads,
        cancel_grace: float = CANCEL_GRACE,
        rng: random.Random | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self._policy = policy
        self._threads = threads
        self._default_timeout = default_timeout
        self._on_abandoned = on_abandoned
        self._cancel_grace = cancel_grace
        self._rng = rng
        self._middleware = tuple(middleware)
        # Per job type: the registered handler and its call wrapped in the middleware.
        self._calls: dict[str, tuple[RegisteredHandler, CallNext]] = {}

    async def run(self, execution: Execution, registered: RegisteredHandler) -> Outcome | None:
        """Run the handler; the outcome, or None when the run was abandoned (already recorded)."""
        job = execution.job
        execution.options = registered.options
        timeout = registered.timeout or self._default_timeout
        call = self._call(registered)
        timer: asyncio.Timeout | None = None
        outcome: Outcome
        try:
            if timeout is None:
                await call(job)
            else:
                execution.watchdog = asyncio.get_running_loop().call_later(
                    timeout + self._cancel_grace, self._abandon_timed_out, execution, timeout
                )
                async with asyncio.timeout(timeout) as timer:
                    await call(job)
            outcome = COMPLETED
        except BaseException as exc:  # every way a handler ends is an outcome
            if timer is not None and timer.expired() and execution.interruption is None:
                execution.interruption = Interruption.TIMEOUT
            elif execution.interruption is None and execution.task.cancelling():
                # Someone cancelled the worker without saying why: the daemon is going down.
                execution.interruption = Interruption.SHUTDOWN
            outcome = self._outcome_of_error(execution, exc, timeout)
            execution.error = exc
        finally:
            self._end(execution)
        return None if execution.abandoned else outcome

    def _call(self, registered: RegisteredHandler) -> CallNext:
        """The handler's call wrapped in the middleware, composed on its first job."""
        entry = self._calls.get(registered.job_type)
        if entry is None or entry[0] is not registered:
            entry = (registered, wrap(self._middleware, self._handler_call(registered)))
            self._calls[registered.job_type] = entry
        return entry[1]

    def _handler_call(self, registered: RegisteredHandler) -> CallNext:
        """How the handler itself is run, the innermost ``call_next`` of the middleware: its
        coroutine, or a plain def's run in a thread."""
        if registered.is_async:
            return cast("CallNext", registered.handler)
        threads, handler = self._threads, registered.handler

        def in_a_thread(job: Job) -> Awaitable[None]:
            return threads.run(handler, job)

        return in_a_thread

    def _outcome_of_error(
        self, execution: Execution, error: BaseException, timeout: float | None
    ) -> Outcome:
        job = execution.job
        return outcome_of_error(
            error,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            interruption=execution.interruption,
            timeout=timeout,
            policy=self._policy_for(execution),
            cancel_reason=execution.cancel_reason,
            rng=self._rng,
        )

    def _policy_for(self, execution: Execution) -> RetryPolicy:
        """The backoff of the job's type (``handler_options``), else the global one."""
        options = execution.options
        if options is None or (
            options.retry_base_delay is None and options.retry_max_delay is None
        ):
            return self._policy
        base = options.retry_base_delay or self._policy.base_delay
        return RetryPolicy(base, max(base, options.retry_max_delay or self._policy.max_delay))

    def _end(self, execution: Execution) -> None:
        if execution.watchdog is not None:
            execution.watchdog.cancel()
            execution.watchdog = None
        # A cancel request is over with the run: the worker goes on to its next job.
        task = execution.task
        while execution.cancels_sent:
            execution.cancels_sent -= 1
            task.uncancel()

    # Interruptions

    def cancel(self, execution: Execution, reason: str | None) -> None:
        """An operator cancelled the job: stop its handler; abandon it if it does not stop."""
        if execution.interruption is not None or execution.abandoned:
            return
        execution.interruption = Interruption.CANCEL_REQUESTED
        execution.cancel_reason = reason
        execution.cancels_sent += 1
        execution.task.cancel()
        if execution.watchdog is not None:
            execution.watchdog.cancel()
        execution.watchdog = asyncio.get_running_loop().call_later(
            self._cancel_grace,
            self.abandon,
            execution,
            Outcome(OutcomeKind.CANCELLED, cancelled_message(reason)),
        )

    def stop_for_shutdown(self, execution: Execution) -> None:
        """Shutdown's deadline passed: cancel the handler; its job will be handed back."""
        if execution.abandoned:
            return
        execution.interruption = Interruption.SHUTDOWN
        execution.task.cancel()

    def abandon(self, execution: Execution, outcome: Outcome) -> None:
        """Record ``outcome`` now and stop waiting for the handler."""
        if execution.abandoned:
            return
        execution.abandoned = True
        execution.watchdog = None
        self._on_abandoned(execution, outcome)

    def _abandon_timed_out(self, execution: Execution, timeout: float) -> None:
        job = execution.job
        execution.watchdog = None
        self.abandon(
            execution,
            failed_attempt(
                timeout_message(timeout, ignored_cancellation=True),
                attempt=job.attempt,
                max_attempts=job.max_attempts,
                policy=self._policy_for(execution),
                rng=self._rng,
            ),
        )
