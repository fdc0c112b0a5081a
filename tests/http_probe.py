"""Talking to a daemon's HTTP endpoint from the tests: plain GETs, and ``/metrics`` read with
prometheus_client's own text parser.

Blocking calls (``urllib``): async tests run them with ``asyncio.to_thread``, so the daemon's
event loop, which serves them, keeps turning. Imported as ``tests.http_probe``.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

#: Seconds a request may take: generous, a daemon whose loop turns answers in milliseconds.
REQUEST_TIMEOUT = 10.0


def get(url: str, timeout: float = REQUEST_TIMEOUT) -> tuple[int, str]:
    """``(status, body)`` of a GET, an error status included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Scrape:
    """One scrape of ``/metrics``: every sample, by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self.families.values():
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels``; KeyError naming it if there is none."""
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            raise KeyError(f"no sample {name}{labels} in the scrape:\n{self.text}")
        return self.samples[key]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and wanted <= sample_labels
        )

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(base_url: str, headers: Mapping[str, str] | None = None) -> Scrape:
    request = urllib.request.Request(base_url + "/metrics", headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        assert response.status == 200
        return Scrape(response.read().decode())
