"""The help-link snippet (cobrowse.js) on a merchant's site, in a real browser, against a real server.

The merchant's pages are served from another origin than the support
server (a second HTTP server on another port and host name) and load the
snippet from the support server, as a website that pastes it would.  A
rep (server_helpers' typed RepClient) accepts the session and watches the
page; what the customer types must never leave the browser, what changes on
the page must reach the rep, a rep's pointer must show on the page, Stop
must end the stream and not the chat, and the next page of the site must
pick the session up without asking for consent again.

Every frame the browser sends (the DevTools network log), every frame the
rep receives and every line the server logs are searched for what the
customer typed.

The first tests read files only.  The browser tests need the co-browsing
relay (``/cobrowse``, branch cb-server): without it they are skipped,
saying so.  Set ``REPCONSOLE_SCREENSHOTS=DIR`` to keep screenshots of the
help button, the consent banner, the sharing bar with the chat and the
pointer.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import LiveServer, chromium, find, needs_browser, socket_frames_sent, stored, wait
from conftest import TIMEOUT_SCALE

from repconsole.protocol import (
    CHUNK_CHARS,
    CobrowseName,
    CobrowseState,
    CommandName,
    MessageType,
    Origin,
    RrwebType,
)
from repconsole.server.app import STATIC_DIR

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = STATIC_DIR / "cobrowse.js"
STREAM = ROOT / "resources" / "cobrowse" / "shop.rrweb.json"
STORE_KEY = "repconsole.cobrowse"
CONSENT = "The support agent will see this page. Typed text is hidden."
MASK = "********"

# What the customer types in the tests: none of it may leave the browser.
TYPED = {
    "email, before consent": "ben.secret@example.org",
    "text field": "BENJAMIN Q FOX",
    "password": "hunter2-Passw0rd",
    "rc-mask note": "Happy birthday Zelda",
    "rc-block card": "4111 1111 1111 1111",
}


def _secrets() -> list[str]:
    # Each value, and its pieces a keystroke-by-keystroke stream could carry.
    out = []
    for value in TYPED.values():
        out.append(value)
        out.extend(w for w in re.split(r"[\s@.]+", value) if len(w) >= 5)
    return out


# ------------------------------------------------------ always-on checks


def test_the_snippet_is_small_speaks_the_protocol_and_masks_by_default() -> None:
    js = SNIPPET.read_text(encoding="utf-8")
    assert len(js.encode()) < 48 * 1024, "the snippet is loaded by every page of a merchant's site"
    # The wire, as repconsole.protocol defines it.
    assert f"var CHUNK_CHARS = {CHUNK_CHARS};" in js
    for kind in (MessageType.ATTACH, MessageType.RECORD, MessageType.PAGE, MessageType.STOP):
        assert f'type: "{kind.value}"' in js, kind
    for kind in (MessageType.ATTACHED, MessageType.SNAPSHOT_PLEASE, MessageType.POINTER, MessageType.WATCHING):
        assert f'msg.type === "{kind.value}"' in js, kind
    # The consent, word for word; the masking, as the issue asks.
    assert f'var CONSENT = "{CONSENT}";' in js
    for option in ("maskAllInputs: true", "maskInputOptions: { password: true }", 'maskTextClass: "rc-mask"', 'blockClass: "rc-block"'):
        assert option in js, option
    # Nothing from the server or the page is ever parsed as HTML or code.
    for text in (js, (STATIC_DIR / "support-chat.js").read_text(encoding="utf-8")):
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert risky not in text, risky


def test_the_recorded_stream_is_real_masked_and_small() -> None:
    raw = STREAM.read_bytes()
    assert len(raw) < 1024 * 1024
    doc = json.loads(raw)
    assert doc["format"] == "repconsole-cobrowse-stream/1" and doc["rrweb"] == "@rrweb/record 2.1.6"
    events = doc["events"]
    times = [e["timestamp"] for e in events]
    assert times == sorted(times) and doc["duration_ms"] == times[-1] - times[0] > 10_000
    types = [e["type"] for e in events]
    assert set(types) <= {t.value for t in RrwebType}
    # Every page starts as a whole: a Meta, then a FullSnapshot.
    metas = [i for i, t in enumerate(types) if t == RrwebType.META]
    assert len(metas) == len(doc["pages"]) == 2 and metas[0] == 0
    assert all(types[i + 1] == RrwebType.FULL_SNAPSHOT for i in metas)
    assert [p.rsplit("/", 1)[1] for p in doc["pages"]] == ["shop.html", "shop-checkout.html"]
    text = raw.decode()
    # The customer typed; the stream shows masks (the recording script's typed values).
    inputs = [e["data"] for e in events if e["type"] == RrwebType.INCREMENTAL_SNAPSHOT and e["data"]["source"] == 5]
    assert sum(1 for i in inputs if i["text"] == MASK) >= 5
    for secret in ("Ben Fox", "ben.fox@example.org", "07700", "BENJAMIN", "correct-horse", "Zelda", "birthday"):
        assert secret not in text, secret
    assert "127.0.0.1" not in text and "https://shop.example/" in text


# ------------------------------------------------------------ the browser

_HAVE_RELAY = importlib.util.find_spec("repconsole.server.cobrowse") is not None
needs_relay = pytest.mark.skipif(
    not _HAVE_RELAY, reason="the co-browsing relay (/cobrowse, branch cb-server) is not in this tree: nothing would record the page"
)


class Merchant:
    """The merchant's website: the demo shop's pages (and test pages) on an origin of their own,
    each loading the snippet from the support server with a given link."""

    def __init__(self) -> None:
        self.server_url = ""
        self.pages: dict[str, str] = {}
        merchant = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.split("?", 1)[0].lstrip("/") or "shop.html"
                body = merchant.page(name)
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="merchant", daemon=True)
        self.thread.start()
        # Another host name, another port: another origin, and another site.
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"

    def page(self, name: str) -> str | None:
        if name in self.pages:
            return self.pages[name]
        link = "link-shop"
        m = re.match(r"^(.*)--([a-z-]+)\.html$", name)  # shop--link-gone.html: the shop with link "link-gone"
        if m:
            name, link = m[1] + ".html", m[2]
        file = STATIC_DIR / name
        if name not in ("shop.html", "shop-checkout.html") or not file.is_file():
            return None
        html = file.read_text(encoding="utf-8")
        html = html.replace('href="style.css"', f'href="{self.server_url}/style.css"')
        return html.replace('<script src="cobrowse.js" data-link="link-accounts"', f'<script src="{self.server_url}/cobrowse.js" data-link="{link}"')

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _links(origin: str) -> str:
    return f"""
