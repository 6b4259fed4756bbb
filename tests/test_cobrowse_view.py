"""The customer's live page (CobrowseView) in real QtWebEngine, offscreen.

What the replica shows is read from the replayer's iframe with
``runJavaScript``; rrweb streams are either the shipped recording of the demo
shop or built here, event by event, in rrweb's own format.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import timeout
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel

from repconsole import resources
from repconsole.backend.cobrowse import PageBatch, PageState, PageStatus
from repconsole.backend.pageplayer import RECORDING, load_recording
from repconsole.backend.simulator import SimulatorBackend
from repconsole.backend.websocket import WebSocketBackend
from repconsole.backend.world import ME
from repconsole.protocol import RrwebType
from repconsole.ui.cobrowse import CobrowseView

# ---------------------------------------------------------------- helpers


def js(qtbot: Any, view: CobrowseView, script: str) -> Any:
    """The value of ``script`` in the replayer page."""
    box: list[str] = []
    # As JSON: Qt does not bring every JavaScript value over as is.
    view.web.page().runJavaScript(f"JSON.stringify({script})", 0, box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=timeout(5))
    return json.loads(box[0]) if box[0] else None


def wait_js(qtbot: Any, view: CobrowseView, script: str, check: Any, seconds: float = 10.0) -> Any:
    """Poll ``script`` until ``check(value)``; the last value."""
    deadline = time.monotonic() + timeout(seconds) / 1000
    while True:
        value = js(qtbot, view, script)
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{script} is still {value!r}")
        qtbot.wait(50)


def replica_text(qtbot: Any, view: CobrowseView, needle: str) -> str:
    return str(wait_js(qtbot, view, "cobrowse.text()", lambda text: needle in (text or "")))


def make_view(qtbot: Any, width: int = 700, height: int = 560) -> CobrowseView:
    view = CobrowseView(page_url="https://shop.acme.example/checkout")
    qtbot.addWidget(view)
    # A fixed size, as inside the window: a top-level window whose size hints
    # change makes the offscreen platform warn.
    view.setFixedSize(width, height)
    view.show()
    qtbot.waitUntil(lambda: view._loaded, timeout=timeout(10))
    return view


class Page:
    """A tiny page in rrweb's serialized format, and changes to it (ids are rrweb's node ids)."""

    DOCUMENT, COUNT_TEXT, LIST = 1, 9, 10

    def __init__(self, at: float, *, width: int = 1000, height: int = 800, body_height: int = 3000) -> None:
        self.ms = int(at * 1000)
        self.next_id = 100
        self.width, self.height, self.body_height = width, height, body_height

    def _t(self) -> int:
        self.ms += 10
        return self.ms

    def opening(self) -> list[dict[str, Any]]:
        text = {"type": 3, "textContent": "count 0", "id": self.COUNT_TEXT}
        body = {
            "type": 2, "tagName": "body", "id": 5, "childNodes": [
                {"type": 2, "tagName": "h1", "attributes": {}, "id": 6, "childNodes": [{"type": 3, "textContent": "Tiny shop", "id": 7}]},
                {"type": 2, "tagName": "p", "attributes": {"id": "count"}, "id": 8, "childNodes": [text]},
                {"type": 2, "tagName": "ul", "attributes": {}, "id": self.LIST, "childNodes": []},
            ],
            "attributes": {"style": f"margin: 0; height: {self.body_height}px; font: 20px sans-serif"},
        }  # fmt: skip
        html = {"type": 2, "tagName": "html", "attributes": {}, "id": 3, "childNodes": [
            {"type": 2, "tagName": "head", "attributes": {}, "id": 4, "childNodes": []}, body]}  # fmt: skip
        node = {"type": 0, "id": self.DOCUMENT, "childNodes": [{"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2}, html]}
        return [
            {"type": RrwebType.META, "data": {"href": "https://tiny.example/", "width": self.width, "height": self.height}, "timestamp": self._t()},
            {"type": RrwebType.FULL_SNAPSHOT, "data": {"node": node, "initialOffset": {"left": 0, "top": 0}}, "timestamp": self._t()},
        ]

    def change(self, n: int) -> dict[str, Any]:
        """Change ``n``: the count says n, and the list gets "item n"."""
        li, text = self.next_id, self.next_id + 1
        self.next_id += 2
        adds = [
            {"parentId": self.LIST, "nextId": None, "node": {"type": 2, "tagName": "li", "attributes": {}, "childNodes": [], "id": li}},
            {"parentId": li, "nextId": None, "node": {"type": 3, "textContent": f"item {n}", "id": text}},
        ]
        data = {"source": 0, "texts": [{"id": self.COUNT_TEXT, "value": f"count {n}"}], "attributes": [], "removes": [], "adds": adds}
        return {"type": RrwebType.INCREMENTAL_SNAPSHOT, "data": data, "timestamp": self._t()}

    def scroll(self, y: int) -> dict[str, Any]:
        return {"type": RrwebType.INCREMENTAL_SNAPSHOT, "data": {"source": 3, "id": self.DOCUMENT, "x": 0, "y": y}, "timestamp": self._t()}


def batch(events: list[dict[str, Any]], at: float, *, buffered: bool = False) -> PageBatch:
    return PageBatch("S1", msgspec.json.encode(events).decode(), at, buffered=buffered)


# ---------------------------------------------------------------- the view


def test_the_view_renders_a_recorded_stream_scaled_to_fit_and_view_only(qtbot: Any) -> None:
    view = make_view(qtbot, 700, 560)
    assert view.url_label.text() == "Customer is on: https://shop.acme.example/checkout"
    assert wait_js(qtbot, view, "document.getElementById('veil').textContent", bool) == "Waiting for the customer's page…"
    recording = load_recording()
    view.set_status(PageStatus("S1", PageState.LIVE, recording.url, recording.title))
    with qtbot.waitSignal(view.snapshotRendered, timeout=timeout(10)):
        # The whole recording as one batch: the delivery page, then the payment page it navigated to.
        view.add_batch(PageBatch("S1", json.dumps(recording.events), time.time() - 0.25))
    text = replica_text(qtbot, view, "Your card was declined")
    assert "Payment" in text and "Walnut desk organiser" in text
    # Typed values were masked in the customer's browser: the recording has none.
    recorded = resources.read_bytes(RECORDING).decode()
    assert not [secret for secret in ("Ben Fox", "ben.fox@example.org", "correct-horse-battery", "Zelda") if secret in recorded]

    info = js(qtbot, view, "cobrowse.info()")
    inner = js(qtbot, view, "[innerWidth, innerHeight]")
    assert (info["width"], info["height"]) == (1280, 657)  # the customer's viewport
    assert info["scale"] == pytest.approx(min(inner[0] / 1280, inner[1] / 657))
    assert info["scale"] < 1
    assert js(qtbot, view, "document.getElementById('stage').inert") is True
    assert js(qtbot, view, "getComputedStyle(document.querySelector('#stage iframe')).pointerEvents") == "none"
    assert js(qtbot, view, "document.getElementById('veil').hidden") is True

    assert view.url_label.text() == f"Customer is on: {recording.url}"
    assert view.title_label.text() == recording.title == "Acme Store — Delivery"
    assert view.state_label.text() == "Live"
    assert view.delay is not None and 0.2 < view.delay < 5
    assert view.delay_label.isVisible() and view.delay_label.text().endswith(" s behind")


def test_a_late_join_after_100_changes_renders_the_current_page(qtbot: Any) -> None:
    view = make_view(qtbot)
    page = Page(time.time() - 300)  # the customer opened it five minutes ago
    view.set_status(PageStatus("S1", PageState.LIVE, "https://tiny.example/", "Tiny shop"))
    # What the relay buffered: the snapshot and every change since, in one batch.
    view.add_batch(batch(page.opening() + [page.change(n) for n in range(1, 101)], time.time() - 200, buffered=True))
    text = replica_text(qtbot, view, "count 100")
    assert "item 1\n" in text and "item 100" in text
    assert js(qtbot, view, "document.querySelector('#stage iframe').contentDocument.querySelectorAll('li').length") == 100
    # A buffered batch says how old the page is, not how late it came.
    assert view.delay is None and not view.delay_label.isVisible()

    page.ms = int(time.time() * 1000)
    view.add_batch(batch([page.change(101)], time.time() - 0.1))
    replica_text(qtbot, view, "count 101")
    assert view.delay is not None and view.delay < 5


def test_changes_before_the_first_full_snapshot_are_ignored_and_a_new_snapshot_replaces_the_page(qtbot: Any) -> None:
    view = make_view(qtbot)
    page = Page(time.time())
    view.add_batch(batch([page.change(1)], time.time()))
    view.add_batch(PageBatch("S1", "[not json", time.time()))
    view.add_batch(batch(page.opening(), time.time()))
    replica_text(qtbot, view, "count 0")
    assert "item 1" not in js(qtbot, view, "cobrowse.text()")
    again = Page(time.time())
    opening = again.opening()
    opening[1]["data"]["node"]["childNodes"][1]["childNodes"][1]["childNodes"][0]["childNodes"][0]["textContent"] = "Another page"
    view.add_batch(batch(opening, time.time()))
    text = replica_text(qtbot, view, "Another page")
    assert "Tiny shop" not in text


def test_a_click_points_at_the_place_on_the_customers_page_and_shows_where(qtbot: Any) -> None:
    view = make_view(qtbot, 500, 700)
    page = Page(time.time())
    view.add_batch(batch([*page.opening(), page.scroll(600)], time.time()))
    replica_text(qtbot, view, "Tiny shop")
    info = wait_js(qtbot, view, "cobrowse.info()", lambda i: i["scrollY"] == 600)
    inner_width = js(qtbot, view, "innerWidth")
    scale = info["scale"]
    assert scale == pytest.approx(inner_width / 1000)  # the width limits it in a tall tab
    target = view.web.focusProxy()
    with qtbot.waitSignal(view.pointRequested, timeout=timeout(5)) as blocker:
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=QPoint(100, 50))
    x, y = blocker.args
    assert x == pytest.approx(100 / scale, abs=1)
    assert y == pytest.approx(50 / scale + 600, abs=1)
    assert js(qtbot, view, "document.querySelectorAll('.ping').length") == 1
    # Below the replica (the tab is taller than the customer's window): nowhere on the page.
    with qtbot.assertNotEmitted(view.pointRequested, wait=300):
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=QPoint(100, target.height() - 5))


def test_the_replica_fetches_nothing_the_customers_page_links_to(qtbot: Any) -> None:
    """A customer's page must never make the rep's console contact an address (a tracker, an intranet host)."""
    import http.server
    import threading

    hits: list[str] = []

    class Counting(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        view = make_view(qtbot)
        page = Page(time.time())
        events = page.opening()
        body = events[1]["data"]["node"]["childNodes"][1]["childNodes"][1]
        body["childNodes"] += [
            {"type": 2, "tagName": "img", "attributes": {"src": f"{base}/pixel.png"}, "childNodes": [], "id": 50},
            {"type": 2, "tagName": "div", "attributes": {"style": f"width: 50px; height: 50px; background: url({base}/bg.png)"}, "childNodes": [], "id": 51},
            {"type": 2, "tagName": "iframe", "attributes": {"src": f"{base}/frame.html"}, "childNodes": [], "id": 52},
        ]
        view.add_batch(batch(events, time.time()))
        replica_text(qtbot, view, "Tiny shop")
        qtbot.wait(1000)
        assert hits == []
        assert js(qtbot, view, "document.querySelector('#stage iframe').contentDocument.querySelector('img').src") == f"{base}/pixel.png"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("state", "badge", "veil"),
    [
        (PageState.WAITING, "Waiting", "Waiting for the customer's page…"),
        (PageState.RECONNECTING, "Reconnecting…", "Reconnecting…"),
        (PageState.RESYNC, "Resyncing…", "Resyncing…"),
        (PageState.STOPPED, "Stopped sharing", "The customer stopped sharing."),
        (PageState.ENDED, "Ended", "The session has ended."),
    ],
)
def test_each_state_says_where_the_stream_stands(qtbot: Any, state: PageState, badge: str, veil: str) -> None:
    view = make_view(qtbot)
    view.set_status(PageStatus("S1", PageState.LIVE, "https://a.example/", "A"))
    view.set_status(PageStatus("S1", state, detail="why"))
    assert view.state_label.text() == badge and view.state_label.toolTip() == "why"
    assert wait_js(qtbot, view, "document.getElementById('veil').textContent", lambda t: t == veil) == veil
    assert view.url_label.text() == "Customer is on: https://a.example/"  # an empty address keeps the last
    assert view.title_label.text() == "A"


def test_open_in_browser_asks_for_the_live_page(qtbot: Any) -> None:
    view = make_view(qtbot)
    with qtbot.waitSignal(view.openRequested, timeout=timeout(1)):
        view.open_button.click()


def test_as_root_with_the_sandbox_on_the_view_says_so_instead_of_taking_the_console_down(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.delenv("QTWEBENGINE_DISABLE_SANDBOX")
    monkeypatch.delenv("QTWEBENGINE_CHROMIUM_FLAGS", raising=False)
    view = CobrowseView()
    qtbot.addWidget(view)
    assert view.web is None
    assert "runs as root" in " ".join(label.text() for label in view.findChildren(QLabel))
    view.add_batch(PageBatch("S1", "[]", time.time()))  # nothing to show it in: dropped
    view.set_status(PageStatus("S1", PageState.LIVE, "https://a.example/", "A"))
    assert view.url_label.text() == "Customer is on: https://a.example/"


# ---------------------------------------------------------------- the simulator's browser tab


@pytest.fixture
def sim_window(qtbot: Any, aloop: Any, tmp_path: Path) -> Iterator[Any]:
    from repconsole.ui.app import build_window

    backend = SimulatorBackend(population=0, rate=0, seed=4, tick=0)
    window = build_window(backend, tmp_path / "settings")
    qtbot.addWidget(window)
    window.resize(1400, 860)
    window.show()
    window.start_soon()
    qtbot.waitUntil(lambda: window.state.seq >= 0, timeout=timeout(5))
    yield window
    window.quit_guard.close_now()
    task = aloop.create_task(window.shutdown())
    qtbot.waitUntil(task.done, timeout=timeout(5))


def open_browser_tab(qtbot: Any, window: Any) -> Any:
    backend: SimulatorBackend = window.backend
    s = backend.engine.start_browser("link-me", backend.simulation.world.intake(), page_url="https://shop.acme.example/checkout")
    backend.flush()
    window.queue_list.select(window.state.personal_queue)
    qtbot.waitUntil(lambda: window.model.row_by_id(s.id) is not None, timeout=timeout(2))
    window.accept_row(s.id)
    qtbot.waitUntil(lambda: s.id in window.session_tabs, timeout=timeout(5))
    return window.session_tabs[s.id]


def test_the_simulators_browser_tab_streams_the_shop_page(qtbot: Any, sim_window: Any) -> None:
    window, backend = sim_window, sim_window.backend
    tab = open_browser_tab(qtbot, window)
    view = tab.cobrowse_view
    assert view is not None and window.tabs.currentWidget() is tab
    qtbot.waitUntil(lambda: tab.session_id in backend.pages.playing, timeout=timeout(5))
    text = replica_text(qtbot, view, "Delivery details")  # the recording opens on the shop's delivery page
    assert "Collect from a locker" in text
    assert view.url_label.text() == f"Customer is on: {load_recording().url}"
    assert view.title_label.text() == "Acme Store — Delivery"
    assert view.state_label.text() == "Live"
    # The recording plays on: its changes keep coming, live.
    qtbot.waitUntil(lambda: view.delay is not None and view.delay_label.isVisible(), timeout=timeout(10))
    assert view.delay < 1

    # A click points (the simulated customer takes no notice); "Open in browser" is refused, plainly.
    with qtbot.waitSignal(view.pointRequested, timeout=timeout(5)):
        qtbot.mouseClick(view.web.focusProxy(), Qt.MouseButton.LeftButton, pos=QPoint(60, 60))
    with qtbot.waitSignal(window.commandFailed, timeout=timeout(5)) as refused:
        view.open_button.click()
    assert refused.args == ["Open in browser", "Opening the customer's page in a web browser is not available in the simulator."]

    backend.pages.stop_sharing(tab.session_id)
    assert view.state_label.text() == "Stopped sharing"
    wait_js(qtbot, view, "document.getElementById('veil').textContent", lambda t: t == "The customer stopped sharing.")

    # Ending the session closes the tab, and the page is no longer watched.
    tab.end_button.click()
    assert tab.confirm_dialog is not None
    tab.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: tab.session_id not in window.session_tabs, timeout=timeout(5))
    qtbot.waitUntil(lambda: not backend.watching, timeout=timeout(5))
    assert ME not in backend.engine.session(tab.session_id).participants


# ---------------------------------------------------------------- over the server


@pytest.fixture
def relay(qtbot: Any, aloop: Any) -> Iterator[Any]:
    """test_cobrowse_backend's fake server with the co-browse relay, on the qasync loop."""
    from test_cobrowse_backend import RelayServer
    from test_websocket_backend import Pulse, serving_in_qt

    with serving_in_qt(qtbot, aloop, RelayServer(Pulse())) as server:
        yield server


