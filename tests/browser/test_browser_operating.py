"""An operator at the dashboard, in a real browser, over a real daemon's workload: the overview
shows the queues, a failed job is found, opened and retried, a running job cancelled, a queue
paused and resumed; the pages refresh themselves, keeping the filters and the scroll position.
The overview and job page screenshots of the README are taken here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from browser_helpers import SEEN_WITHIN, Browser, DashboardProcess, Database, ThreadDaemon
from conftest import SCREENSHOTS, SLOW_CANCELLED, SLOW_STARTED
from selenium.webdriver.support.select import Select

from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.browser

# An hour of finished jobs, as a busy daemon leaves them: a few hundred a minute, some failures.
HISTORY = """
INSERT INTO docko_jobs (id, queue_name, job_type, payload, max_attempts, state, attempt,
                        worker_id, created_at, updated_at, finished_at, last_error)
SELECT gen_random_uuid(), queue_name, job_type, '{}', 3,
       CASE WHEN failed THEN 'failed' ELSE 'completed' END::docko_job_state, 1,
       'ocr-7f9c:1:3be2a1c0', at - interval '2 seconds', at, at,
       CASE WHEN failed THEN 'TimeoutError: the OCR service did not answer' END
FROM (
    SELECT (ARRAY['documents', 'documents', 'previews', 'emails'])[1 + k % 4] AS queue_name,
           (ARRAY['ocr', 'thumbnail', 'thumbnail', 'send'])[1 + k % 4] AS job_type,
           now() - make_interval(secs => minute * 60 + 1 + k * 58.0 / jobs) AS at,
           -- An incident 20 minutes ago: the OCR service timed out for five minutes.
           k % 53 = 0 OR (minute BETWEEN 18 AND 22 AND k % 4 < 2 AND k % 3 = 0) AS failed
    FROM generate_series(0, 59) AS minute,
         LATERAL (SELECT (120 + 70 * sin(minute / 9.0) + 30 * sin(minute / 2.7))::int AS jobs)
             AS per_minute,
         generate_series(1, per_minute.jobs) AS k
) AS history
"""


def workload(db: Database) -> dict[str, str]:
    """Jobs of every kind through the daemon; returns the ids of the notable ones."""
    for page in range(1, 7):
        db.enqueue("documents", "ocr", {"document_id": 4000 + page, "page": page})
        db.enqueue("previews", "thumbnail", {"document_id": 4000 + page, "size": [320, 240]})
    db.enqueue("emails", "send", {"to": "ops@example.com", "template": "digest"})
    failed = db.enqueue("documents", "broken", {"document_id": 4113, "page": 7})
    flaky = db.enqueue(
        "documents",
        "flaky",
        {"document_id": 4242, "pages": 12, "language": "deu+eng", "source": "s3://scans/4242.pdf"},
    )
    db.wait_state(failed.id, "failed")
    db.wait_state(flaky.id, "failed")
    db.pause("held")
    for n in range(4):
        db.enqueue("held", "thumbnail", {"document_id": 5000 + n})
    return {"failed": str(failed.id), "flaky": str(flaky.id)}


# The overview's cards, daemons and chart, read in one go (see the test below).
OVERVIEW_SNAPSHOT = """
const cards = {};
for (const card of document.querySelectorAll("article.card")) {
    const counts = {};
    for (const cell of card.querySelectorAll("[class*='count-']")) {
        const state = [...cell.classList].find(
            (c) => c.startsWith("count-") && c !== "count-value"
        );
        const value = cell.querySelector(".count-value");
        if (state && value) counts[state.slice("count-".length)] = value.textContent.trim();
    }
    const pill = card.querySelector(".pill");
    cards[card.dataset.queue] = {counts: counts, pill: pill ? pill.textContent : ""};
}
const daemons = document.querySelector("#daemons-title + .table-wrap");
return {
    cards: cards,
    daemons: daemons ? daemons.innerText : "",
    completed_bars: document.querySelectorAll(".chart .bar-completed").length,
};
"""


@dataclass(frozen=True)
class Busy:
    """A daemon that ran ``workload``, and a dashboard over it."""

    ids: dict[str, str]
    dashboard: DashboardProcess


@pytest.fixture
def busy(
    db: Database,
    start_daemon: Callable[..., ThreadDaemon],
    start_dashboard: Callable[..., DashboardProcess],
) -> Busy:
    start_daemon()
    ids = workload(db)
    return Busy(ids, start_dashboard())


def test_overview_shows_the_queues_of_a_real_workload_and_refreshes_itself(
    chromium: Browser,
    db: Database,
    start_daemon: Callable[..., ThreadDaemon],
    start_dashboard: Callable[..., DashboardProcess],
) -> None:
    daemon = start_daemon()
    workload(db)
    db.execute(HISTORY)
    dashboard = start_dashboard()
    chromium.get(dashboard.url + "/")

    # Read in one script: the page swaps its fragments every few seconds, and an element read
    # across a swap is stale.
    page = chromium.driver.execute_script(OVERVIEW_SNAPSHOT)
    shown = page["cards"]
    infos = db.queues()
    assert set(shown) == set(infos) == {"documents", "previews", "emails", "held"}
    for name, info in infos.items():
        card = shown[name]
        for state, count in info.counts.items():
            assert card["counts"].get(state) == f"{count:,}", (name, state)
        assert ("paused" in card["pill"]) is info.paused
    daemons = page["daemons"]
    assert daemon.worker_id is not None and daemon.worker_id in daemons
    assert "ocr-7f9c:1:3be2a1c0" in daemons  # the history's daemon, seen in the last 5 minutes
    assert page["completed_bars"] > 50
    chromium.screenshot(SCREENSHOTS / "overview.png")

    # The page refreshes itself: new jobs show up, the scroll position stays.
    chromium.driver.set_window_size(1280, 500)
    chromium.driver.execute_script("window.scrollTo(0, 300)")
    scrolled = chromium.driver.execute_script("return window.scrollY")
    for n in range(3):
        db.enqueue("held", "thumbnail", {"document_id": 6000 + n})
    wait_until_blocking(
        lambda: chromium.text_of("article[data-queue='held'] .count-available .count-value") == "7",
        SEEN_WITHIN,
        message="the held queue's card to show 7 available jobs without a reload",
    )
    assert chromium.driver.execute_script("return window.scrollY") == scrolled
    assert chromium.console_errors() == []

    # On a phone, in dark mode.
    chromium.driver.set_window_size(1280, 900)
    chromium.phone()
    chromium.color_scheme("dark")
    chromium.get(dashboard.url + "/")
    assert chromium.driver.execute_script("return document.documentElement.scrollWidth") <= 390
    chromium.screenshot(SCREENSHOTS / "overview-phone-dark.png", full_page=False)


def test_an_operator_finds_a_failed_job_sees_its_errors_and_retries_it(
    chromium: Browser, db: Database, busy: Busy
) -> None:
    ids, dashboard = busy.ids, busy.dashboard
    chromium.get(dashboard.url + "/jobs")

    Select(chromium.find("#filter-state")).select_by_value("failed")
    Select(chromium.find("#filter-queue")).select_by_value("documents")
    chromium.click("#apply-filters")
    rows = chromium.find_all("tbody tr")
    assert {row.get_attribute("data-state") for row in rows} == {"failed"}
    assert {row.get_attribute("data-job-id") for row in rows} == {ids["failed"], ids["flaky"]}

    # The filters survive the page's own refresh.
    wait_until_blocking(
        lambda: chromium.find("#live").get_attribute("data-refreshed-at"),
        SEEN_WITHIN,
        message="the jobs page to refresh itself",
    )
    assert "state=failed" in chromium.driver.current_url
    listed = chromium.driver.execute_script(
        "const state = document.querySelector('#filter-state');"
        " return {state: state.options[state.selectedIndex].text,"
        " failed: document.querySelectorAll(\"tbody tr[data-state='failed']\").length};"
    )
    assert listed["state"].endswith("failed")
    assert listed["failed"] == 2

    chromium.click(f"tr[data-job-id='{ids['flaky']}'] a")
    # Read in one script, as the page refreshes itself (see OVERVIEW_SNAPSHOT).
    errors = chromium.driver.execute_script(
        "return [...document.querySelectorAll('.attempt-error')].map((e) => ({"
        " number: e.querySelector('.attempt-number').innerText, text: e.innerText,"
        " title: e.querySelector('time').getAttribute('title'),"
        " stamp: e.querySelector('time').innerText}));"
    )
    assert [error["number"] for error in errors] == ["attempt 3", "attempt 2", "attempt 1"]
    for n, error in zip((3, 2, 1), errors, strict=True):
        assert f"attempt {n}: the OCR service did not answer" in error["text"]
        assert error["title"].endswith(" UTC")  # the exact time, on hover
        assert error["stamp"].endswith("ago") or error["stamp"] == "just now"
    assert '"language": "deu+eng"' in chromium.text_of("#payload")
    chromium.screenshot(SCREENSHOTS / "job.png")

    chromium.click("#retry-job")
    assert "retried" in chromium.text_of(".notice")
    chromium.wait_for("article.job[data-state='completed']", "the job page to show it completed")
    assert db.job(ids["flaky"]).state.value == "completed"

    chromium.get(dashboard.url + "/jobs?queue=documents")
    row = chromium.driver.execute_script(
        "const row = document.querySelector(arguments[0]);"
        " return {state: row.dataset.state, text: row.innerText};",
        f"tr[data-job-id='{ids['flaky']}']",
    )
    assert row["state"] == "completed"
    assert "completed" in row["text"]
    assert chromium.console_errors() == []


def test_retry_everything_a_filter_matches_after_a_confirmation_with_the_count(
    chromium: Browser, db: Database, busy: Busy
) -> None:
    ids, dashboard = busy.ids, busy.dashboard
    chromium.get(dashboard.url + "/jobs?queue=documents&state=failed")
    chromium.click("#retry-all")
    assert chromium.text_of("h1") == "Retry 2 failed jobs?"
    chromium.click("#confirm")
    assert "Retried 2 jobs." in chromium.text_of(".notice")
    db.wait_state(ids["flaky"], "completed")
    db.wait_state(ids["failed"], "failed")  # broken: fails its new attempt too


def test_a_cancel_stops_a_running_slow_job(
    chromium: Browser,
    db: Database,
    start_daemon: Callable[..., ThreadDaemon],
    start_dashboard: Callable[..., DashboardProcess],
) -> None:
    start_daemon()
    job = db.enqueue("documents", "slow", {"document_id": 77, "pages": 900})
    db.wait_state(job.id, "running")
    assert SLOW_STARTED.wait(SEEN_WITHIN)
    dashboard = start_dashboard()
    chromium.get(f"{dashboard.url}/jobs/{job.id}")
    chromium.find("input[name='reason']").send_keys("runaway: 900 pages")
    chromium.click("#cancel-job", confirm=True)
    chromium.wait_for("article.job[data-state='cancelled']", "the job page to show it cancelled")
    assert SLOW_CANCELLED.is_set()
    cancelled = db.job(job.id)
    assert cancelled.state.value == "cancelled"
    assert cancelled.last_error == "Cancelled: runaway: 900 pages"


def test_pause_and_resume_a_queue(
    chromium: Browser,
    db: Database,
    start_daemon: Callable[..., ThreadDaemon],
    start_dashboard: Callable[..., DashboardProcess],
) -> None:
    start_daemon()
    dashboard = start_dashboard()
    db.enqueue("documents", "ocr", {"document_id": 1})  # the queue shows up
    chromium.get(dashboard.url + "/")
    card = "article[data-queue='documents']"
    chromium.wait_for(f"{card} button[data-action='pause']", "a pause button")
    chromium.click(f"{card} button[data-action='pause']")
    assert "Queue paused" in chromium.text_of(".notice")
    assert "paused" in chromium.text_of(f"{card} .pill")
    assert db.queues()["documents"].paused

    held = db.enqueue("documents", "ocr", {"document_id": 2})
    other = db.enqueue("previews", "thumbnail", {"document_id": 2})
    db.wait_state(other.id, "completed")
    assert db.job(held.id).state.value == "available"

    chromium.click(f"{card} button[data-action='resume']")
    assert "Queue resumed" in chromium.text_of(".notice")
    db.wait_state(held.id, "completed")
    assert not db.queues()["documents"].paused
