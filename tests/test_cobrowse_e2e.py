"""Co-browsing end to end: a merchant's page in real Chromium, the real server, the real console.

One test, every part real and in its own process where it is in
production:

* ``repconsole-server`` in a subprocess on the demo site (test_console_server's
  :class:`ServerProcess`, logging at debug), with a help link made the way an
  administrator makes one while it runs (``repconsole-server link create
  --rep alex --origin ...``);
* the merchant's payment page (the demo shop's, plus a line the page
  updates as the customer types and a list it grows) served from **another
  origin** (test_cobrowse_pages' :class:`Merchant`), loading ``cobrowse.js``
  from the support server, in headless system Chromium driven by Selenium;
* the console window (``build_window`` over a :class:`WebSocketBackend`,
  qasync, pytest-qt) signed in as the link's rep, ``alex``.

The customer asks for help and consents; the page changes 100 times
before the rep accepts the ``[Browser]`` session, so the tab's replica
(QtWebEngine + rrweb) joins late, from the relay's buffer, and must show the
page as it is now; the customer types into a text field, a password field,
the ``rc-block`` card box and an ``rc-mask`` note: the rep sees the page
react (its counter), never what was typed.  Every byte relayed is captured
and searched for it (and for the ``rc-mask`` address the page shows): the
frames the browser sent (DevTools network log), the raw frames the console
received, the replica's DOM and values, and the server's debug log.  The rep
clicks the replica and the ring shows at that place on the customer's page;
the customer stops: the page's socket closes, the tab says so, nothing more
comes, and the chat goes on.  The view is saved to ``/tmp/cb-e2e.png``
while live, the tab to ``/tmp/cb-e2e-tab.png`` and, after Stop,
``/tmp/cb-e2e-stopped.png``.

Selenium calls block the Qt thread for a few milliseconds each; every wait
on the browser is polled from ``qtbot.waitUntil``, so the console keeps
running while the test waits.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import chromium, find, needs_browser
from conftest import timeout
from PySide6.QtCore import QPoint, Qt
from test_cobrowse_pages import MASK, Merchant, doc_center, in_widget, keys, typed_into_widget, widget_has, widget_text
from test_cobrowse_view import js, wait_js
from test_console_server import ServerProcess

import repconsole.backend.websocket as websocket_backend
from repconsole.backend.base import BackendState
from repconsole.backend.cobrowse import PageState
from repconsole.backend.websocket import WebSocketBackend
from repconsole.protocol import CobrowseChunk, RrwebType
from repconsole.server.app import STATIC_DIR
from repconsole.ui.app import build_window
from repconsole.ui.mainwindow import MainWindow

pytestmark = needs_browser

ME = "alex"
MY_NAME = "Alex Morgan"
CUSTOMER = "Ben Fox"
SCREENSHOT = Path("/tmp/cb-e2e.png")
SCREENSHOT_TAB = Path("/tmp/cb-e2e-tab.png")
SCREENSHOT_STOPPED = Path("/tmp/cb-e2e-stopped.png")
# What the customer types once sharing: none of it may reach the console.
TYPED = {
    "#card-name": "BENJAMIN Q FOX",
    "#account-password": "hunter2-Passw0rd",
    "#card-number": "4111 1111 1111 1111",  # in the rc-block box: not even recorded
    "#gift-note": "Happy birthday Zelda",  # rc-mask: its text masked
}
# On the page from the start, in an rc-mask element.
MASKED_TEXT = "ben.fox@example.com"
CHANGES = 100
COUNTER = "Characters entered on this page: "
CHANGED = "Changes made: "
# The page's own reactions: a counter of what is typed (the page's text, not a value: not masked),
# and a list the page grows, one change at a time (window.acmeChange(n)).
_PAGE_HTML = f"""
<p class="acme-signed-in" id="typing-status">{COUNTER}0</p>
<p class="acme-signed-in" id="change-status">{CHANGED}0</p>
<ol id="change-list"></ol>
<script>
  (function () {{
    var n = 0, out = document.getElementById("typing-status");
    document.querySelector("main").addEventListener("input", function () {{ n += 1; out.textContent = "{COUNTER}" + n; }});
    window.acmeChange = function (k) {{
      document.getElementById("change-status").textContent = "{CHANGED}" + k;
      var li = document.createElement("li");
      li.textContent = "change " + k;
      document.getElementById("change-list").append(li);
    }};
  }})();