def run(qtbot: Any, coro: Any) -> Any:
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout(5))
    return task.result()


def test_over_the_server_the_tab_watches_the_page_and_watches_it_again_after_a_reconnect(qtbot: Any, relay: Any, tmp_path: Path) -> None:
    from test_websocket_backend import PASSWORD

    from repconsole.ui.app import build_window

    sid = relay.engine.start_browser("link-me", relay.world.intake(), page_url="https://shop.acme.example/checkout").id
    backend = WebSocketBackend(relay.url, ME, PASSWORD, backoff=(0.05,), connect_timeout=5)
    window = build_window(backend, tmp_path / "settings")
    qtbot.addWidget(window)
    window.show()
    window.start_soon()
    qtbot.waitUntil(lambda: backend.state.value == "live", timeout=timeout(5))
    window.queue_list.select(window.state.personal_queue)
    qtbot.waitUntil(lambda: window.model.row_by_id(sid) is not None, timeout=timeout(2))
    window.accept_row(sid)
    qtbot.waitUntil(lambda: sid in window.session_tabs and bool(relay.watching(sid)), timeout=timeout(5))
    view = window.session_tabs[sid].cobrowse_view
    assert view is not None
    qtbot.waitUntil(lambda: view.state is PageState.LIVE, timeout=timeout(5))

    # The server's clock is far from this one: the delay is measured on the server's.
    assert abs(backend.clock_offset) > 3600
    text = json.dumps(load_recording().events)
    qtbot.wait(500)  # the server got the batch 0.3 s ago, after the watch: not from its buffer
    run(qtbot, relay.stream(sid, text, parts=3, at=backend.server_time() - 0.3))
    replica_text(qtbot, view, "Your card was declined")
    qtbot.waitUntil(lambda: view.delay is not None, timeout=timeout(5))
    assert 0.25 < view.delay < 3

    with qtbot.waitSignal(view.pointRequested, timeout=timeout(5)) as blocker:
        qtbot.mouseClick(view.web.focusProxy(), Qt.MouseButton.LeftButton, pos=QPoint(80, 40))
    qtbot.waitUntil(lambda: bool(relay.received_commands("cobrowse_point")), timeout=timeout(5))
    point = relay.received_commands("cobrowse_point")[-1].args
    assert point == {"session": sid, "x": pytest.approx(blocker.args[0]), "y": pytest.approx(blocker.args[1])}

    relay.accepting = False
    run(qtbot, relay.cut())
    qtbot.waitUntil(lambda: view.state is PageState.RECONNECTING, timeout=timeout(5))
    assert view.state_label.text() == "Reconnecting…"
    relay.accepting = True
    qtbot.waitUntil(lambda: view.state is PageState.LIVE and len(relay.received_commands("cobrowse_watch")) == 2, timeout=timeout(5))
    run(qtbot, relay.stream(sid, text, parts=3))
    qtbot.waitUntil(lambda: js(qtbot, view, "cobrowse.info()")["rendered"] == 2, timeout=timeout(10))
    window.quit_guard.close_now()
    run(qtbot, window.shutdown())
