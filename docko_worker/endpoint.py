"""The daemon's HTTP endpoint (``DOCKO_HTTP_PORT``): ``/metrics``, ``/healthz`` and ``/readyz``.

- ``GET /healthz``: 200 ``ok``. It is answered by the daemon's event loop itself, so it answers
  only while the loop turns: while a handler blocks the loop (``time.sleep``, CPU-bound work), the
  probe gets no answer until its own timeout, and fails.
- ``GET /readyz``: 200 ``ready`` when the last sample of the jobs table reached the database, the
  schema holds every migration this daemon knows, and the daemon is not shutting down; 503 with
  the reason otherwise. It turns 503 the moment shutdown starts (SIGTERM), before running jobs
  have finished, so a load balancer or orchestrator stops counting on the daemon first.
- ``GET /metrics``: Prometheus text format (OpenMetrics when asked), see ``exposition.py``.

The supervisor builds one ``Endpoint`` when ``DOCKO_HTTP_PORT`` is set, binds it before any other
part starts (a port in use stops the start with a ``ConfigError``), watches its server and its
``QueueSampler`` like its other parts, and closes the server last, once every outcome is written.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from .config import Config
from .http_server import HttpServer, Request, Response, text
from .metrics import Metrics
from .sampler import QueueSampler
from .store import JobStore

if TYPE_CHECKING:
    from .completer import Completer
    from .held import HeldJobs
    from .waker import Waker

log = structlog.get_logger("docko_worker.endpoint")


class DaemonView(Protocol):
    """What the endpoint reads from the supervisor."""

    @property
    def stopping(self) -> bool: ...

    @property
    def held(self) -> HeldJobs: ...

    @property
    def completer(self) -> Completer: ...

    @property
    def waker(self) -> Waker | None: ...


class Endpoint:
    """The HTTP endpoint and the state it reports (``exposition.DaemonState``)."""

    def __init__(
        self,
        config: Config,
        store: JobStore,
        queues: Sequence[str],
        metrics: Metrics,
        daemon: DaemonView,
    ) -> None:
        assert config.http_port is not None
        self._config = config
        self._daemon = daemon
        self.metrics = metrics
        self.sampler = QueueSampler(store, queues, config.metrics_sample_interval)
        self._server = HttpServer(
            config.http_host,
            config.http_port,
            {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics},
        )
        self._render: Callable[[str], tuple[bytes, str]] | None = None
        # (host, port) once bound: the port the system chose for DOCKO_HTTP_PORT=0.
        self.address: tuple[str, int] | None = None

    def bind(self) -> None:
        """Listen on the configured address (``ConfigError`` if it cannot be had)."""
        host, port = self.address = self._server.bind()
        log.info("http_listening", host=host, port=port)

    def parts(self) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
        """The coroutines to run under the supervisor's watch, by task name."""
        return [("docko-http", self._server.serve), ("docko-queue-sampler", self.sampler.run)]

    # Readiness

    def readiness(self) -> tuple[bool, str]:
        """Whether the daemon is ready for work, and why not."""
        sampler = self.sampler
        if self._daemon.stopping:
            return False, "shutting down"
        if not sampler.attempted:
            return False, "starting: the database has not been sampled yet"
        if not sampler.connected:
            return False, "the database does not answer"
        if not sampler.schema_current:
            return False, (
                f"the schema is at version {sampler.schema_version}, this daemon needs "
                f"{sampler.expected_schema} (run docko-worker migrate)"
            )
        return True, "ready"

    # exposition.DaemonState

    @property
    def ready(self) -> bool:
        return self.readiness()[0]

    @property
    def worker_slots(self) -> int:
        return self._config.worker_count

    def running_by_type(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for execution in self._daemon.held.running():
            key = (execution.job.queue_name, execution.job.job_type)
            counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def held_count(self) -> int:
        return len(self._daemon.held)

    @property
    def outcomes_pending(self) -> int:
        return self._daemon.completer.pending

    @property
    def listen_connected(self) -> bool | None:
        waker = self._daemon.waker
        return None if waker is None else waker.connected.is_set()

    # Routes

    def _healthz(self, _request: Request) -> Response:
        return text(200, "ok")

    def _readyz(self, _request: Request) -> Response:
        ready, reason = self.readiness()
        return text(200 if ready else 503, reason)

    def _metrics(self, request: Request) -> Response:
        if self._render is None:
            # prometheus_client is loaded by the first scrape, not by the daemon's start.
            from . import __version__
            from .exposition import DaemonCollector, build_registry, renderer

            collector = DaemonCollector(self.metrics, self.sampler, self, __version__)
            self._render = renderer(build_registry(collector))
        body, content_type = self._render(request.headers.get("accept", ""))
        return Response(200, body, content_type)