[[links]]
id = "link-shop"
name = "Acme Store help"
target = "rep:alice"
origins = ["{origin}"]

[[links]]
id = "link-old"
name = "Last year's sale"
target = "rep:alice"
origins = ["{origin}"]
expires_at = 2020-01-01T00:00:00Z

[[links]]
id = "link-elsewhere"
name = "Another site's link"
target = "rep:alice"
origins = ["https://elsewhere.example"]
"""


class ServerLog(logging.Handler):
    """Every line the server logs (repconsole's loggers at DEBUG, everything else at INFO)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def merchant() -> Iterator[Merchant]:
    site = Merchant()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    handler = ServerLog()
    root, ours = logging.getLogger(), logging.getLogger("repconsole")
    levels = (root.level, ours.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


@pytest.fixture
def live(request: pytest.FixtureRequest, tmp_path: Path, merchant: Merchant, server_log: ServerLog) -> Iterator[LiveServer]:
    """The support server; ``[server]`` settings by indirect parametrization (a string of TOML)."""
    settings = getattr(request, "param", "")
    # This tree's vendored rrweb, whichever install repconsole.resources comes from.
    server = LiveServer(tmp_path, options={"resources": ROOT / "resources"}, server=settings, extra=_links(merchant.origin))
    merchant.server_url = server.url
    try:
        status = _get(server.url + "/vendor/rrweb/record.min.js")
        if status != 200:
            pytest.skip(f"the server does not serve /vendor/rrweb/record.min.js ({status}): no co-browsing in this tree")
        yield server
    finally:
        server.close()


@pytest.fixture
def page(live: LiveServer, tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile", network_log=True) as browser:
        yield browser


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5 * TIMEOUT_SCALE) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def shot(driver: Any, name: str) -> None:
    """A screenshot into $REPCONSOLE_SCREENSHOTS, when it is set."""
    folder = os.environ.get("REPCONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


# The snippet draws in a closed shadow root of <repconsole-help>; WebDriver reaches into it.


def widget(driver: Any) -> Any:
    return find(driver, "repconsole-help").shadow_root


def in_widget(driver: Any, css: str) -> Any:
    return widget(driver).find_element("css selector", css)


def widget_has(driver: Any, css: str) -> bool:
    try:
        return bool(in_widget(driver, css).is_displayed())
    except Exception:
        return False


def widget_text(driver: Any, css: str) -> str:
    try:
        return " ".join(e.text for e in widget(driver).find_elements("css selector", css))
    except Exception:
        return ""


def widget_shows(css: str, text: str) -> Callable[[Any], bool]:
    return lambda d: text in widget_text(d, css)


def keys(driver: Any, text: str) -> None:
    """Type into whatever has the focus (WebDriver's send_keys cannot check focus inside a closed shadow root)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(text).perform()


def typed_into_widget(driver: Any, css: str, text: str) -> None:
    in_widget(driver, css).click()
    keys(driver, text)


def doc_center(driver: Any, css: str) -> tuple[float, float]:
    """The middle of an element of the page, in CSS pixels from the document's top left."""
    x, y = driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [r.left + scrollX + r.width / 2, r.top + scrollY + r.height / 2];",
        css,
    )
    return float(x), float(y)


def page_events(live: LiveServer, rep: Any, sid: str) -> list[Any]:
    """The rrweb events the rep was sent of session ``sid``'s page, so far (reading what has come)."""

    async def read() -> list[Any]:
        await rep.drain(0.05)
        return list(rep.page.events(sid))

    return live.call(read())


def wait_page(live: LiveServer, rep: Any, sid: str, check: Callable[[list[Any]], bool], what: str, seconds: float = 8.0) -> list[Any]:
    """Read the rep's stream until ``check(events)`` holds."""

    async def until() -> list[Any]:
        await rep.until(lambda: check(rep.page.events(sid)), timeout=seconds)
        return list(rep.page.events(sid))

    try:
        return live.call(until(), timeout=seconds + 5)
    except TimeoutError:
        raise AssertionError(f"the rep's stream never had {what}") from None


def snapshot_text(event: dict[str, Any]) -> str:
    """All the text of a FullSnapshot (its JSON is enough to search)."""
    return json.dumps(event["data"], ensure_ascii=False)


def full_snapshots(events: list[Any]) -> list[Any]:
    return [e for e in events if e["type"] == RrwebType.FULL_SNAPSHOT]


def watch(live: LiveServer, rep: Any, sid: str) -> Any:
    return live.call(rep.ok(CobrowseName.WATCH.value, session=sid))


# ------------------------------------------------------------ the tests


@needs_browser
@needs_relay
def test_a_merchant_page_shares_itself_masked_with_the_rep_follows_the_customer_and_stops(
    live: LiveServer, page: Any, merchant: Merchant, server_log: ServerLog
) -> None:
    alice = live.rep("alice")

    # The merchant's delivery page, on its own origin, with the snippet from the support server.
    page.get(merchant.origin + "/shop.html")
    wait(page, lambda d: widget_has(d, ".rc-cb-launcher"), what="the help button")
    launcher = in_widget(page, ".rc-cb-launcher")
    assert launcher.tag_name == "button" and launcher.text == "Help" and launcher.get_attribute("aria-expanded") == "false"
    shot(page, "1-help-button")
    # Typed before consent: the first snapshot carries the field, masked.
    find(page, "#full-name").send_keys("Ben Fox")
    find(page, "#email").send_keys(TYPED["email, before consent"])
    # A page larger than a frame: its first snapshot goes in several parts.
    page.execute_script("const p = document.createElement('p'); p.textContent = 'Zürich € '.repeat(6000); document.querySelector('footer').append(p)")

    launcher.click()
    wait(page, lambda d: widget_has(d, "#rc-cb-name"), what="the start form")
    assert launcher.get_attribute("aria-expanded") == "true"
    assert in_widget(page, "#rc-cb-name").get_attribute("value") == "Ben Fox"  # from the page's name field
    assert page.execute_script("return document.activeElement.tagName") == "REPCONSOLE-HELP"  # focus went into the widget
    # The link names no issue: the customer picks one (the site's issues, from /api/link).
    from selenium.webdriver.support.ui import Select

    Select(in_widget(page, "#rc-cb-issue")).select_by_value("invoice")
    in_widget(page, ".rc-widget-intro [type=submit]").click()

    # The consent banner, before anything is started, loaded or recorded.
    wait(page, widget_shows(".rc-cb-consent", CONSENT), what="the consent banner")
    assert in_widget(page, ".rc-cb-consent-text").text == CONSENT
    assert live.sessions() == []
    assert not page.execute_script("return performance.getEntriesByType('resource').some(e => /record\\.min\\.js/.test(e.name))")
    shot(page, "2-consent")
    in_widget(page, "[data-consent=allow]").click()

    # Sharing: the bar, the chat, and the session in Alice's queue.
    wait(page, widget_shows(".rc-cb-bar", "Sharing this page with support"), what="the sharing bar")
    session = live.arrival(alice, "Ben Fox")
    sid = session.id
    assert session.browser is True and session.origin is Origin.BROWSER_REP and session.issue_code == "invoice"
    assert session.page_url == merchant.origin + "/shop.html" and session.portal == "Acme Store"
    assert stored(page, STORE_KEY)["extra"]["sharing"] is True
    live.call(alice.ok(CommandName.ACCEPT, session=sid))
    result = watch(live, alice, sid)
    assert result.url == merchant.origin + "/shop.html"
    events = wait_page(live, alice, sid, lambda ev: bool(full_snapshots(ev)), "a full snapshot")
    first = snapshot_text(full_snapshots(events)[0])
    assert "Delivery details" in first and "Zürich € Zürich" in first
    assert any(c.parts > 1 for c in _chunks(alice, sid)), "a big snapshot comes in parts"
    assert MASK in first  # the email typed before consent, as the rep sees it
    wait(page, widget_shows(".rc-cb-bar", "Alice Ng is viewing this page"), what="who watches")
    wait(page, widget_shows(".rc-chat-title", "You're chatting with Alice Ng"))
    live.call(alice.ok(CommandName.SAY, session=sid, text="I can see your delivery page."))
    wait(page, widget_shows(".rc-line-rep", "I can see your delivery page."))
    assert "They can see this page while you share it." in widget_text(page, ".rc-chat-sub")
    shot(page, "3-sharing-bar-and-chat")

    # On to the payment page: the same session, shared at once, no consent asked again.
    find(page, "#to-payment").click()
    wait(page, lambda d: d.title == "Acme Store — Payment")
    wait(page, widget_shows(".rc-cb-bar", "Sharing this page with support"), what="the bar on the next page")
    assert not widget(page).find_elements("css selector", ".rc-cb-consent")
    wait(page, widget_shows(".rc-line-rep", "I can see your delivery page."), what="the chat, resumed")
    events = wait_page(live, alice, sid, lambda ev: any("Your card was declined" in snapshot_text(e) for e in full_snapshots(ev)), "the payment page")
    assert [e["data"]["href"] for e in events if e["type"] == RrwebType.META][-1] == merchant.origin + "/shop-checkout.html"
    assert stored(page, STORE_KEY)["session"] == sid and len(live.sessions()) == 1
    checkout = [e for e in full_snapshots(events) if "Your card was declined" in snapshot_text(e)][-1]
    assert "ben.fox@example.com" not in snapshot_text(checkout)  # the rc-mask account line, masked
    assert "Card details are never shared" not in snapshot_text(checkout)  # the rc-block card box, left out

    # The customer types everywhere; the page changes.
    find(page, "#card-name").send_keys(TYPED["text field"])
    find(page, "#account-password").send_keys(TYPED["password"])
    find(page, "#card-number").send_keys(TYPED["rc-block card"])
    find(page, "#gift-note").click()
    keys(page, TYPED["rc-mask note"])
    page.execute_script("document.getElementById('payment-title').textContent = 'Card (checked by support)'")
    wait_page(live, alice, sid, lambda ev: "Card (checked by support)" in json.dumps(ev), "the page's change")
    events = wait_page(live, alice, sid, lambda ev: _masked_inputs(ev) >= 2, "the typing, masked")
    notes = [t["value"] for e in events if e["type"] == RrwebType.INCREMENTAL_SNAPSHOT for t in e["data"].get("texts", [])]
    assert any(n.startswith("*****") for n in notes), notes  # the rc-mask note's text, masked as typed

    # A rep's pointer shows on the customer's page, scrolled into view, with the rep's name.
    page.execute_script("window.scrollTo(0, 0)")
    x, y = doc_center(page, ".acme-pay")
    live.call(alice.ok(CobrowseName.POINT.value, session=sid, x=x, y=y))
    wait(page, lambda d: widget_has(d, ".rc-cb-ring"), what="the pointer ring")
    assert widget_text(page, ".rc-cb-ring-label") == "Alice Ng"
    wait(page, lambda d: 0 < d.execute_script("return arguments[0] - scrollY", y) < d.execute_script("return innerHeight"), what="the point in view")
    shot(page, "4-pointer")
    wait(page, lambda d: not widget_has(d, ".rc-cb-ring"), seconds=6, what="the ring going after a few seconds")

    # Nothing typed ever left the browser: not in a frame the page sent, not in one the rep got, not in the log.
    sent = socket_frames_sent(page)
    assert any("/cobrowse" in url for url, _ in sent) and any('"type":"record"' in f for _, f in sent)
    for secret in _secrets():
        assert not [u for u, f in sent if secret in f], f"the browser sent {secret!r}"
        assert not [f for f in alice.raw if secret in f], f"the rep got {secret!r}"
        assert not [line for line in server_log.lines if secret in line], f"the server logged {secret!r}"

    # Stop: the recording and the bar go, the rep is told, the chat goes on.
    in_widget(page, ".rc-cb-stop").click()
    wait(page, lambda d: not widget_has(d, ".rc-cb-bar"), what="the bar gone")
    assert "You stopped sharing this page. The chat goes on." in widget_text(page, ".rc-log")

    async def stopped() -> None:
        await alice.until(lambda: alice.page.state(sid) is CobrowseState.STOPPED, timeout=5)

    live.call(stopped())
    assert stored(page, STORE_KEY)["extra"]["sharing"] is False
    live.call(alice.ok(CommandName.SAY, session=sid, text="No problem, I'll guide you from here."))
    wait(page, widget_shows(".rc-line-rep", "guide you from here"))
    count = len(page_events(live, alice, sid))

    def attaches() -> int:
        return sum(1 for _, f in socket_frames_sent(page) if '"type":"attach"' in f)

    before = attaches()
    page.back()  # and no other page shares either: the delivery page (maybe from the back-forward cache)...
    wait(page, widget_shows(".rc-line-rep", "guide you from here"), what="the chat on the delivery page")
    page.get(merchant.origin + "/shop-checkout.html")  # ...nor a fresh one
    wait(page, widget_shows(".rc-line-rep", "guide you from here"), what="the chat on the payment page")
    find(page, "#card-name").send_keys("more typing")
    assert not widget_has(page, ".rc-cb-bar")
    assert attaches() == before
    assert len(page_events(live, alice, sid)) == count


def _chunks(rep: Any, sid: str) -> list[Any]:
    from repconsole.protocol import CobrowseChunk

    return [m for m in rep.received if isinstance(m, CobrowseChunk) and m.session == sid]


def _masked_inputs(events: list[Any]) -> int:
    return sum(1 for e in events if e["type"] == RrwebType.INCREMENTAL_SNAPSHOT and e["data"]["source"] == 5 and e["data"].get("text") == MASK)


@needs_browser
@needs_relay
def test_links_that_cannot_help_say_why_and_start_nothing(live: LiveServer, page: Any, merchant: Merchant) -> None:
    def try_link(url: str) -> str:
        page.get(url)
        wait(page, lambda d: widget_has(d, ".rc-cb-launcher"), what="the help button")
        in_widget(page, ".rc-cb-launcher").click()

        def reason(d: Any) -> str | bool:
            for el in widget(d).find_elements("css selector", "[role=alert][data-reason]"):
                if el.is_displayed():
                    return str(el.get_attribute("data-reason"))
            if widget_has(d, "#rc-cb-name") and not widget_has(d, ".rc-cb-consent"):
                typed_into_widget(d, "#rc-cb-name", "Cy Dunn")
                in_widget(d, ".rc-widget-intro [type=submit]").click()
            if widget_has(d, "[data-consent=allow]") and in_widget(d, "[data-consent=allow]").is_enabled():
                in_widget(d, "[data-consent=allow]").click()
            return False

        return str(wait(page, reason, seconds=10, what=f"a reason on {url}"))

    # An expired link, and one revoked by an administrator a moment ago.
    assert try_link(merchant.origin + "/shop--link-old.html") == "link_expired"
    assert "This help link has expired." in widget_text(page, "[role=alert]")

    async def revoke() -> None:
        from repconsole.core.model import QueueRef
        from repconsole.server.links import new_row

        store = live.server.runtime.store
        store.add_link(new_row("link-gone", "Spring sale help", QueueRef.personal("alice"), issue=None, origins=(merchant.origin,), lifetime=None))
        store.revoke_link("link-gone", 0.0)

    live.call(revoke())
    assert try_link(merchant.origin + "/shop--link-gone.html") == "link_revoked"
    assert "This help link has been switched off." in widget_text(page, "[role=alert]")

    # A link the server does not know (on the server's own pages, where nothing hides the answer).
    assert try_link(live.url + "/shop.html") == "unknown_link"  # its link-accounts is not in the test site
    # A link whose site is another one: the server refuses this origin at the handshake.
    assert try_link(merchant.origin + "/shop--link-elsewhere.html") == "origin_refused"
    assert "the support server doesn't accept it" in widget_text(page, "[role=alert]")
    assert live.sessions() == []

    # The server out of reach (the network gone): say so, and offer to try again.
    page.get(merchant.origin + "/shop.html")
    wait(page, lambda d: widget_has(d, ".rc-cb-launcher"))
    page.set_network_conditions(offline=True, latency=0, throughput=0)  # the page is loaded; its server is gone
    try:
        in_widget(page, ".rc-cb-launcher").click()
        wait(page, lambda d: widget_has(d, "[role=alert][data-reason=network]"), seconds=10, what="the network error")
        assert "We couldn't reach the support server." in widget_text(page, "[role=alert]")
        assert "Try again" in widget_text(page, ".rc-cb-unavailable")
    finally:
        page.set_network_conditions(offline=False, latency=0, throughput=-1, download_throughput=-1, upload_throughput=-1)
    in_widget(page, ".rc-cb-unavailable .rc-button").click()  # Try again
    wait(page, lambda d: widget_has(d, "#rc-cb-name"), seconds=10, what="the form, once the network is back")

    # The browser logged what failed (a 404, a refused handshake, no network): only that.
    expected = re.compile(r"Failed to load resource|WebSocket connection to|ERR_INTERNET_DISCONNECTED|blocked by CORS policy|/api/link/")
    errors = [e["message"] for e in page.get_log("browser") if e["level"] == "SEVERE"]
    assert [m for m in errors if not expected.search(m)] == []


_HOSTILE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Hostile</title><link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  html { font-size: 10px; }
  * { font: italic 40px/3 "Comic Sans MS", cursive !important; color: red !important; letter-spacing: 4px !important; }
  button, div, span, section, form, input, h2, p { display: block !important; position: static !important;
    margin: 30px !important; padding: 0 !important; background: yellow !important; border: 5px dashed lime !important;
    width: auto !important; height: auto !important; opacity: 0.5 !important; transform: rotate(3deg) !important; }
  repconsole-help > * { display: none !important; }
  body { display: flex; flex-direction: column; }
</style></head>
<body><main><h1 id="title">Hostile shop</h1><p id="para">Our CSS styles everything it can reach.</p>
<label for="q">Search</label><input id="q"><button id="last" type="button">Last control of the page</button></main>
<script src="SERVER/cobrowse.js" data-link="link-shop" async></script>
</body></html>
"""


@needs_browser
@needs_relay
def test_the_help_button_is_a_keyboard_button_the_page_cannot_restyle_or_shift(live: LiveServer, page: Any, merchant: Merchant) -> None:
    from selenium.webdriver.common.keys import Keys

    merchant.pages["hostile.html"] = _HOSTILE.replace("SERVER", live.url)
    merchant.pages["bare.html"] = re.sub(r"<script .*</script>", "", _HOSTILE)  # the same page without the snippet
    layout = "return ['title', 'para', 'q', 'last'].map(id => JSON.stringify(document.getElementById(id).getBoundingClientRect()))"
    page.get(merchant.origin + "/bare.html")
    before = page.execute_script(layout)
    page.get(merchant.origin + "/hostile.html")
    wait(page, lambda d: widget_has(d, ".rc-cb-launcher"), what="the help button despite the page's CSS")
    assert page.execute_script(layout) == before, "the snippet moved the page"
    launcher = in_widget(page, ".rc-cb-launcher")
    style = page.execute_script("const s = getComputedStyle(arguments[0]); return [s.fontSize, s.fontStyle, s.color, s.position]", launcher)
    assert style == ["16px", "normal", "rgb(255, 255, 255)", "fixed"]

    # The keyboard: Tab from the page's last control reaches the button; Enter opens, Escape closes.
    find(page, "#last").click()
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert page.execute_script("return document.activeElement.tagName") == "REPCONSOLE-HELP"
    keys(page, Keys.ENTER)
    wait(page, lambda d: widget_has(d, "#rc-cb-name"), what="the form, opened from the keyboard")
    panel = in_widget(page, ".rc-widget")
    assert panel.get_attribute("role") == "dialog" and panel.accessible_name == "Live help"
    assert in_widget(page, "#rc-cb-name").accessible_name == "Your name"
    keys(page, "Ann")
    keys(page, Keys.ESCAPE)
    wait(page, lambda d: not widget_has(d, ".rc-widget"), what="Escape minimizes")
    assert in_widget(page, ".rc-cb-launcher").get_attribute("aria-expanded") == "false"
    keys(page, Keys.ENTER)  # the focus went back to the button
    wait(page, lambda d: widget_has(d, "#rc-cb-name"))
    assert in_widget(page, "#rc-cb-name").get_attribute("value") == "Ann"  # what was typed is kept
    keys(page, Keys.TAB + Keys.ARROW_DOWN)  # the first issue
    keys(page, Keys.TAB + Keys.TAB + Keys.ENTER)  # past the details, Continue: the consent banner
    wait(page, widget_shows(".rc-cb-consent", CONSENT))
    keys(page, Keys.TAB)
    keys(page, Keys.TAB)
    keys(page, Keys.ENTER)  # Cancel
    wait(page, lambda d: not widget_has(d, ".rc-widget"), what="Cancel closes")
    assert live.sessions() == []


def start_sharing(live: LiveServer, page: Any, url: str, rep: Any, name: str) -> str:
    """The customer asks for help on ``url`` and allows sharing; ``rep`` accepts and watches.  The session."""
    from selenium.webdriver.support.ui import Select

    page.get(url)
    wait(page, lambda d: widget_has(d, ".rc-cb-launcher"), what="the help button")
    in_widget(page, ".rc-cb-launcher").click()
    wait(page, lambda d: widget_has(d, "#rc-cb-name"), what="the start form")
    typed_into_widget(page, "#rc-cb-name", name)
    Select(in_widget(page, "#rc-cb-issue")).select_by_index(1)
    in_widget(page, ".rc-widget-intro [type=submit]").click()
    wait(page, lambda d: widget_has(d, "[data-consent=allow]"), what="the consent banner")
    in_widget(page, "[data-consent=allow]").click()
    sid = live.arrival(rep, name).id
    live.call(rep.ok(CommandName.ACCEPT, session=sid))
    watch(live, rep, sid)
    wait_page(live, rep, sid, lambda ev: bool(full_snapshots(ev)), "the page")
    return sid


@needs_browser
@needs_relay
@pytest.mark.parametrize("live", ["cobrowse_buffer = 65536"], indirect=True)
def test_a_reload_resumes_a_resync_is_answered_and_the_end_of_the_session_ends_sharing(live: LiveServer, page: Any, merchant: Merchant) -> None:
    alice = live.rep("alice")
    sid = start_sharing(live, page, merchant.origin + "/shop-checkout.html", alice, "Dee Park")

    # The page's own help link (data-repconsole-help) brings the minimized chat back, and goes nowhere.
    in_widget(page, ".rc-widget-close").click()
    wait(page, lambda d: not widget_has(d, ".rc-widget"))
    find(page, ".acme-help-inline").click()
    wait(page, lambda d: widget_has(d, ".rc-widget"), what="the chat, from the page's link")
    assert page.title == "Acme Store — Payment"

    # A single-page app moves on: the rep is told the new address and title.
    page.execute_script("history.pushState({}, '', '?step=confirm'); document.title = 'Acme Store — Confirm'")

    async def moved() -> None:
        def told() -> bool:
            return any(st.url.endswith("?step=confirm") and st.title == "Acme Store — Confirm" for st in alice.page.statuses.get(sid, []))

        await alice.until(told, timeout=5)

    live.call(moved())

    # A reload: the same session, shared again from a fresh snapshot, without asking.
    snapshots = len(full_snapshots(page_events(live, alice, sid)))
    page.refresh()
    wait(page, widget_shows(".rc-cb-bar", "Alice Ng is viewing this page"), what="the bar after the reload")
    wait_page(live, alice, sid, lambda ev: len(full_snapshots(ev)) > snapshots, "a snapshot after the reload")
    assert not widget(page).find_elements("css selector", ".rc-cb-consent")

    # The page changes faster than the relay keeps (its buffer is 64 KiB here): the relay
    # asks for a fresh snapshot (snapshot_please), the page sends one, and the stream is live again.
    snapshots = len(full_snapshots(page_events(live, alice, sid)))
    page.execute_script(
        "const p = document.createElement('p'); document.querySelector('footer').append(p);"
        "let n = 0; const t = setInterval(() => { p.textContent = String(n).repeat(4000); if (++n === 30) clearInterval(t); }, 20);"
    )

    async def resynced() -> None:
        def done() -> bool:
            states = [st.state for st in alice.page.statuses.get(sid, [])]
            return CobrowseState.RESYNC in states and states[-1] is CobrowseState.LIVE

        # The server's clock is virtual: its rate bucket refills (and its ask goes out) as it moves on.
        while not done():
            live.clock.advance(0.5)
            await alice.drain(0.1)

    try:
        live.call(resynced(), timeout=15)
    except TimeoutError:
        raise AssertionError([(st.state, st.detail) for st in alice.page.statuses.get(sid, [])]) from None
    assert len(full_snapshots(page_events(live, alice, sid))) > snapshots

    # The rep ends the session: the chat says so, and sharing is over with it.
    live.call(alice.ok(CommandName.END, session=sid))
    wait(page, widget_shows(".rc-chat-title", "The session has ended"))
    wait(page, lambda d: not widget_has(d, ".rc-cb-bar"), what="the bar gone with the session")
    assert stored(page, STORE_KEY) is None
    page.refresh()
    wait(page, lambda d: widget_has(d, ".rc-cb-launcher"))
    assert not widget_has(page, ".rc-cb-bar") and not widget_has(page, ".rc-widget")

