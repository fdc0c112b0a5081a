"""The dashboard's pure pieces: who may listen and connect, credentials, CSRF tokens, the chart's
geometry, how user text is shown, and the command's refusal to listen openly without a password.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import Markup

from docko_worker import cli
from docko_worker.dashboard.chart import minute_chart
from docko_worker.dashboard.data import covered
from docko_worker.dashboard.render import NONE_SHOWN, Links, pretty, shorten, visible, when
from docko_worker.dashboard.security import basic_credentials, check_listen, is_loopback
from docko_worker.errors import ConfigError


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST", "a.localhost"]
)
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", "localhost.evil.com", ""]
)
def test_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_non_loopback_address_needs_a_password() -> None:
    check_listen("127.0.0.1", has_password=False)
    check_listen("0.0.0.0", has_password=True)
    with pytest.raises(ConfigError, match="DOCKO_DASHBOARD_PASSWORD is not set"):
        check_listen("0.0.0.0", has_password=False)


def test_the_command_refuses_to_listen_openly_without_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKO_DASHBOARD_HOST", "0.0.0.0")
    monkeypatch.delenv("DOCKO_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKO_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert cli.main(["dashboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("docko-worker: error: DOCKO_DASHBOARD_HOST=0.0.0.0 is not a loopback")


def test_an_empty_password_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKO_DASHBOARD_PASSWORD", "")
    assert cli.load_config().dashboard_password is None
    monkeypatch.setenv("DOCKO_DASHBOARD_PASSWORD", "s3cret")
    config = cli.load_config()
    assert config.dashboard_password is not None
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic_credentials_are_read_from_the_header() -> None:
    assert basic_credentials(_basic("admin:pa:ss")) == ("admin", "pa:ss")
    assert basic_credentials(_basic("älice:wörd")) == ("älice", "wörd")
    for header in [None, "", "Bearer x", "Basic !!!", _basic("no-colon"), "Basic " + "ÿ"]:
        assert basic_credentials(header) is None


def test_the_chart_stacks_failures_on_completions_newest_on_the_right() -> None:
    series = [(0, 0)] * 60
    series[0] = (10, 0)  # this minute
    series[59] = (5, 5)  # an hour ago
    chart = minute_chart(series, width=600, height=100)
    assert chart.peak == 10 and chart.completed == 15 and chart.failed == 5
    newest = [bar for bar in chart.bars if bar.x == 590]
    assert [bar.kind for bar in newest] == ["completed"] and newest[0].height == 98
    oldest = sorted((bar for bar in chart.bars if bar.x == 0), key=lambda bar: -bar.y)
    assert [bar.kind for bar in oldest] == ["completed", "failed"]
    assert oldest[1].y + oldest[1].height == oldest[0].y  # stacked
    assert "this minute: 10 completed, 0 failed" in newest[0].title
    assert minute_chart([]).empty and minute_chart([]).bars == []


def test_a_capped_read_shades_the_minutes_it_does_not_cover() -> None:
    assert covered(False, {0, 5}) == 60
    assert covered(True, {0, 1, 2, 7}) == 7  # minute 7 partly counted: left out
    assert covered(True, {0}) == 1
    chart = minute_chart([(3, 0)] * 60, width=600, covered_minutes=7)
    assert chart.uncounted_width == 530 and chart.completed == 21
    assert all(bar.x >= 530 for bar in chart.bars)


def test_user_text_shows_control_and_invisible_characters_as_escapes() -> None:
    assert visible("a\tb\nc") == "a\tb\nc"
    assert visible("\x00\x07\x1b[31m\x7f\u202e\u200b\ufeffÿ€") == (
        "\\x00\\x07\\x1b[31m\\x7f\\u202e\\u200b\\ufeffÿ€"
    )
    assert shorten("x" * 50, 10) == "x" * 9 + "…"
    assert shorten("a \n  b", 10) == "a b"
    text, cut = pretty({"k": "v" * 300_000})
    assert cut and len(text) == 200_000


def test_times_are_shown_as_ages_with_the_exact_time_escaped_in_markup() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    shown = when(now - timedelta(minutes=3), now)
    assert isinstance(shown, Markup)
    assert shown == (
        '<time datetime="2026-01-02T03:01:05+00:00" title="2026-01-02 03:01:05.000 UTC">'
        "3 min ago</time>"
    )
    assert NONE_SHOWN in when(None, now)


def test_links_stay_under_the_path_the_dashboard_is_mounted_at() -> None:
    links = Links("/admin/docko/")
    assert links("/jobs", queue="a&b", state=None, type="") == "/admin/docko/jobs?queue=a%26b"
    assert Links("")("/") == "/"
