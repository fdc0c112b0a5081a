"""``/metrics``: the daemon's numbers as Prometheus metric families, built at scrape time.

``DaemonCollector`` is a prometheus_client custom collector: it reads the plain tallies of
``metrics.Metrics``, the held jobs, the completer, the waker and the last queue sample, and
yields metric families from them, so that the per-job path never touches prometheus_client. The
registry also carries prometheus_client's standard process, platform and garbage-collector
collectors (``process_*``, ``python_*``). This module is imported with the first scrape: a
daemon nobody scrapes never loads prometheus_client.

Every docko metric is named ``docko_*``; see the README's table of metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .metrics import OUTCOMES, Histogram, Metrics
from .sampler import COUNT_CAP, QueueSampler


class DaemonState(Protocol):
    """What the collector reads from the running daemon besides its tallies."""

    @property
    def worker_slots(self) -> int: ...

    def running_by_type(self) -> dict[tuple[str, str], int]: ...

    @property
    def held_count(self) -> int: ...

    @property
    def outcomes_pending(self) -> int: ...

    @property
    def listen_connected(self) -> bool | None:
        """None when the daemon polls only (no LISTEN connection)."""

    @property
    def ready(self) -> bool: ...


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """The histogram's cumulative buckets, each bound spelt as an ``le`` label."""
    return [
        ("+Inf" if bound == float("inf") else repr(float(bound)), count)
        for bound, count in histogram.cumulative()
    ]


class DaemonCollector(Collector):
    def __init__(
        self, metrics: Metrics, sampler: QueueSampler, state: DaemonState, version: str
    ) -> None:
        self._metrics = metrics
        self._sampler = sampler
        self._state = state
        self._version = version

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon()
        yield from self._jobs()
        yield from self._batches()
        yield from self._queues()

    def _daemon(self) -> Iterator[Metric]:
        state = self._state
        info = GaugeMetricFamily(
            "docko_build_info",
            "Always 1, labelled with the docko-worker version.",
            labels=["version"],
        )
        info.add_metric([self._version], 1)
        yield info
        yield GaugeMetricFamily(
            "docko_worker_slots", "Jobs this daemon runs at once at most.", state.worker_slots
        )
        yield GaugeMetricFamily(
            "docko_ready", "1 while /readyz answers 200, else 0.", 1 if state.ready else 0
        )
        yield GaugeMetricFamily(
            "docko_jobs_held",
            "Jobs this daemon holds: claimed, running or awaiting their outcome write.",
            state.held_count,
        )
        yield GaugeMetricFamily(
            "docko_outcomes_pending",
            "Outcomes not yet written to the database.",
            state.outcomes_pending,
        )
        connected = state.listen_connected
        if connected is not None:
            yield GaugeMetricFamily(
                "docko_listen_connected",
                "1 while the LISTEN connection that wakes idle workers is up, else 0.",
                1 if connected else 0,
            )

    def _jobs(self) -> Iterator[Metric]:
        labels = ["queue", "job_type"]
        outcomes = CounterMetricFamily(
            "docko_jobs",
            "Jobs by what became of them in this daemon: completed, retried, failed, cancelled, "
            "released (handed back unspent), lease_lost or write_rejected (the job runs again).",
            labels=[*labels, "outcome"],
        )
        duration = HistogramMetricFamily(
            "docko_job_duration_seconds", "Seconds each handler ran.", labels=labels
        )
        wait = HistogramMetricFamily(
            "docko_job_wait_seconds",
            "Seconds from a job's due time (run_at) to its claim by a free worker of this daemon.",
            labels=labels,
        )
        # Every (queue, job type) the daemon serves has its counters from the start (at zero,
        # so that rate() sees the first increase); its histograms appear with its first job.
        active: list[tuple[str, str]] = []
        for (queue, job_type), series in sorted(self._metrics.series.items()):
            for outcome, count in zip(OUTCOMES, series.outcomes, strict=True):
                outcomes.add_metric([queue, job_type, outcome], count)
            if not (series.duration.counts_any() or series.wait.counts_any()):
                continue
            active.append((queue, job_type))
            duration.add_metric([queue, job_type], _buckets(series.duration), series.duration.total)
            wait.add_metric([queue, job_type], _buckets(series.wait), series.wait.total)
        running = GaugeMetricFamily(
            "docko_jobs_running", "Jobs whose handler runs now in this daemon.", labels=labels
        )
        counts = self._state.running_by_type()
        for key in sorted(set(active) | set(counts)):
            running.add_metric(list(key), counts.get(key, 0))
        yield from (outcomes, duration, wait, running)

    def _batches(self) -> Iterator[Metric]:
        metrics = self._metrics
        claims = HistogramMetricFamily(
            "docko_claim_size", "Jobs each claim statement took (0: none was due)."
        )
        claims.add_metric([], _buckets(metrics.claims), metrics.claims.total)
        writes = HistogramMetricFamily(
            "docko_outcome_write_size", "Outcomes each lease-guarded write statement carried."
        )
        writes.add_metric([], _buckets(metrics.writes), metrics.writes.total)
        yield claims
        yield CounterMetricFamily(
            "docko_claim_failures",
            "Claim statements that failed (retried).",
            metrics.claim_failures,
        )
        yield writes
        yield CounterMetricFamily(
            "docko_outcome_write_failures",
            "Outcome writes that failed for a reason of the moment (retried with their outcomes).",
            metrics.write_failures,
        )

    def _queues(self) -> Iterator[Metric]:
        sampler = self._sampler
        yield CounterMetricFamily(
            "docko_queue_sample_failures",
            "Samples of the jobs table that failed.",
            sampler.failures,
        )
        if sampler.sampled_at is None:
            return
        yield GaugeMetricFamily(
            "docko_queue_sample_age_seconds",
            "Seconds since the docko_queue_* gauges were last sampled from the database.",
            time.monotonic() - sampler.sampled_at,
        )
        jobs = GaugeMetricFamily(
            "docko_queue_jobs",
            f"Jobs per served queue and state in the database, counted up to {COUNT_CAP}.",
            labels=["queue", "state"],
        )
        age = GaugeMetricFamily(
            "docko_queue_oldest_due_age_seconds",
            "Seconds the oldest due job of the queue has waited since its run_at (0: none due).",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "docko_queue_paused",
            "1 while the queue is paused (docko-worker queues pause): no daemon claims from it.",
            labels=["queue"],
        )
        for sample in sampler.samples:
            jobs.add_metric([sample.queue_name, "available"], sample.available)
            jobs.add_metric([sample.queue_name, "running"], sample.running)
            age.add_metric([sample.queue_name], sample.oldest_due_age or 0.0)
            paused.add_metric([sample.queue_name], 1.0 if sample.paused else 0.0)
        yield jobs
        yield age
        yield paused


def build_registry(collector: Collector) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) with ``collector`` in it."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def renderer(registry: CollectorRegistry) -> Callable[[str], tuple[bytes, str]]:
    """A function of the request's Accept header: the body and its content type (the
    Prometheus text format, or OpenMetrics when the scraper asks for it)."""

    def render(accept: str) -> tuple[bytes, str]:
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type

    return render
