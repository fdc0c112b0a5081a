"""The ``latest.md`` section of docko-worker's cliff scenarios (``results["docko_cliffs"]``)."""

from __future__ import annotations

import math
from typing import Any

from .cliffs import RESULTS_KEY

DASH = "\u2013"


def _n(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return f"{value:,.{digits}f}"


def _yes(flag: Any) -> str:
    return "yes" if flag else "**no**"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _ok_runs(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [run for run in (entry or {}).get("runs", []) if "error" not in run]


def _backlog(entry: dict[str, Any]) -> list[str]:
    out = [
        "### Unknown-type backlog",
        "",
        "Idle-worker latency (as above: warm-up, 1 s to settle, jobs enqueued one by one) on an "
        "empty table, then with that many jobs of a type the daemon has no handler for queued "
        "first in the same queue, due now (`ANALYZE`d). Target: p99 at most max(10 ms, 2"
        "\u00d7 clean). Then a daemon polling every 60 s with `DOCKO_HTTP_PORT` set: claim "
        'statements (`docko_claim_size_count`; empty: its `le="0"` bucket) over an idle '
        "window and over one in which as many jobs of the unhandled type arrive one by one. "
        "Target: no claim (the poll accounts for none).",
        "",
    ]
    for run in _ok_runs(entry):
        out += [
            "| Table | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | Exactly once |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for label, part in (
            ("empty (clean)", run["clean"]),
            (f"{run['backlog']:,} unhandled jobs queued first", run["loaded"]),
        ):
            cells = [_n(part[key]) for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
            out.append(_row([label, *cells, _yes(part["exactly_once"])]))
        wake = run["wakeups"]
        out += [
            "",
            f"p99 limit {_n(run['p99_limit_ms'])} ms: met: {_yes(run['latency_target_met'])}.",
            "",
            "| Window | Seconds | Claim statements | Empty claims | Expected from the poll "
            "| Daemon CPU (s) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, part in (
            ("idle", wake["idle"]),
            (
                f"{wake['jobs']} unhandled jobs arriving, {wake['interval_ms']:g} ms apart",
                wake["arriving"],
            ),
        ):
            out.append(
                _row(
                    [
                        label,
                        _n(part["seconds"]),
                        _n(part["claims"], 0),
                        _n(part["empty_claims"], 0),
                        _n(part["poll_claims_expected"], 2),
                        _n(part["daemon_cpu_seconds"], 2),
                    ]
                )
            )
        out += ["", f"No wake-up for unhandled jobs: {_yes(run['wakeup_target_met'])}.", ""]
    return out


def _vacuum_note(run: dict[str, Any]) -> str:
    if run.get("vacuum_emulated"):
        return (
            "The server runs with `autovacuum` off, so nothing would ever remove the dead "
            "versions: the harness emulates autovacuum on `docko_jobs` by the server's own "
            f"settings (every `autovacuum_naptime`, {run['autovacuum_naptime']}, from the load's "
            "start; `VACUUM` and/or `ANALYZE` past their thresholds, throttled by the autovacuum "
            "cost settings; `harness/cliff_vacuum.py`)."
        )
    return f"Server `autovacuum`: {run.get('autovacuum', DASH)} (not emulated)."


def _vacuums(run: dict[str, Any]) -> str:
    done = [
        f"{v['command'].split(' docko_jobs')[0]} at {v['at_s']:+.0f} s ({v['seconds']:.1f} s, "
        f"{v['dead_before']:,} dead before)"
        for v in run.get("vacuums", [])
    ]
    return "; ".join(done) or "none"


def _held(entry: dict[str, Any]) -> list[str]:
    runs = _ok_runs(entry)
    if not runs:
        return []
    first = runs[0]
    out = [
        "### Held snapshot",
        "",
        f"A daemon under a steady {first['rate']:,} jobs/s ({first['per_call']} per "
        f"`enqueue_many` call); after {first['before_s']:g} s another connection holds a "
        f"`REPEATABLE READ` snapshot (idle in transaction) for {first['hold_s']:g} s, then rolls "
        f"back; the load goes on {first['after_s']:g} s. Pickup latency is enqueue to handler "
        "start. Targets: p99 of every window at most 50 ms; after the release, a 5 s window's p99 "
        "back to the pre-hold level (the worst pre-hold 5 s window) within 30 s "
        "(\u2013: not within the run); the backlog (enqueued minus started) back for good: from "
        "when on it stayed at most its pre-hold maximum plus one call's jobs. Dead tuples: "
        "`n_dead_tup` of `docko_jobs` at the release per job run during the hold. "
        + _vacuum_note(first),
        "",
        "| Retention (s) | p99 before / hold / after (ms) | max during hold (ms) "
        "| Worst window p99 (ms) | p99 back after release (s) | p99 \u2264 50 ms after release (s) "
        "| Backlog max before / hold "
        "| Backlog back for good after (s) | Dead tuples per job | Table MiB at hold / release "
        "| Exactly once | p99 \u2264 50 ms | Back \u2264 30 s |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---|---|---|---|",
    ]
    for run in runs:
        phases, recovery = run["phases"], run["recovery"]
        out.append(
            _row(
                [
                    f"{run['retention']:,}",
                    " / ".join(_n(phases[p]["p99_ms"]) for p in ("before", "hold", "after")),
                    _n(phases["hold"]["max_ms"]),
                    _n(run["worst_window_p99_ms"]),
                    _n(recovery["latency_back_after_s"], 0),
                    _n(recovery.get("p99_under_target_after_s"), 0),
                    f"{recovery['backlog_max_before']:,} / {recovery['backlog_max_hold']:,}",
                    _n(recovery["backlog_back_after_s"]),
                    _n(run["dead_tuples_per_job"], 2),
                    f"{_n(run['table_mib_at_hold'])} / {_n(run['table_mib_at_release'])}",
                    _yes(run["exactly_once"]),
                    _yes(run["p99_target_met"]),
                    _yes(recovery["target_met"]),
                ]
            )
        )
    for run in runs:
        out += [
            "",
            f"Retention {run['retention']:,}: per window (seconds from the start of the hold, "
            "by enqueue time; CPU: the daemon's share of one core; vacuums: the table's count "
            f"so far). Vacuums run: {_vacuums(run)}.",
            "",
            "| Window (s) | Phase | Jobs | p50 (ms) | p99 (ms) | max (ms) | Starts/s "
            "| Dead tuples | Vacuums | Daemon CPU | Enqueue call p99 (ms) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in run["windows"]:
            share = w.get("daemon_cpu_share")
            out.append(
                _row(
                    [
                        f"{w['from_s']:.0f}{DASH}{w['to_s']:.0f}",
                        w["phase"],
                        f"{w['jobs']:,}",
                        _n(w["p50_ms"]),
                        _n(w["p99_ms"]),
                        _n(w["max_ms"]),
                        _n(w["starts_per_s"], 0),
                        _n(w.get("n_dead_tup"), 0),
                        _n(w.get("vacuums"), 0),
                        DASH if share is None else f"{share:.0%}",
                        _n(w["enqueue_call_p99_ms"]),
                    ]
                )
            )
    out.append("")
    return out


def _queues(entry: dict[str, Any]) -> list[str]:
    runs = _ok_runs(entry)
    if not runs:
        return []
    first = runs[0]
    count, per = first["queues"], first["per_queue"]
    out = [
        "### Many queues",
        "",
        f"{count * per:,} no-op jobs burned down by one daemon (the benchmark's settings, "
        f"retention 0): in one queue, then as {per} in each of {count} queues, all of them in "
        "`DOCKO_QUEUES`, each in a fresh database. Target: the many-queue rate at least "
        "0.8\u00d7 the one-queue rate. Per queue, its last handler start after the run's first "
        "(min / median / max) shows whether a queue waited for the others: the queues are "
        "filled one after the other, so a claim that takes the oldest jobs first finishes them "
        "in that order, and the latest is the processing time's end.",
        "",
        "| Run | One queue (jobs/s) | "
        f"{count} queues (jobs/s) | Ratio | Processing-rate ratio "
        "| Processing (s) | Last start per queue min / median / max (s) | Latest first start (s) "
        "| Exactly once | \u2265 0.8\u00d7 |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for index, run in enumerate(runs, 1):
        many = run["many_queues"]
        spread = " / ".join(
            _n(many.get(key), 2)
            for key in ("last_start_min_s", "last_start_median_s", "last_start_max_s")
        )
        out.append(
            _row(
                [
                    str(index),
                    _n(run["one_queue"]["throughput"], 0),
                    _n(many["throughput"], 0),
                    f"{run['ratio']:.2f}\u00d7",
                    f"{run['processing_ratio']:.2f}\u00d7",
                    _n(many.get("processing_seconds"), 2),
                    spread,
                    _n(many.get("first_start_max_s"), 2),
                    _yes(run["exactly_once"]),
                    _yes(run["target_met"]),
                ]
            )
        )
    out.append("")
    return out


def _long(entry: dict[str, Any]) -> list[str]:
    runs = _ok_runs(entry)
    if not runs:
        return []
    first = runs[0]
    out = [
        "### Many long-running jobs held",
        "",
        f"{first['jobs']:,} jobs that each sleep {first['sleep_s']:g} s, one daemon with "
        f"`DOCKO_WORKER_COUNT={first['jobs']}`, `DOCKO_VISIBILITY_TIMEOUT={first['lease_s']:g}`, "
        f"`DOCKO_HEARTBEAT_INTERVAL={first['heartbeat_interval_s']:g}`, default retention. "
        "Heartbeat duration from `pg_stat_activity` sampled every "
        f"{first['sample_ms']:g} ms: `state_change - query_start` once the statement is seen "
        "finished (exact), else the longest it was seen running (a lower bound); client-side: "
        "the same statement (`extend_leases`) over every running row from the harness's "
        "connection, half an interval after a daemon heartbeat. Leases lost: jobs with "
        "`attempt > 1` and `lease_lost` log lines. Targets: every heartbeat under 50 ms, none "
        "lost.",
        "",
        "| Heartbeats seen (exact) | p50 / p95 / max (ms) | Client-side (ms) "
        "| Leases lost (attempt > 1 / logged) | Start spread (s) | All done after (s) "
        "| Peak RSS (MiB) | Exactly once | Targets met | Heartbeat seen waiting on (samples) |",
        "|---|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for run in runs:
        beats = run["heartbeat_ms"]
        client = ", ".join(_n(check["ms"]) for check in run["cross_checks"]) or DASH
        out.append(
            _row(
                [
                    f"{run['heartbeats']} ({run['heartbeats_exact']})",
                    " / ".join(_n(beats[key]) for key in ("p50_ms", "p95_ms", "max_ms")),
                    client,
                    f"{run['leases_lost']} / {run['log_events']['lease_lost']}",
                    _n(run["start_spread_s"]),
                    _n(run["seconds"]),
                    _n(run["peak_rss_mb"], 0),
                    _yes(run["exactly_once"]),
                    _yes(run["target_met"]),
                    ", ".join(
                        f"{wait} {count}" for wait, count in run["heartbeat_waits_sampled"].items()
                    ),
                ]
            )
        )
    out.append("")
    return out


def cliffs_section(results: dict[str, Any]) -> list[str]:
    """The markdown lines of the cliff scenarios, or none when none ran."""
    cliffs = results.get(RESULTS_KEY)
    if not cliffs:
        return []
    out = [
        "## docko-worker cliffs",
        "",
        "Loads under which a queue daemon can fall off a cliff; docko-worker only, one run each "
        "unless stated, each in fresh databases. Raw numbers in `latest.json` under "
        f"`{RESULTS_KEY}`.",
        "",
    ]
    if "backlog" in cliffs:
        out += _backlog(cliffs["backlog"])
    if "held_snapshot" in cliffs:
        out += _held(cliffs["held_snapshot"])
    if "many_queues" in cliffs:
        out += _queues(cliffs["many_queues"])
    if "long_jobs" in cliffs:
        out += _long(cliffs["long_jobs"])
    for entry in cliffs.values():
        for index, run in enumerate(entry["runs"], 1):
            if "error" in run:
                first_line = run["error"].strip().splitlines()[0]
                out.append(f"- {entry['label']}, run {index}: FAILED: {first_line}")
    out.append("")
    return out
