"""`docko-worker run` with DOCKO_HTTP_PORT: /metrics after a known workload, /readyz through
SIGTERM, /healthz while a handler blocks the event loop, and ports it cannot have."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import pytest
from e2e_helpers import (
    START_TIMEOUT,
    Daemon,
    Daemons,
    Database,
    daemon_env,
    describe_result,
    enqueue,
    run_cli,
)

from tests.http_probe import Scrape, get, scrape
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e


def http_base(daemon: Daemon) -> str:
    """The endpoint's address, from the daemon's ``http_listening`` line (DOCKO_HTTP_PORT=0)."""
    [listening] = daemon.wait_for_event("http_listening")
    return f"http://{listening['host']}:{listening['port']}"


def answer(url: str, status: int, daemon: Daemon) -> str:
    """Wait until ``url`` answers ``status``; returns the body."""

    def check() -> str | None:
        code, body = get(url)
        return body if code == status else None

    return wait_until_blocking(check, START_TIMEOUT, message=f"{url} answering {status}")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_metrics_count_a_known_workload(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_HTTP_PORT="0")
    daemon = daemons.start(env)
    ok = [enqueue(env, "e2e_ok", {"n": n}) for n in range(5)]
    failing = enqueue(env, "e2e_fail", {}, "--max-attempts", "1")
    for job_id in ok:
        db.wait_for_state(job_id, "completed", daemons=[daemon])
    db.wait_for_state(failing, "failed", daemons=[daemon])
    base = http_base(daemon)

    def written() -> Scrape | None:
        metrics = scrape(base)
        return metrics if metrics.value("docko_outcome_write_size_sum") == 6 else None

    metrics = wait_until_blocking(written, START_TIMEOUT, message="all 6 outcomes written")

    def jobs(job_type: str, outcome: str) -> float:
        return metrics.value("docko_jobs_total", queue="e2e", job_type=job_type, outcome=outcome)

    assert jobs("e2e_ok", "completed") == 5
    assert jobs("e2e_fail", "failed") == 1
    assert jobs("e2e_fail", "retried") == 0
    assert metrics.total("docko_job_duration_seconds_count") == 6
    assert metrics.value("docko_claim_size_sum") == 6
    assert metrics.value("docko_ready") == 1
    assert answer(base + "/readyz", 200, daemon) == "ready\n"
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()


def test_readyz_turns_503_on_sigterm_before_the_drain_ends(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_HTTP_PORT="0", DOCKO_SHUTDOWN_TIMEOUT="60")
    daemon = daemons.start(env)
    job_id = enqueue(env, "e2e_slow", {"seconds": 6})
    db.wait_for_run(job_id, 1, daemons=[daemon])
    base = http_base(daemon)
    assert answer(base + "/readyz", 200, daemon) == "ready\n"

    daemon.send(signal.SIGTERM)

    assert answer(base + "/readyz", 503, daemon) == "shutting down\n"
    [run] = db.runs(job_id)
    assert run["finished_at"] is None, "503 came while the job was still running"
    assert get(base + "/healthz") == (200, "ok\n"), "alive while it drains"
    assert daemon.wait_exit() == 0, daemon.describe()
    assert db.job(job_id)["state"] == "completed"


def test_healthz_gets_no_answer_while_a_handler_blocks_the_event_loop(
    db: Database, daemons: Daemons, database_url: str, base_env: dict[str, str]
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_HTTP_PORT="0")
    daemon = daemons.start(env)
    base = http_base(daemon)
    assert get(base + "/healthz") == (200, "ok\n")
    job_id = enqueue(env, "e2e_block", {"seconds": 20})
    db.wait_for_run(job_id, 1, daemons=[daemon])

    # A probe with a timeout far shorter than the blockage, as a liveness probe would send.
    with pytest.raises(TimeoutError):
        get(base + "/healthz", timeout=2)

    db.wait_for_state(job_id, "completed", daemons=[daemon], timeout=60)
    assert get(base + "/healthz") == (200, "ok\n"), "answers again once the loop turns"
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0, daemon.describe()


def test_a_port_in_use_stops_run_with_one_line(
    db: Database, database_url: str, base_env: dict[str, str], taken_port: int
) -> None:
    env = daemon_env(base_env, database_url, DOCKO_HTTP_PORT=str(taken_port))
    result = run_cli(["run"], env, timeout=30)

    assert result.returncode == 2, describe_result(result)
    last = result.stderr.splitlines()[-1]
    assert last == (
        f"docko-worker: error: cannot serve HTTP on 127.0.0.1:{taken_port} "
        "(DOCKO_HTTP_HOST, DOCKO_HTTP_PORT): address already in use"
    ), describe_result(result)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_an_invalid_port_stops_run_with_one_line(port: str, base_env: dict[str, str]) -> None:
    # Nothing listens on port 1: a daemon that accepted the setting would wait for it.
    env = daemon_env(base_env, "postgresql://u@127.0.0.1:1/db", DOCKO_HTTP_PORT=port)
    result = run_cli(["run"], env, timeout=20)

    assert result.returncode == 2, describe_result(result)
    [line] = result.stderr.splitlines()
    assert line.startswith("docko-worker: error: invalid configuration: DOCKO_HTTP_PORT: "), line
