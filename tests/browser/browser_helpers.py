"""The browser layer's machinery: Chromium through Selenium, the dashboard as users run it, a real
daemon in a thread of the test process, and the test's database.

- ``Browser``: Debian's ``chromium`` driven through ``chromium-driver`` (never a browser of
  Selenium's own download: the machine has no internet), headless, with a fresh profile and
  the background connections Chromium would try turned off. Credentials go in an
  ``Authorization`` header set through the DevTools protocol, on every request the page makes.
- ``DashboardProcess``: ``docko-worker dashboard`` in a subprocess, configured by environment
  variables only, its output kept in a file for failure messages.
- ``ThreadDaemon``: ``Queue.start`` with handlers of the test, on an event loop of its own in a
  thread, so that the tests (blocking, as Selenium is) and the daemon run side by side.
- ``Database``: blocking helpers over the async API (enqueue, look up, pause).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from docko_worker import Config, Job, Queue
from docko_worker.operations import QueueInfo
from tests.waiting import wait_until_blocking

T = TypeVar("T")

CHROMIUM = os.environ.get("DOCKO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DOCKO_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install -y --no-install-recommends chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
)
CLI = str(Path(sys.executable).with_name("docko-worker"))
USER = "operator"
PASSWORD = "correct horse battery staple"
# Seconds a page may take to show what the database says: a refresh is every 5 s.
SEEN_WITHIN = 30.0


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Browser:
    """One headless Chromium for the session; each test sets its own credentials."""

    def __init__(self) -> None:
        missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
        if missing:
            pytest.fail(
                f"the browser tests need Debian's Chromium and its driver ({', '.join(missing)} "
                f"not found): {INSTALL_HINT}"
            )
        self.profile = tempfile.mkdtemp(prefix="docko-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd("Network.enable", {})

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def reset(self, authorization: str | None) -> None:
        """A clean slate for a test: its credentials, no cookies, desktop size, light mode."""
        headers = {} if authorization is None else {"Authorization": authorization}
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.color_scheme("light")
        self.driver.set_window_size(1280, 900)
        self.driver.get("about:blank")
        self.driver.get_log("browser")  # drop what earlier tests left
        self.driver.get_log("performance")

    def status_of(self, url: str) -> int | None:
        """The HTTP status the browser got for ``url`` (since the last call)."""
        status = None
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.responseReceived":
                response = message["params"]["response"]
                if response["url"] == url:
                    status = int(response["status"])
        return status

    def color_scheme(self, scheme: str) -> None:
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )

    def phone(self) -> None:
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
        )

    def get(self, url: str) -> None:
        self.driver.get(url)

    def click(self, css: str, *, confirm: bool = False) -> None:
        """Click what ``css`` finds (accepting the confirmation it asks for, with ``confirm``),
        and wait for the page it leads to (a form's answer)."""
        page = self.find("html")
        self.find(css).click()
        wait = WebDriverWait(self.driver, SEEN_WITHIN)
        if confirm:
            wait.until(expected_conditions.alert_is_present())
            self.driver.switch_to.alert.accept()
        wait.until(expected_conditions.staleness_of(page))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.text_of("body")

    def text_of(self, css: str) -> str:
        """The rendered text of the first element ``css`` matches ("" when none), read in one
        script: the pages swap their fragments every few seconds, and an element found first and
        read after such a swap is stale."""
        text = self.driver.execute_script(
            "const found = document.querySelector(arguments[0]);"
            " return found ? found.innerText : '';",
            css,
        )
        return str(text)

    def wait_for(self, css: str, what: str, timeout: float = SEEN_WITHIN) -> WebElement:
        return wait_until_blocking(
            lambda: next(iter(self.find_all(css)), None), timeout, message=what
        )

    def console_errors(self) -> list[str]:
        """Console messages at error level since the last call (CSP refusals among them)."""
        return [
            str(entry["message"])
            for entry in self.driver.get_log("browser")
            if entry.get("level") == "SEVERE"
        ]

    def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        """The whole page, however long (or what the window shows), as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not full_page:
            path.write_bytes(self.driver.get_screenshot_as_png())
            return
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(shot["data"]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DashboardProcess:
    """``docko-worker dashboard`` as users start it: environment variables only."""

    def __init__(self, database_url: str, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ
        }
        env.update(
            {
                "DOCKO_DATABASE_URL": database_url,
                "DOCKO_DASHBOARD_PORT": str(self.port),
                "DOCKO_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
                **settings,
            }
        )
        self.log_path = log_dir / f"dashboard-{self.port}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [CLI, "dashboard"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_until_blocking(self._answers, 30, message=self.describe)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the dashboard exited with {self.process.returncode}:\n{self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def describe(self) -> str:
        return f"the dashboard on port {self.port} to answer; its output:\n{self.output()}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()

    def request(
        self,
        path: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """One plain HTTP request (no browser): status, headers and body."""
        request = urllib.request.Request(self.url + path, data=data, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()


class ThreadDaemon:
    """A real daemon (``Queue.start``) with the test's handlers, in a thread of its own."""

    def __init__(
        self,
        config: Config,
        handlers: Mapping[str, Callable[[Job], Awaitable[None]]],
        queues: list[str],
    ) -> None:
        self.config = config
        self.handlers = dict(handlers)
        self.queues = queues
        self.worker_id: str | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="docko-daemon", daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self._error is not None:
            raise RuntimeError(f"the daemon did not start: {self._error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with await Queue.connect(self.config) as queue:
            for job_type, handler in self.handlers.items():
                queue.register_handler(job_type, handler)
            await queue.start(self.queues)
            self.worker_id = queue.worker_id
            self._started.set()
            await self._stop.wait()
            await queue.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._error is not None:
            raise RuntimeError(f"the daemon failed: {self._error!r}")


class Database:
    """Blocking calls on the test's database through the async API, each on its own pool."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _run(self, work: Callable[[Queue], Awaitable[T]]) -> T:
        async def main() -> T:
            async with await Queue.connect(self.config) as queue:
                return await work(queue)

        return asyncio.run(main())

    def enqueue(self, queue_name: str, job_type: str, payload: Any, **options: Any) -> Job:
        return self._run(lambda q: q.enqueue(queue_name, job_type, payload, **options))

    def job(self, job_id: Any) -> Job:
        job = self._run(lambda q: q.get_job(job_id))
        assert job is not None, f"no job {job_id}"
        return job

    def queues(self) -> dict[str, QueueInfo]:
        return {info.name: info for info in self._run(lambda q: q.queues())}

    def pause(self, queue_name: str) -> None:
        self._run(lambda q: q.pause(queue_name))

    def execute(self, statement: str, *args: Any) -> None:
        async def run(queue: Queue) -> None:
            await queue.pool.execute(statement, *args)

        self._run(run)

    def wait_state(self, job_id: Any, state: str, timeout: float = SEEN_WITHIN) -> Job:
        return wait_until_blocking(
            lambda: (job := self.job(job_id)).state.value == state and job,
            timeout,
            message=lambda: f"job {job_id} to be {state} (it is {self.job(job_id).state.value})",
        )


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
