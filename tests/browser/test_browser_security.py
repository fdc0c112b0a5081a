"""The dashboard as an admin interface under attack: hostile names, payloads and errors render as
text and run nothing; read-only mode shows no action and refuses forged ones; a wrong password
gets 401; a POST without the session's token, or from another site, changes nothing; every page
carries a strict Content-Security-Policy, and the browser reports no violation of it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from browser_helpers import (
    PASSWORD,
    USER,
    Browser,
    DashboardProcess,
    Database,
    ThreadDaemon,
    basic_auth,
)

pytestmark = pytest.mark.browser

HOSTILE_QUEUE = "<script>window.__pwned = 'queue'</script>"
HOSTILE_TYPE = '"><img src=x onerror="window.__pwned=\'type\'">'
HOSTILE_PAYLOAD = {
    "html": "<script>window.__pwned = 'payload'</script>",
    "attribute": "\"'><svg onload=window.__pwned='svg'>",
    "long": "ab" * 40_000,
    "binary": "\x01\x02\x03\x7f\u202e\ufeff\x1b[31mÿþ€",
    "error": "<img src=x onerror=\"window.__pwned='error'\"> " + "e" * 2000 + " \x07\x08",
}
AUTH = {"Authorization": basic_auth(USER, PASSWORD)}


def test_hostile_names_payloads_and_errors_render_as_text_and_run_nothing(
    chromium: Browser,
    db: Database,
    start_daemon: Callable[..., ThreadDaemon],
    start_dashboard: Callable[..., DashboardProcess],
) -> None:
    start_daemon([HOSTILE_QUEUE])
    job = db.enqueue(HOSTILE_QUEUE, "hostile", HOSTILE_PAYLOAD, max_attempts=1)
    db.enqueue(HOSTILE_QUEUE, HOSTILE_TYPE, HOSTILE_PAYLOAD)  # a type no daemon handles: waits
    db.wait_state(job.id, "failed")
    dashboard = start_dashboard()

    pages = ["/", "/jobs", f"/jobs?queue={HOSTILE_QUEUE}&type={HOSTILE_TYPE}", f"/jobs/{job.id}"]
    for page in pages:
        chromium.get(dashboard.url + page)
        assert chromium.driver.execute_script("return window.__pwned") is None, page
        assert chromium.find_all("img, svg[onload], script:not([src])") == [], page
        assert HOSTILE_QUEUE in chromium.text(), page
        assert chromium.console_errors() == [], page
    assert HOSTILE_PAYLOAD["html"] in chromium.text_of("#payload")
    payload = chromium.text_of("#payload")
    # Control and invisible characters are shown as escapes, never raw.
    assert '"binary": "\\u0001\\u0002\\u0003\\x7f\\u202e\\ufeff\\u001b[31mÿþ€"' in payload
    page = chromium.text()
    assert not [c for c in page if (ord(c) < 32 and c not in "\n\t") or c in "\u202e\ufeff"]
    assert "<img src=x onerror=" in chromium.text_of(".attempt-error")
    assert "\\x07\\x08" in chromium.text_of(".attempt-error")
    assert chromium.driver.execute_script("return document.body.scrollWidth") <= 1280

    status, headers, body = dashboard.request(f"/jobs/{job.id}", headers=AUTH)
    assert status == 200
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert "<script>window" not in body and "<img src" not in body and "<svg" not in body.lower()


def test_read_only_mode_shows_no_action_and_refuses_forged_ones(
    chromium: Browser,
    db: Database,
    start_dashboard: Callable[..., DashboardProcess],
) -> None:
    failed = db.enqueue("documents", "ocr", {"document_id": 1})
    db.execute(
        "UPDATE docko_jobs SET state = 'failed', finished_at = now(), attempt = 3 WHERE id = $1",
        failed.id,
    )
    running = db.enqueue("documents", "ocr", {"document_id": 2})
    dashboard = start_dashboard(DOCKO_DASHBOARD_READ_ONLY="true")
    for page in ["/", "/jobs?state=failed", f"/jobs/{failed.id}", f"/jobs/{running.id}"]:
        chromium.get(dashboard.url + page)
        assert "read-only" in chromium.text_of(".topbar")
        assert (
            chromium.find_all(
                "form[method='post'], button[data-action], #retry-all, "
                "#cancel-all, #retry-job, #cancel-job"
            )
            == []
        ), page
    # A forged request, as a page of the dashboard's own origin could send it.
    forged = chromium.driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch('/queues/pause', {method: 'POST', body: new URLSearchParams({queue: 'documents'})})
          .then((response) => done(response.status));
        """
    )
    assert forged == 403
    for path, body in [
        ("/queues/pause", b"queue=documents"),
        (f"/jobs/{running.id}/cancel", b""),
        (f"/jobs/{failed.id}/retry", b""),
        ("/jobs/bulk", b"action=cancel"),
    ]:
        status, _, text = dashboard.request(path, data=body, headers=AUTH)
        assert status == 403 and "read-only" in text, path
    assert dashboard.request("/jobs/bulk?action=retry", headers=AUTH)[0] == 403
    assert not db.queues()["documents"].paused
    assert db.job(running.id).state.value == "available"
    assert db.job(failed.id).state.value == "failed"


