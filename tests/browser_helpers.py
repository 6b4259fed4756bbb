"""Scaffolding for the browser tests of the customer pages (test_customer_pages, test_cobrowse_pages).

* :class:`LiveServer`: a real server on its own asyncio loop (a thread),
  so that a synchronous browser can drive the pages while reps speak the
  protocol to it (:mod:`server_helpers`' typed clients);
* :func:`chromium`: a fresh headless system Chromium (``/usr/bin/chromium``
  with ``/usr/bin/chromedriver``; Selenium never downloads a browser), with
  its own profile, checked afterwards for script errors;
* small Selenium helpers: :func:`wait`, :func:`find`, :func:`shows`...
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import TIMEOUT_SCALE
from server_helpers import CustomerClient, RepClient, serving, write_site

from repconsole.protocol import ChatEvent, Event, LineView, SessionEvent, SessionView
from repconsole.server.timers import VirtualClock

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "STORE_KEY",
    "LiveServer",
    "choose",
    "chromium",
    "find",
    "needs_browser",
    "shows",
    "socket_frames_sent",
    "stored",
    "text_of",
    "type_into",
    "wait",
]

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STORE_KEY = "repconsole.customer"

needs_browser = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; .ci/run does)",
)


class LiveServer:
    """A real server on its own asyncio loop (a thread), so that a synchronous
    browser can drive the pages while reps speak to the server.  Its clock is
    virtual: server time moves only by :meth:`advance`."""

    def __init__(self, tmp_path: Path, options: dict[str, Any] | None = None, **site: Any) -> None:
        """``site``: write_site's options (``server``: [server] settings); ``options``: the Server's."""
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-server", daemon=True)
        self.thread.start()
        self.clock = VirtualClock()
        self._serving = serving(write_site(tmp_path, **site), tmp_path / "data", clock=self.clock, **(options or {}))
        self.server = self.call(self._serving.__aenter__())
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.reps: list[RepClient] = []
        self.customers: list[CustomerClient] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the server's loop and wait for it (scaled)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout * TIMEOUT_SCALE)

    def advance(self, seconds: float) -> None:
        """Move the server's clock on, on the server's loop (where its timers run)."""

        async def move() -> None:
            self.clock.advance(seconds)

        self.call(move())

    def rep(self, rep: str) -> RepClient:
        client = self.call(RepClient.logged_in(self.server, rep))
        self.reps.append(client)
        return client

    def customer(self, name: str, issue: str = "vpn") -> CustomerClient:
        """A support page's connection (the browser's is the page's own), its session started
        with the issue form; it reads in the background, on the server's loop."""
        client = self.call(CustomerClient.started(self.server, name, issue, listen=True))
        self.customers.append(client)
        return client

    def arrival(self, rep: RepClient, name: str) -> SessionView:
        """The session of customer ``name`` as ``rep`` was told about it."""

        def arrived(e: Event) -> bool:
            return isinstance(e, SessionEvent) and e.data.session.customer_name == name

        event = self.call(rep.wait_event(arrived, timeout=10), timeout=15)
        assert isinstance(event, SessionEvent)
        return event.data.session

    def chat_from_customer(self, rep: RepClient, session: str, text: str) -> LineView:
        def said(e: Event) -> bool:
            return isinstance(e, ChatEvent) and e.data.session == session and e.data.line.text == text

        event = self.call(rep.wait_event(said, timeout=10), timeout=15)
        assert isinstance(event, ChatEvent)
        return event.data.line

    def sessions(self) -> list[Any]:
        async def read() -> list[Any]:
            return list(self.server.runtime.engine.sessions())

        return self.call(read())

    def customers_online(self) -> int:
        async def read() -> int:
            return int(self.server.status()["customers_online"])

        return self.call(read())

    def close(self) -> None:
        async def leave(rep: RepClient) -> None:
            # A console that stopped reading has a full receive queue and would
            # not see the server's close frame until the close timeout.
            await rep.drain()
            await rep.close()

        try:
            for customer in self.customers:
                self.call(customer.close())
            for rep in self.reps:
                self.call(leave(rep))
            self.call(self._serving.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@contextmanager
def chromium(profile: Path, *, check_errors: bool = True, window: str = "1200,900", network_log: bool = False) -> Iterator[Any]:
    """A fresh headless Chromium with its own profile in ``profile``; afterwards its pages'
    script errors fail the test (``check_errors``).  ``network_log``: the DevTools network
    events (every WebSocket frame the pages send and receive) are kept for
    :func:`socket_frames_sent`.

    Quit it before the server stops: a browser keeps idle connections open
    (preconnected for the next navigation), and the server would wait for
    them on the way down.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)  # never let Selenium Manager look for (or download) a browser
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--window-size={window}", "--lang=en-US",
        f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if network_log else {})})
    if network_log:
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.sent_frames = []  # socket_frames_sent() collects here
    try:
        browser.set_page_load_timeout(15 * TIMEOUT_SCALE)
        yield browser
        if check_errors:
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors
    finally:
        browser.quit()


def wait(driver: Any, condition: Callable[[Any], Any], seconds: float = 5.0, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds * TIMEOUT_SCALE, poll_frequency=0.05).until(condition, what)


def text_of(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


def shows(css: str, text: str) -> Callable[[Any], bool]:
    return lambda d: text in text_of(d, css)


def find(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def type_into(driver: Any, css: str, text: str) -> None:
    field = find(driver, css)
    field.clear()
    field.send_keys(text)


def choose(driver: Any, css: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(find(driver, css)).select_by_value(value)


def stored(driver: Any, key: str = STORE_KEY) -> Any:
    """The chat a page keeps in sessionStorage under ``key`` (the support site's by default)."""
    raw = driver.execute_script("return sessionStorage.getItem(arguments[0])", key)
    return json.loads(raw) if raw else None


def socket_frames_sent(driver: Any) -> list[tuple[str, str]]:
    """Every WebSocket frame the browser's pages sent so far, as (socket URL, payload): read from
    the DevTools network log (``chromium(network_log=True)``), which reading empties; kept on the driver."""
    urls: dict[str, str] = getattr(driver, "socket_urls", {})
    driver.socket_urls = urls
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.webSocketCreated":
            urls[params["requestId"]] = params["url"]
        elif message.get("method") == "Network.webSocketFrameSent":
            driver.sent_frames.append((urls.get(params["requestId"], "?"), params["response"]["payloadData"]))
    return list(driver.sent_frames)
