"""The supervisor: builds the daemon's parts, starts them, watches them and stops them in order.

    waker ──wake──> fetcher ──claimed jobs──> hand-off ──> workers ──outcomes──> recorder
                       ▲                                       │                    │
                 retries due                               executor             completer
                       └──────────────────────────────────────────────────────────┘
    heartbeat: extends the leases of the held jobs    maintenance: rescuer, pruner
    loop monitor: names the running jobs while the event loop is blocked
    endpoint (DOCKO_HTTP_PORT): /metrics, /healthz, /readyz, and the queue sampler

The parts share one ``HeldJobs``. Side tasks (heartbeat, waker, maintenance, health file, periodic
scheduler) run under a watch: one that fails unexpectedly is logged with its traceback and restarted
after a backoff, never left dead silently.

With ``DOCKO_HTTP_PORT`` set, the parts count claims and outcomes in a ``Metrics``, and the
``Endpoint`` serves them; it binds its port before anything else starts, and closes last.

Shutdown (``/readyz`` turns 503 at once): stop claiming; hand back claimed jobs that have not
started; let running jobs finish for up to ``shutdown_timeout``; cancel the rest and hand their
jobs back without spending the attempt; write every pending outcome, and report those that could
not be written (``unwritten``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import asyncpg
import structlog

from .alarm import Alarm
from .completer import Completer
from .config import Config
from .fetcher import STOP_GRACE, Fetcher
from .handoff import Handoff
from .health import keep_touching
from .heartbeat import Heartbeat
from .held import HeldJobs
from .job import Job
from .loop_monitor import LoopMonitor
from .maintenance import Pruner, Rescuer, UnknownTypeWatch
from .metrics import Metrics
from .middleware import Middleware
from .outcome import RetryPolicy
from .periodic import Periodic
from .recorder import Counters, Recorder
from .registry import HandlerRegistry
from .retry import reconnect_delay
from .settle import settle
from .store import JobStore, PeriodicStore
from .waker import Connect, Waker
from .workers import Workers

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .scheduler import Scheduler

log = structlog.get_logger("docko_worker.supervisor")

# Seconds the event loop may stand still before the running jobs are named in a warning.
LOOP_BLOCK_WARNING = 10.0
# Seconds the LISTEN connection and the queues' registration wait for the first claim.
FIRST_CLAIM_HEAD_START = 0.5
# Seconds shutdown waits for the side tasks to stop.
SIDE_TASK_STOP_GRACE = 5.0
# Seconds shutdown gives the last outcome writes at the least.
OUTCOME_WRITE_GRACE = 2.0
# A side task that ran this long before failing starts again without its backoff grown.
SIDE_TASK_HEALTHY_RUN = 60.0
# Most job ids named in the log line about outcomes that could not be written.
UNWRITTEN_IDS_LOGGED = 100


class WakeNotice(NamedTuple):
    """A jobs-channel notification: new jobs in ``queue``, due at ``due`` (epoch seconds; None:
    now), of ``job_types`` (None: not named, any type may be among them); the earliest due at
    ``run_at`` (epoch seconds), the best of priority ``priority`` (each None: not said)."""

    queue: str
    due: float | None = None
    job_types: frozenset[str] | None = None
    run_at: float | None = None
    priority: int | None = None


def parse_wake_payload(payload: str) -> WakeNotice:
    """The notice of a jobs-channel notification (see ``wake_payload`` in queries.sql). A payload
    that is not such an object is a queue's name: the form of ``requeue_jobs``, periodic slots,
    and producers of earlier versions."""
    if payload.startswith("{"):
        try:
            data = json.loads(payload)
            queue = str(data["queue"])
            run_at = float(data["run_at"])
            types = data.get("job_types")
            job_types = None if types is None else frozenset(str(name) for name in types)
            priority = data.get("priority")
            return WakeNotice(
                queue,
                None if data.get("due_now") else run_at,
                job_types,
                run_at,
                None if priority is None else int(priority),
            )
        except (ValueError, KeyError, TypeError):
            pass  # a queue whose name starts with a brace
    return WakeNotice(payload)


def make_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted pod gets a new one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Supervisor:
    """Runs jobs from ``queues`` with ``config.worker_count`` concurrent workers."""

    def __init__(
        self,
        store: JobStore,
        registry: HandlerRegistry,
        config: Config,
        queues: Sequence[str],
        *,
        connect: Connect | None = None,
        worker_id: str | None = None,
        periodics: Sequence[Periodic] = (),
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.config = config
        self.queues = list(dict.fromkeys(queues))
        self.worker_id = worker_id or make_worker_id()
        self._registry = registry
        self._handled = frozenset(registry.job_types)
        self._store = store
        self._held = held = HeldJobs()
        handoff: Handoff[Job | None] = Handoff()
        # Counted only for the HTTP endpoint: without it the per-job path does not count.
        metrics = Metrics() if config.http_port is not None else None
        if metrics is not None:
            metrics.prime(self.queues, registry.job_types)
        # Wakes the fetcher when a retry this process wrote falls due, not at the next poll.
        jobs_due = Alarm(lambda: self._fetcher.alarm_rang())
        self._completer = Completer(
            store,
            held,
            batch_size=config.completion_batch_size,
            flush_interval=config.completion_flush_interval,
            delete_completed=config.completed_retention == 0,
            jobs_due=jobs_due,
            metrics=metrics,
        )
        self._recorder = Recorder(
            held,
            self._completer,
            debug=config.log_level == "debug",
            log_completed=config.log_completed,
            metrics=metrics,
        )
        self._fetcher = Fetcher(
            store,
            config,
            queues=self.queues,
            job_types=registry.job_types,
            worker_id=self.worker_id,
            held=held,
            handoff=handoff,
            recorder=self._recorder,
            jobs_due=jobs_due,
            on_recovered=self._database_back,
            metrics=metrics,
        )
        self._workers = Workers(
            config.worker_count,
            handoff=handoff,
            held=held,
            registry=registry,
            recorder=self._recorder,
            completer=self._completer,
            policy=RetryPolicy(config.base_retry_delay, config.max_retry_delay),
            default_timeout=config.job_timeout,
            thread_pool_size=config.thread_pool_size,
            middleware=middleware,
        )
        self._heartbeat = Heartbeat(
            store,
            config,
            held,
            self.worker_id,
            on_cancel_requested=self._workers.cancel,
            metrics=metrics,
        )
        self._waker = (
            Waker(config, connect, self.wake, control=self.control)
            if config.listen and connect
            else None
        )
        self._loop_monitor = LoopMonitor(
            min(LOOP_BLOCK_WARNING, config.visibility_timeout / 2), self._workers.running_jobs
        )
        # The scheduler and the endpoint are imported only when wanted: most daemons declare no
        # periodic job, and serve no HTTP; their modules would only lengthen the start-up.
        self._scheduler: Scheduler | None = None
        if periodics:
            from .scheduler import Scheduler

            self._scheduler = Scheduler(PeriodicStore(store.runner), periodics, config)
        self._endpoint: Endpoint | None = None
        if metrics is not None:
            from .endpoint import Endpoint

            self._endpoint = Endpoint(config, store, self.queues, metrics, self)
        self._endpoint_task: asyncio.Task[None] | None = None
        self._fetcher_task: asyncio.Task[None] | None = None
        self._side_tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.unwritten: list[Job] = []

    # Lifecycle

    def start(self) -> None:
        """Start every part; returns at once. ``ConfigError`` when the HTTP port cannot be had."""
        config = self.config
        if self._endpoint is not None:
            self._endpoint.bind()  # first: a port in use stops the start before anything runs
        log.info(
            "supervisor_started",
            worker_id=self.worker_id,
            queues=self.queues,
            job_types=self._registry.job_types,
            worker_count=config.worker_count,
        )
        self._completer.start()
        self._loop_monitor.start()
        # The fetcher first: the first claim goes out before the workers take their first step.
        self._fetcher_task = self._watch("docko-fetcher", self._fetcher.run, side=False)
        self._workers.start()
        self._watch("docko-heartbeat", self._heartbeat.run)
        self._watch("docko-rescuer", Rescuer(self._store, config).run)
        self._watch("docko-pruner", Pruner(self._store, config).run)
        watch = UnknownTypeWatch(self._store, self.queues, self._registry.job_types)
        self._watch("docko-unknown-types", watch.run)
        if config.health_file:
            interval = min(5.0, config.poll_interval * 5)
            self._watch("docko-health", partial(keep_touching, config.health_file, interval))
        if self._waker is not None:
            self._watch("docko-waker", partial(self._after_first_claim, self._waker.run))
        register = partial(self._after_first_claim, self._register_queues)
        self._watch("docko-register-queues", register)
        if self._scheduler is not None:
            self._watch("docko-periodic", self._scheduler.run)
        if self._endpoint is not None:
            (http, serve), (sampler, sample) = self._endpoint.parts()
            # Not a side task: the endpoint answers until the last outcome is written.
            self._endpoint_task = self._watch(http, serve, side=False)
            self._watch(sampler, sample)

    def _watch(
        self,
        name: str,
        factory: Callable[[], Coroutine[Any, Any, None]],
        *,
        side: bool = True,
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(self._supervise(name, factory), name=name)
        if side:
            self._side_tasks.append(task)
        return task

    async def _supervise(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                await factory()
                return
            except Exception:
                if time.monotonic() - started > SIDE_TASK_HEALTHY_RUN:
                    failures = 0
                failures += 1
                delay = reconnect_delay(failures, 1.0, 60.0)
                log.exception("task_failed_restarting", task=name, restart_in=round(delay, 2))
            await asyncio.sleep(delay)

    async def _after_first_claim(self, part: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``part`` once the first claim is back (at most ``FIRST_CLAIM_HEAD_START``
        seconds later): its connection's start-up does not then delay the first jobs. The
        LISTEN connection looks the next due time up when it connects, so nothing announced
        meanwhile is missed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CLAIM_HEAD_START):
                await self._fetcher.first_claim_done.wait()
        await part()

    async def _register_queues(self) -> None:
        """Record the served queues, so ``queues()`` lists them once all their jobs are gone."""
        try:
            await self._store.register_queues(self.queues)
        except asyncpg.InsufficientPrivilegeError:
            log.info("queues_not_registered", reason="no INSERT privilege on docko_queues")

    def wake(self, payload: str = "") -> None:
        """Called by the waker with a notification's payload: a job may be waiting in a queue
        ('' means any), or will be due at a moment (see ``wake_payload`` in queries.sql)."""
        if not payload:
            # The LISTEN connection (re)connected: announcements may have been missed.
            self._fetcher.look_ahead()
            return
        queue_name, due, job_types, run_at, priority = parse_wake_payload(payload)
        if queue_name not in self.queues:
            return
        if job_types is not None and job_types.isdisjoint(self._handled):
            return  # nothing this daemon can run: an idle claim would find none of it
        self._fetcher.notice(queue_name, priority=priority, run_at=run_at)
        if due is None:
            self._fetcher.wake()
        else:
            self._fetcher.wake_at(due)

    def control(self, payload: str) -> None:
        """Called by the waker with an operator's control notification (see ``cancel_jobs`` in
        queries.sql): a cancel request for a job this process holds is carried out here."""
        try:
            message = json.loads(payload)
            if not isinstance(message, dict) or "cancel" not in message:
                return  # pause and resume: the claim reads the flag itself
            if message.get("worker_id") not in (None, self.worker_id):
                return
            job_id = uuid.UUID(str(message["cancel"]))
        except (ValueError, TypeError):
            log.warning("control_message_ignored", payload=payload[:200])
            return
        self._workers.cancel(job_id)

    def _database_back(self) -> None:
        if self._waker is not None:
            self._waker.retry_now()

    async def stop(self) -> list[Job]:
        """Graceful shutdown (see the module docstring); safe to call twice.

        Returns the jobs whose outcomes could not be written (they run again after their lease).
        """
        if self._stopping:
            return self.unwritten
        self._stopping = True
        log.info("shutdown_started", running=len(self._held.running()), held=len(self._held))
        self._fetcher.stop()
        if self._fetcher_task is not None and await settle(
            {self._fetcher_task}, grace=STOP_GRACE, cancel_first=False
        ):
            log.warning("claim_abandoned_at_shutdown", waited=STOP_GRACE)
        await self._workers.stop(self.config.shutdown_timeout)
        stuck = await settle(self._side_tasks, grace=SIDE_TASK_STOP_GRACE)
        if stuck:
            log.warning(
                "side_tasks_abandoned_at_shutdown", tasks=sorted(t.get_name() for t in stuck)
            )
        grace = max(OUTCOME_WRITE_GRACE, self.config.shutdown_timeout)
        self.unwritten = unwritten = await self._completer.close(grace=grace)
        if unwritten:
            log.error(
                "outcomes_not_written",
                outcomes=len(unwritten),
                grace=grace,
                job_ids=[str(job.id) for job in unwritten[:UNWRITTEN_IDS_LOGGED]],
                note="these jobs run again once their lease expires",
            )
        self._loop_monitor.stop()
        if self._endpoint_task is not None:
            await settle({self._endpoint_task}, grace=SIDE_TASK_STOP_GRACE)
        counters = self._recorder.counters
        log.info(
            "shutdown_complete",
            completed=counters.completed,
            retried=counters.retried,
            failed=counters.failed,
            released=counters.released,
        )
        return unwritten

    # Reading

    @property
    def counters(self) -> Counters:
        return self._recorder.counters

    @property
    def held(self) -> HeldJobs:
        return self._held

    @property
    def stopping(self) -> bool:
        """Shutdown has started (``/readyz`` answers 503)."""
        return self._stopping

    @property
    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    @property
    def completer(self) -> Completer:
        return self._completer

    @property
    def heartbeat(self) -> Heartbeat:
        return self._heartbeat

    @property
    def waker(self) -> Waker | None:
        return self._waker

    @property
    def idle(self) -> bool:
        """No job held: nothing claimed, running or awaiting its outcome write."""
        return not len(self._held) and self._held.busy == 0 and self._completer.pending == 0

    def accept(self, jobs: list[Job]) -> None:
        """Take jobs claimed outside the fetcher, as if it had claimed them (tests use it)."""
        self._fetcher.accept(jobs)