</script>
"""


def _secrets() -> list[str]:
    """Each typed value, and the words of it a keystroke-by-keystroke stream could carry."""
    out = [MASKED_TEXT, "ben.fox"]
    for value in TYPED.values():
        out.append(value)
        # (Not the card number's groups of digits: a timestamp can hold those.)
        out.extend(w for w in re.split(r"[\s-]+", value) if len(w) >= 4 and not w.isdigit())
    return out


# ---------------------------------------------------------------- the parts


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server on the demo site, logging everything; its demo passwords were printed at its first start."""
    data = tmp_path_factory.mktemp("server") / "data"
    proc = ServerProcess(data, log_level="debug")
    assert ME in proc.passwords, proc.lines
    yield proc
    proc.stop()


@pytest.fixture
def merchant() -> Iterator[Merchant]:
    site = Merchant()
    try:
        yield site
    finally:
        site.close()


def make_link(server: ServerProcess, origin: str) -> str:
    """``repconsole-server link create`` against the running server's data: the new link's id."""
    http = server.url.replace("ws://", "http://")
    out = subprocess.run(
        [sys.executable, "-m", "repconsole.server", "link", "create", "--rep", ME, "--name", "Acme Store help",
         "--origin", origin, "--data", str(server.data), "--public-url", http],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    match = re.search(r'<script src="([^"]+)/cobrowse\.js" data-link="([^"]+)" async></script>', out.stdout)
    assert match and match[1] == http, out.stdout + out.stderr
    return match[2]


def payment_page(server_http: str, link: str) -> str:
    """The demo shop's payment page as the merchant serves it: its styles, the snippet pasted in, and a counter."""
    html = (STATIC_DIR / "shop-checkout.html").read_text(encoding="utf-8")
    # The merchant's own stylesheet, in the page (one from another origin rrweb could not read, and the replica could not load).
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    html = html.replace('<link rel="stylesheet" href="style.css">', f"<style>{css}</style>")
    html = html.replace('<script src="cobrowse.js" data-link="link-accounts"', f'<script src="{server_http}/cobrowse.js" data-link="{link}"')
    assert f'data-link="{link}"' in html
    return html.replace("</main>", _PAGE_HTML + "</main>")


@pytest.fixture
def window(qtbot: Any, aloop: Any, server: ServerProcess, tmp_path: Path) -> Iterator[MainWindow]:
    backend = WebSocketBackend(server.url, ME, server.passwords[ME], backoff=(0.1, 0.2, 0.5))
    win = build_window(backend, tmp_path / "settings")
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    win.start_soon()
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE and win.state.seq >= 0, timeout=timeout(10))
    yield win
    win.close()
    task = aloop.create_task(win.shutdown())
    qtbot.waitUntil(task.done, timeout=timeout(10))


def spy_chunks(backend: WebSocketBackend) -> list[CobrowseChunk]:
    """Every ``cobrowse`` chunk the console receives from now on, as it arrives."""
    chunks: list[CobrowseChunk] = []
    on_message = backend._on_message

    def spy(message: Any) -> None:
        if isinstance(message, CobrowseChunk):
            chunks.append(message)
        on_message(message)

    backend._on_message = spy  # type: ignore[method-assign]
    return chunks


