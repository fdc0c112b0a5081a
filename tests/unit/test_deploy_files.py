"""The monitoring files in ``deploy/``: the Prometheus alert rules pass ``promtool check rules``
and their own ``promtool test rules``, the compose file's Prometheus configuration passes
``promtool check config``; the Grafana dashboard parses and queries only metrics the daemon
exports (read from a real render of its collector)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from docko_worker.exposition import DaemonCollector, build_registry
from docko_worker.metrics import Metrics
from docko_worker.sampler import QueueSampler
from docko_worker.store import QueueSample

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "docko-alerts.yml"
RULES_TESTS = ROOT / "deploy" / "prometheus" / "docko-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "docko-worker.json"

# A metric name in PromQL: what precedes a label matcher, a range or an operator.
METRIC = re.compile(r"\b((?:docko|process|python)_[a-z0-9_]+)\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's prometheus package "
            "(sudo apt-get install --no-install-recommends prometheus)"
        )
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=RULES.parent,
    )


def test_alert_rules_pass_promtool_check() -> None:
    result = run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_compose_files_prometheus_configuration_passes_promtool_check() -> None:
    result = run("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_say() -> None:
    result = run("test", "rules", RULES_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


class _State:
    """A running daemon as the collector sees it, every optional part present."""

    worker_slots = 4
    held_count = 1
    outcomes_pending = 0
    listen_connected = True
    ready = True

    def running_by_type(self) -> dict[tuple[str, str], int]:
        return {("documents", "ocr"): 1}


def exported_names() -> set[str]:
    """Every sample name a daemon's /metrics carries (with _total, _bucket, _sum, _count)."""
    metrics = Metrics()
    metrics.prime(["documents"], ["ocr"])
    series = metrics.series[("documents", "ocr")]
    series.duration.observe(0.2)  # histograms appear with their first job
    series.wait.observe(0.01)
    sampler = QueueSampler(store=None, queues=["documents"], interval=5)  # type: ignore[arg-type]
    sampler.samples = [QueueSample("documents", 3, 1, 12.5, 4)]
    sampler.sampled_at = 0.0
    registry = build_registry(DaemonCollector(metrics, sampler, _State(), "0.0.0"))
    text = generate_latest(registry).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["query"]["query"])
    return found


def test_the_dashboard_parses_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_names()
    expressions = queries(dashboard)

    assert dashboard["uid"] and dashboard["title"] == "docko-worker"
    assert len(expressions) >= 10
    used = {name for expression in expressions for name in METRIC.findall(expression)}
    assert used, "the dashboard names no metric"
    assert used <= exported, f"not exported by the daemon: {sorted(used - exported)}"
    assert {panel["id"] for panel in dashboard["panels"]} == set(
        range(1, len(dashboard["panels"]) + 1)
    )


def test_the_alert_rules_query_only_exported_metrics() -> None:
    text = RULES.read_text()
    expressions = re.findall(r"expr: (.+?)\n\s+(?:for|labels):", text, flags=re.DOTALL)
    used = {name for expression in expressions for name in METRIC.findall(expression)}
    assert len(expressions) == 5
    assert used <= exported_names(), sorted(used - exported_names())
