"""OpenTelemetry tracing across the queue (the ``opentelemetry`` extra): enqueue to handler.

- At enqueue, the current trace context is written into the job's headers (``traceparent``,
  and ``tracestate`` or ``baggage`` when set) through OpenTelemetry's configured propagators:
  ``headers.py`` calls ``inject_trace_context`` whenever this module imports, that is whenever
  ``opentelemetry-api`` is installed. Outside a span nothing is added.
- ``middleware`` runs each handler inside a span of kind ``CONSUMER`` named ``process <queue>``,
  the child of the context found in the job's headers, with the messaging semantic conventions'
  attributes (``messaging.system`` ``docko``, ``messaging.operation.type`` ``process``,
  ``messaging.destination.name``, ``messaging.message.id``) and ``docko.job.type`` and
  ``docko.job.attempt``. A handler's exception is recorded on the span, whose status is then
  ``ERROR``. Add it with ``queue.add_middleware(docko_worker.tracing.middleware)``, or to
  ``docko-worker run`` with ``DOCKO_MIDDLEWARE=docko_worker.tracing:middleware``.

Spans go wherever the application's OpenTelemetry SDK sends them (a ``TracerProvider`` set up
in code, or ``opentelemetry-instrument docko-worker run`` with the ``OTEL_*`` variables); with
the API alone they cost little and record nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from .job import Job
    from .middleware import CallNext

# The value of ``messaging.system``: docko is not among the conventions' well-known systems.
MESSAGING_SYSTEM = "docko"

_tracer = trace.get_tracer("docko_worker")


def inject_trace_context(headers: dict[str, str]) -> None:
    """Add the current trace context to ``headers`` (nothing outside a span)."""
    propagate.inject(headers)


async def middleware(job: Job, call_next: CallNext) -> None:
    """Run the handler in a consumer span, the child of the context in ``job.headers``."""
    parent = propagate.extract(job.headers) if job.headers else None
    with _tracer.start_as_current_span(
        f"process {job.queue_name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.queue_name,
            "messaging.message.id": str(job.id),
            "docko.job.type": job.job_type,
            "docko.job.attempt": job.attempt,
        },
    ):
        await call_next(job)