def spy_frames(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every frame the console receives from now on, as the bytes that came over the socket."""
    frames: list[bytes] = []
    decode = websocket_backend._decode

    def spy(raw: str | bytes) -> Any:
        frames.append(raw.encode() if isinstance(raw, str) else bytes(raw))
        return decode(raw)

    monkeypatch.setattr(websocket_backend, "_decode", spy)
    return frames


class Sockets:
    """The browser's WebSocket traffic, from its DevTools network log (which reading empties)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.urls: dict[str, str] = {}
        self.sent: list[tuple[str, str]] = []  # (socket URL, payload)
        self.closed: list[str] = []  # socket URLs

    def read(self) -> Sockets:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.webSocketCreated":
                self.urls[params["requestId"]] = params["url"]
            elif method == "Network.webSocketFrameSent":
                self.sent.append((self.urls.get(params["requestId"], "?"), params["response"]["payloadData"]))
            elif method == "Network.webSocketClosed":
                self.closed.append(self.urls.get(params["requestId"], "?"))
        return self

    def recorded(self) -> list[str]:
        """What the page sent the relay (``/cobrowse``)."""
        return [payload for url, payload in self.read().sent if url.split("?")[0].endswith("/cobrowse")]


def page_batches(chunks: list[CobrowseChunk]) -> list[list[dict[str, Any]]]:
    """The rrweb events of each whole batch the console received, in order."""
    parts: dict[int, list[CobrowseChunk]] = {}
    for chunk in chunks:
        parts.setdefault(chunk.batch, []).append(chunk)
    return [json.loads("".join(c.data for c in sorted(parts[b], key=lambda c: c.part))) for b in sorted(parts)]


def until(qtbot: Any, check: Callable[[], Any], what: str, seconds: float = 10.0) -> None:
    """Wait for ``check`` (a look at the browser, say) with the Qt loop running; a failing look counts as not yet."""

    def ok() -> bool:
        try:
            return bool(check())
        except Exception:
            return False

    try:
        qtbot.waitUntil(ok, timeout=timeout(seconds))
    except AssertionError:
        raise AssertionError(f"never: {what}") from None


# A place in the replica, from the replayer page: where in the view (CSS pixels of the view) and on
# the customer's document an element of the customer's page is.
_PLACE = """(function (css) {
  var doc = document.querySelector('#stage iframe').contentDocument;
  var r = doc.querySelector(css).getBoundingClientRect();
  var stage = document.getElementById('stage').getBoundingClientRect();
  var info = cobrowse.info();
  var cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  return {viewX: stage.left + cx * info.scale, viewY: stage.top + cy * info.scale,
          docX: cx + info.scrollX, docY: cy + info.scrollY, inView: r.top >= 0 && r.bottom <= info.height};
})(%r)"""

# Everything of the replica a secret could hide in: its markup, and the live values of its fields.
_REPLICA_DUMP = """(function () {
  var doc = document.querySelector('#stage iframe').contentDocument;
  var values = Array.prototype.map.call(doc.querySelectorAll('input, textarea, select'), function (e) { return e.id + '=' + e.value; });
  return {html: doc.documentElement.outerHTML, values: values,
          name: doc.getElementById('card-name').value, password: doc.getElementById('account-password').value,
          note: doc.getElementById('gift-note').textContent};
})()"""


# True once two frames were drawn with no ping of a rep's click left (each call asks for a look).
_PAINTED = """(function () {
  requestAnimationFrame(function () { requestAnimationFrame(function () { window.painted = !document.querySelector('.ping'); }); });
  return window.painted === true;
})()"""


# ---------------------------------------------------------------- the test


def test_a_customer_shares_a_merchant_page_with_the_console_late_masked_pointed_at_and_stopped(
    qtbot: Any, server: ServerProcess, merchant: Merchant, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = window.backend
    assert isinstance(backend, WebSocketBackend)
    frames = spy_frames(monkeypatch)
    chunks = spy_chunks(backend)
    http = server.url.replace("ws://", "http://")
    link = make_link(server, merchant.origin)
    merchant.pages["pay.html"] = payment_page(http, link)
    assert not merchant.origin.startswith(http)  # another origin (host and port)

    with chromium(tmp_path / "chromium-profile", network_log=True) as page:
        sockets = Sockets(page)
        # The customer, on the merchant's payment page, asks for help and consents.
        page.get(merchant.origin + "/pay.html")
        until(qtbot, lambda: widget_has(page, ".rc-cb-launcher"), "the help button")
        in_widget(page, ".rc-cb-launcher").click()
        until(qtbot, lambda: widget_has(page, "#rc-cb-name"), "the start form")
        typed_into_widget(page, "#rc-cb-name", CUSTOMER)
        from selenium.webdriver.support.ui import Select

        Select(in_widget(page, "#rc-cb-issue")).select_by_index(1)  # the link names no issue: the customer picks one
        in_widget(page, ".rc-widget-intro [type=submit]").click()
        until(qtbot, lambda: widget_has(page, "[data-consent=allow]"), "the consent banner")
        assert not sockets.recorded()  # nothing is recorded before consent
        in_widget(page, "[data-consent=allow]").click()
        until(qtbot, lambda: "Sharing this page with support" in widget_text(page, ".rc-cb-bar"), "the sharing bar")

        # The [Browser] session waits in the rep's personal queue.
        def arrived() -> str | None:
            return next((s.id for s in window.state.sessions.values() if s.customer_name == CUSTOMER), None)

        qtbot.waitUntil(lambda: arrived() is not None, timeout=timeout(10))
        sid = arrived()
        assert sid is not None

        # Before the rep looks, the page changes 100 times (each its own task: its own rrweb mutation),
        # and every change reaches the relay: the rep will join late.
        for n in range(1, CHANGES + 1):
            page.execute_script("acmeChange(arguments[0])", n)
        until(qtbot, lambda: any(f"change {CHANGES}" in f for f in sockets.recorded()), "the last change sent to the relay")
        assert not chunks

        # The rep double-clicks the session: accepted, its tab opens and watches the page.
        window.queue_list.select(f"rep:{ME}")
        qtbot.waitUntil(lambda: window.model.row_by_id(sid) is not None, timeout=timeout(5))
        index = window.model.index_for(sid)
        assert window.model.data(index, Qt.ItemDataRole.DisplayRole) == f"[Browser] {CUSTOMER}"
        point = window.table.visualRect(index).center()
        qtbot.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=point)
        qtbot.mouseDClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=point)
        qtbot.waitUntil(lambda: sid in window.session_tabs, timeout=timeout(5))
        tab = window.session_tabs[sid]
        assert window.tabs.currentWidget() is tab
        assert window.tabs.tabText(window.tabs.indexOf(tab)).startswith("[Browser] ")
        view = tab.cobrowse_view
        assert view is not None and view.web is not None

        # The late joiner sees the page as it is now: the relay's buffer (the snapshot and the 100
        # changes since), replayed.
        qtbot.waitUntil(lambda: view.state is PageState.LIVE, timeout=timeout(10))
        text = str(wait_js(qtbot, view, "cobrowse.text()", lambda t: f"{CHANGED}{CHANGES}" in (t or ""), seconds=15))
        assert "Your card was declined" in text and "Walnut desk organiser" in text and f"{COUNTER}0" in text, text
        items = "Array.prototype.map.call(document.querySelector('#stage iframe').contentDocument.querySelectorAll('#change-list li'), e => e.textContent)"
        assert js(qtbot, view, items) == [f"change {n}" for n in range(1, CHANGES + 1)]
        caught_up = [e for events in page_batches(chunks) for e in events]
        assert [e["type"] for e in caught_up].count(RrwebType.FULL_SNAPSHOT) == 1
        mutations = [e for e in caught_up if e["type"] == RrwebType.INCREMENTAL_SNAPSHOT and e["data"]["source"] == 0]
        assert len(mutations) >= CHANGES, "the changes came as changes, after the snapshot, not folded into a newer one"
        assert view.url_label.text() == f"Customer is on: {merchant.origin}/pay.html"
        assert view.title_label.text() == "Acme Store — Payment"
        until(qtbot, lambda: f"{MY_NAME} is viewing this page" in widget_text(page, ".rc-cb-bar"), "who watches, on the customer's bar")

        # The customer types into a text field, a password field, the rc-block card box and the rc-mask gift note.
        for css in ("#card-name", "#account-password", "#card-number"):
            find(page, css).send_keys(TYPED[css])
        find(page, "#gift-note").click()
        keys(page, TYPED["#gift-note"])
        typed = sum(len(v) for v in TYPED.values())
        assert page.execute_script("return document.getElementById('card-name').value") == TYPED["#card-name"]
        # The rep sees the page react, keystroke by keystroke, to the last one...
        wait_js(qtbot, view, "cobrowse.text()", lambda t: f"{COUNTER}{typed}" in (t or ""), seconds=10)
        # ...and the fields as masks: the values were masked in the customer's browser.
        replica = wait_js(qtbot, view, _REPLICA_DUMP, lambda r: r["name"] == MASK and r["password"] == MASK, seconds=5)
        note = replica["note"]
        assert note and set(note) <= {"*", " "} and len(note) == len(TYPED["#gift-note"]), note
        assert "Card details are never shared" not in replica["html"]  # the rc-block box is not in the replica at all
        assert view.delay is not None and view.delay < 2

        # The rep clicks the Pay button in the replica: the ring shows there on the customer's page.
        page.execute_script("document.querySelector('.acme-pay').scrollIntoView({block: 'center'})")
        customer_y = page.execute_script("return scrollY")
        # The replica follows the customer's scroll (rrweb samples it every 150 ms).
        until(qtbot, lambda: abs(js(qtbot, view, "cobrowse.info().scrollY") - customer_y) < 1, f"the replica scrolled to {customer_y}")
        place = js(qtbot, view, _PLACE % ".acme-pay")
        assert place["inView"], place
        target_x, target_y = doc_center(page, ".acme-pay")
        for path in (SCREENSHOT, SCREENSHOT_TAB):
            path.unlink(missing_ok=True)
        assert view.grab().save(str(SCREENSHOT))
        assert tab.grab().save(str(SCREENSHOT_TAB))
        with qtbot.waitSignal(view.pointRequested, timeout=timeout(5)) as clicked:
            qtbot.mouseClick(view.web.focusProxy(), Qt.MouseButton.LeftButton, pos=QPoint(round(place["viewX"]), round(place["viewY"])))
        x, y = clicked.args
        # Where the rep clicked is the Pay button on the customer's page too (fonts may lay it out a few pixels apart).
        assert (x, y) == (pytest.approx(target_x, abs=12), pytest.approx(target_y, abs=6))
        assert page.execute_script("return document.elementFromPoint(arguments[0] - scrollX, arguments[1] - scrollY).className", x, y) == "acme-pay"
        until(qtbot, lambda: widget_has(page, ".rc-cb-ring"), "the pointer ring on the customer's page")
        assert widget_text(page, ".rc-cb-ring-label") == MY_NAME
        ring = in_widget(page, ".rc-cb-ring")
        assert (float(ring.get_attribute("data-x")), float(ring.get_attribute("data-y"))) == (pytest.approx(x), pytest.approx(y))

        # Nothing typed or rc-masked was relayed: not in a frame the page sent, not in a byte the
        # console received, not in the replica's markup or values, not in the server's log.
        recorded = sockets.recorded()
        received = b"".join(frames).decode("utf-8")
        replica = js(qtbot, view, _REPLICA_DUMP)
        assert chunks and all(c.session == sid for c in chunks)
        assert "Your card was declined" in received and MASK in received and f"{COUNTER}{typed}" in received
        assert any(f"{COUNTER}{typed}" in f for f in recorded)
        log = server.output()
        assert any(f"{sid}: a page attached" in line for line in log), log[-20:]
        for secret in _secrets():
            assert not [f for f in recorded if secret in f], f"the browser sent {secret!r}"
            assert secret not in received, f"the console was sent {secret!r}"
            assert secret not in replica["html"] and not [v for v in replica["values"] if secret in v], f"the replica shows {secret!r}"
            assert not [line for line in log if secret in line], f"the server logged {secret!r}"

        # The customer stops: the page's socket closes, the tab says so, nothing more comes; the chat goes on.
        in_widget(page, ".rc-cb-stop").click()
        until(qtbot, lambda: not widget_has(page, ".rc-cb-bar"), "the sharing bar gone")
        until(qtbot, lambda: any(url.split("?")[0].endswith("/cobrowse") for url in sockets.read().closed), "the page's /cobrowse socket closed")
        assert sockets.recorded()[-1] == '{"type":"stop"}', sockets.recorded()[-1][:200]
        qtbot.waitUntil(lambda: view.state is PageState.STOPPED, timeout=timeout(5))
        assert view.state_label.text() == "Stopped sharing"
        wait_js(qtbot, view, "document.getElementById('veil').textContent", lambda t: t == "The customer stopped sharing.")
        count, sent = len(chunks), len(sockets.recorded())
        page.execute_script("acmeChange(arguments[0])", CHANGES + 1)
        find(page, "#card-name").send_keys(" JR")
        tab.input_edit.setText("No problem, I'll guide you from here.")
        tab.send_button.click()
        until(qtbot, lambda: "guide you from here" in widget_text(page, ".rc-line-rep"), "the rep's line on the customer's page")
        assert sid in window.session_tabs and view.state is PageState.STOPPED
        assert len(sockets.recorded()) == sent and len(chunks) == count
        # The picture once the ping of the rep's click has faded and the veil is painted.
        until(qtbot, lambda: js(qtbot, view, _PAINTED), "the replica painted without the ping")
        assert tab.grab().save(str(SCREENSHOT_STOPPED))
    assert not [line for line in server.output() if "Traceback" in line or " ERROR " in line], server.lines[-40:]
