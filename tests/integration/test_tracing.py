"""OpenTelemetry across the queue (the ``opentelemetry`` extra), with the SDK's in-memory
exporter: the trace context enqueued with a job becomes the parent of its handler's span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from docko_worker import Config, Job, JobState, Queue, tracing
from tests.integration.support import wait_for_state

# OpenTelemetry takes one global tracer provider per process: set once, for this module.
EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture(autouse=True)
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(_PROVIDER)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


tracer = trace.get_tracer("tests.web")


def finished(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def test_enqueue_inside_a_span_carries_its_trace_context(queue: Queue) -> None:
    with tracer.start_as_current_span("POST /documents") as request:
        job = await queue.enqueue("documents", "ocr", {})
        [many] = await queue.enqueue_many("documents", "ocr", [{}])

    context = request.get_span_context()
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    assert job.headers["traceparent"].startswith(expected)
    stored = await queue.get_job(many)
    assert stored is not None and stored.headers["traceparent"].startswith(expected)


async def test_outside_a_span_nothing_is_added_and_given_headers_win(queue: Queue) -> None:
    assert (await queue.enqueue("documents", "ocr", {})).headers == {}
    with tracer.start_as_current_span("request"):
        job = await queue.enqueue("documents", "ocr", {}, headers={"traceparent": "mine"})
    assert job.headers == {"traceparent": "mine"}


async def test_the_handler_runs_in_a_consumer_span_child_of_the_enqueuing_span(
    queue: Queue, config: Config, spans: InMemorySpanExporter
) -> None:
    inside: asyncio.Queue[trace.SpanContext] = asyncio.Queue()

    async def ocr(_job: Job) -> None:
        inside.put_nowait(trace.get_current_span().get_span_context())

    with tracer.start_as_current_span("POST /documents") as request:
        job = await queue.enqueue("documents", "ocr", {"document_id": 7})
    async with await Queue.connect(config) as daemon:
        daemon.add_middleware(tracing.middleware)
        daemon.register_handler("ocr", ocr)
        await daemon.start(["documents"])
        current = await asyncio.wait_for(inside.get(), timeout=10)
        await wait_for_state(daemon, job.id, JobState.COMPLETED)

    [span] = finished(spans, "process documents")
    parent = request.get_span_context()
    assert span.kind is SpanKind.CONSUMER
    assert span.context is not None and span.parent is not None
    assert span.context.trace_id == parent.trace_id
    assert span.parent.span_id == parent.span_id
    assert current.span_id == span.context.span_id, "the handler sees its own span as current"
    assert dict(span.attributes or {}) == {
        "messaging.system": "docko",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "documents",
        "messaging.message.id": str(job.id),
        "docko.job.type": "ocr",
        "docko.job.attempt": 1,
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_a_failing_handler_marks_its_span_as_an_error(
    queue: Queue, config: Config, spans: InMemorySpanExporter
) -> None:
    async def broken(_job: Job) -> None:
        raise ValueError("unreadable scan")

    job = await queue.enqueue("default", "broken", {}, max_attempts=1)
    async with await Queue.connect(config) as daemon:
        daemon.add_middleware(tracing.middleware)
        daemon.register_handler("broken", broken)
        await daemon.start()
        await wait_for_state(daemon, job.id, JobState.FAILED)

    [span] = finished(spans, "process default")
    assert span.parent is None, "no trace context was enqueued: a root span"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert (span.events[0].attributes or {})["exception.type"] == "ValueError"