def test_a_wrong_password_gets_401(
    chromium: Browser, db: Database, start_dashboard: Callable[..., DashboardProcess]
) -> None:
    dashboard = start_dashboard()
    for headers in [
        {},
        {"Authorization": basic_auth(USER, "wrong")},
        {"Authorization": basic_auth("admin", PASSWORD)},
        {"Authorization": "Bearer " + PASSWORD},
    ]:
        for path in ["/", "/jobs", "/static/dashboard.js"]:
            status, answer, body = dashboard.request(path, headers=headers)
            assert status == 401, (headers, path)
            assert answer["www-authenticate"].startswith('Basic realm="docko-worker"')
            assert PASSWORD not in body
    assert dashboard.request("/", headers=AUTH)[0] == 200
    chromium.reset(basic_auth(USER, "wrong"))
    chromium.get(dashboard.url + "/")
    assert chromium.status_of(dashboard.url + "/") == 401
    assert chromium.find_all("#live") == []
    assert PASSWORD not in dashboard.output()


def test_a_post_without_the_sessions_token_or_from_another_site_changes_nothing(
    chromium: Browser, db: Database, start_dashboard: Callable[..., DashboardProcess]
) -> None:
    db.enqueue("documents", "ocr", {"document_id": 1})
    dashboard = start_dashboard()
    chromium.get(dashboard.url + "/")
    token = chromium.find("input[name='csrf']").get_attribute("value")
    # The page's own token, without the session cookie it belongs to (another browser).
    status, _, body = dashboard.request(
        "/queues/pause", data=f"queue=documents&csrf={token}".encode(), headers=AUTH
    )
    assert status == 403 and "token" in body
    # In the browser: a forged form without the token, then one from another origin.
    for script in [
        "fetch('/queues/pause', {method: 'POST', body: new URLSearchParams({queue: 'documents'})})",
        "fetch('/queues/pause', {method: 'POST', headers: {'X-Requested-With': 'x'}, "
        "body: new URLSearchParams({queue: 'documents', csrf: 'deadbeef'})})",
    ]:
        status = chromium.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"{script}.then((response) => done(response.status));"
        )
        assert status == 403
    cookie = chromium.driver.get_cookie("docko_csrf")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    status, _, _ = dashboard.request(
        "/queues/pause",
        data=f"queue=documents&csrf={token}".encode(),
        headers={
            **AUTH,
            "Origin": "http://evil.example",
            "Cookie": f"docko_csrf={cookie['value']}",
        },
    )
    assert status == 403
    assert not db.queues()["documents"].paused
    # GETs change nothing: the action paths answer GET with 405.
    assert dashboard.request("/queues/pause?queue=documents", headers=AUTH)[0] == 405
    assert not db.queues()["documents"].paused
