"""The customer pages (repconsole/server/static/): served right, self-contained, and working in a real browser.

The first tests need nothing but the server.  The rest drive headless
Chromium through Selenium against a real server running in-process on its
own asyncio loop (a thread), while reps speak the real protocol to it over
WebSocket (:mod:`server_helpers`' typed clients): what the customer does on the page must reach the rep, and what
the rep does must show on the page.  They are skipped, saying why, only
where /usr/bin/chromium or /usr/bin/chromedriver is missing (.ci/run
installs both).  The help link on other sites (cobrowse.js, shop.html) is
test_cobrowse_pages'.
"""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import LiveServer, choose, chromium, find, needs_browser, shows, stored, text_of, type_into, wait
from conftest import TIMEOUT_SCALE
from server_helpers import run, serving, write_site
from websockets.exceptions import ConnectionClosed

from repconsole.protocol import (
    CUSTOMER,
    CommandName,
    Error,
    ErrorReason,
    Leave,
    Origin,
    SessionState,
    Start,
    Visibility,
    encode,
)
from repconsole.server.app import STATIC_DIR
from repconsole.server.customers import POSITION_EVERY, _Answered

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
PAGES = ("index.html", "shop.html", "shop-checkout.html")


def static_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.iterdir() if p.is_file())


# ------------------------------------------------------ always-on checks


def test_the_customer_pages_are_all_there_and_shipped() -> None:
    names = {p.name for p in static_files()}
    pages = {"index.html", "shop.html", "shop-checkout.html", "support.js", "support-chat.js", "style.css"}
    assert pages | {"cobrowse.js", "cobrowse.css"} <= names
    # The server serves .html, .js and .css files, no subdirectories; the
    # wheel's package-data takes exactly those (pyproject.toml).
    assert all(p.suffix in CONTENT_TYPES for p in static_files()), names
    assert not [p for p in STATIC_DIR.iterdir() if p.is_dir()]


def test_every_static_file_is_served_with_its_content_type(tmp_path: Path) -> None:
    site = write_site(tmp_path)

    def get(port: int, path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5 * TIMEOUT_SCALE) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            for file in static_files():
                for path in (f"/{file.name}", f"/static/{file.name}"):
                    status, ctype, body = await asyncio.to_thread(get, server.port, path)
                    assert (status, ctype) == (200, CONTENT_TYPES[file.suffix]), path
                    assert body == file.read_bytes(), path
            index = (STATIC_DIR / "index.html").read_bytes()
            for path in ("/", "/support"):
                assert await asyncio.to_thread(get, server.port, path) == (200, CONTENT_TYPES[".html"], index), path

    run(main())


_URL = re.compile(r"""(?:https?:)?//[^\s"'()<>]+""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]*)""", re.IGNORECASE)
_ANY_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _without_js_comments(text: str) -> str:
    # "//" starts most comments; a URL in a comment is harmless, in code it is not.
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(?m)^\s*//.*$", "", text)


# A name, not an address: what createElementNS needs to draw an icon.
_SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def test_no_file_refers_to_another_host() -> None:
    """Everything is local: no CDN, no fonts, no analytics, no http(s):// at all (but the SVG namespace's name)."""
    for file in static_files():
        text = file.read_text(encoding="utf-8").replace(f'"{_SVG_NAMESPACE}"', '""')
        assert not re.findall(r"https?://", text, re.IGNORECASE), f"{file.name} names an absolute URL"
        if file.suffix == ".js":
            found = _URL.findall(_without_js_comments(text))
            assert not found, f"{file.name}: {found}"
        if file.suffix == ".css":
            for target in _CSS_URL.findall(text):
                assert target.startswith("data:") or not (_ANY_SCHEME.match(target) or target.startswith("//")), target
            assert "@import" not in text
        if file.suffix == ".html":
            page = parse_page(file)
            for tag, attr, value in page.references:
                if value.startswith(("data:", "#")):
                    continue
                assert not _ANY_SCHEME.match(value) and not value.startswith("//"), f"{file.name}: <{tag} {attr}={value!r}>"
                assert (STATIC_DIR / urllib.parse.urlsplit(value).path.lstrip("/")).is_file(), f"{file.name}: {value} is missing"


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SVG_EMPTY = {"path", "circle", "rect", "line", "polyline", "polygon", "ellipse"}


class _Page(HTMLParser):
    """A strict reading: every element closed in order, ids unique, references resolved."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.references: list[tuple[str, str, str]] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = {k: v or "" for k, v in attrs}
        if len(d) != len(attrs):
            self.problems.append(f"line {self.getpos()[0]}: <{tag}> repeats an attribute")
        self.elements.append((tag, d))
        if "id" in d:
            self.ids.append(d["id"])
        for attr in ("src", "href", "action"):
            if attr in d:
                self.references.append((tag, attr, d[attr]))
        if tag not in _VOID:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> closes a void element")
            return
        if not self.stack or self.stack[-1][0] != tag:
            open_ = self.stack[-1] if self.stack else ("nothing", 0)
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> while <{open_[0]}> (line {open_[1]}) is open")
            return
        self.stack.pop()


def parse_page(file: Path) -> _Page:
    page = _Page()
    page.feed(file.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.mark.parametrize("name", PAGES)
def test_the_pages_parse_and_hold_together(name: str) -> None:
    page = parse_page(STATIC_DIR / name)
    assert page.doctype.lower() == "doctype html"
    assert not page.problems, page.problems
    assert not page.stack, f"never closed: {page.stack}"
    assert len(page.ids) == len(set(page.ids)), sorted(i for i in page.ids if page.ids.count(i) > 1)
    ids = set(page.ids)
    tags = [tag for tag, _ in page.elements]
    assert tags[:1] == ["html"] and dict(page.elements[0][1]).get("lang"), "<html lang=…> first"
    assert tags.count("title") == 1 and tags.count("main") == 1
    labelled = {d["for"] for tag, d in page.elements if tag == "label" and "for" in d}
    assert labelled <= ids, labelled - ids
    for tag, d in page.elements:
        for attr in ("aria-controls", "aria-labelledby", "aria-describedby"):
            for ref in d.get(attr, "").split():
                assert ref in ids, f"<{tag} {attr}={ref!r}> names no element"
        if tag in ("input", "select", "textarea") and d.get("type") not in ("hidden", "submit", "button"):
            assert d.get("id") in labelled or "aria-label" in d, f"<{tag} id={d.get('id')!r}> has no label"
        if tag == "script":
            assert "src" in d, "no inline script: the pages work under a strict Content-Security-Policy"
        assert not any(a.startswith("on") for a in d), f"<{tag}> has an inline event handler"
    head = [tag for tag, d in page.elements if tag == "meta" and d.get("name") == "viewport"]
    assert head, "a viewport meta tag: the pages must work on a phone"


# ------------------------------------------------------------ the browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def page(live: LiveServer, tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium for the test (it quits before the server stops)."""
    with chromium(tmp_path / "chromium-profile") as browser:
        yield browser


@needs_browser
def test_the_issue_form_reaches_the_team_and_the_chat_works_both_ways(live: LiveServer, page: Any) -> None:
    alice = live.rep("alice")
    # Someone is already waiting for Networking: the page's customer is second.
    first = live.customer("Zoe First", "vpn")

    page.get(live.url + "/")
    wait(page, lambda d: find(d, '#issue-issue option[value="vpn"]'), what="the issues from /api/site")
    assert text_of(page, "#online-text") == "1 representative online"
    groups = [g.get_attribute("label") for g in page.find_elements("css selector", "#issue-issue optgroup")]
    assert groups == ["Network", "Billing", "Hardware"]

    # The page checks what the server would refuse, and starts nothing.
    find(page, "#panel-issue [type=submit]").click()
    wait(page, shows("#panel-issue .rc-field-error", "Please enter your name."))
    assert find(page, "#issue-name").get_attribute("aria-invalid") == "true"
    assert "Please choose what you need help with." in text_of(page, "#panel-issue")
    type_into(page, "#issue-details", "x" * 1025)
    wait(page, shows("#issue-details-count", "1,025 / 1,024"))
    type_into(page, "#issue-name", "Ann Lee")
    choose(page, "#issue-issue", "vpn")
    find(page, "#panel-issue [type=submit]").click()
    wait(page, shows("#panel-issue .rc-field-error", "The description can be at most 1,024 characters"))
    assert len(live.sessions()) == 1

    type_into(page, "#issue-company", "Acme Corp")
    type_into(page, "#issue-details", "It says error 809 since this morning.")
    type_into(page, "#issue-ticket", "INC-10422")
    page.execute_script("RepconsoleSupport.config.holdEverySeconds = 0.2")
    find(page, "#panel-issue [type=submit]").click()

    wait(page, shows(".rc-chat-sub", "You're number 2 in line."), what="the position")
    assert "Hi Ann, thanks for contacting us." in text_of(page, ".rc-log")
    wait(page, lambda d: len(d.find_elements("css selector", '.rc-line-note[data-note="hold"]')) >= 2, what="the hold message, repeated")

    session = live.arrival(alice, "Ann Lee")
    sid = session.id
    assert session.queue == "team:net" and session.origin is Origin.ISSUE_FORM and session.state is SessionState.WAITING
    assert (session.issue_code, session.company, session.external_key) == ("vpn", "Acme Corp", "INC-10422")
    assert session.details == "It says error 809 since this morning."
    assert session.portal == "Support site" and "Chrome" in session.platform and session.locale
    assert stored(page)["session"] == sid

    # The one ahead gives up: Ann moves up.
    live.call(first.request(Leave))
    live.advance(POSITION_EVERY)
    wait(page, shows(".rc-chat-sub", "You're next in line."), what="the refreshed position")

    live.call(alice.ok(CommandName.ACCEPT, session=sid))
    wait(page, shows(".rc-chat-title", "You're chatting with Alice Ng"))
    live.call(alice.ok(CommandName.SAY, session=sid, text="(reps only) customer on the Pro plan", reps_only=True))
    live.call(alice.ok(CommandName.SAY, session=sid, text="Hello from support"))
    wait(page, shows(".rc-line-rep", "Hello from support"))
    assert "Alice Ng" in text_of(page, ".rc-line-rep .rc-line-author")

    reply = "Thanks! It still says 809 <b>after</b> a reboot."
    type_into(page, ".rc-composer textarea", reply + "\n")
    line = live.chat_from_customer(alice, sid, reply)
    assert line.author == CUSTOMER and line.visibility is Visibility.ALL
    wait(page, shows(".rc-line-customer .rc-bubble", reply))  # as text, never as markup
    assert not page.find_elements("css selector", ".rc-log b")
    assert find(page, ".rc-composer textarea").get_attribute("value") == ""
    # The reps-only line came before the customer's reply on the same socket: it would be here by now.
    assert "Pro plan" not in page.page_source

    live.call(alice.ok(CommandName.END, session=sid))
    wait(page, shows(".rc-chat-title", "The session has ended"))
    assert "Ended by Alice Ng." in text_of(page, ".rc-chat-sub")
    assert not find(page, ".rc-composer textarea").is_enabled()
    assert stored(page) is None


@needs_browser
def test_a_wrong_session_key_shows_the_servers_reason_then_the_rate_limit(live: LiveServer, page: Any) -> None:
    page.get(live.url + "/?key=abc-defg")
    wait(page, lambda d: find(d, "#panel-key").is_displayed(), what="?key= opens the session key tab")
    assert find(page, "#tab-key").get_attribute("aria-selected") == "true"
    assert find(page, "#key-key").get_attribute("value") == "abc-defg"
    type_into(page, "#key-name", "Dee Park")
    find(page, "#panel-key [type=submit]").click()
    wait(page, shows("#panel-key .rc-alert", "That session key is not valid."), what="the server's reason")
    assert "We couldn't find that session key" in text_of(page, "#panel-key .rc-alert")
    assert find(page, "#key-key").get_attribute("aria-invalid") == "true"
    assert find(page, "#panel-key .rc-alert").get_attribute("data-reason") == "key_unknown"

    for attempt in range(2, 7):  # five wrong keys a minute per address, then no more
        type_into(page, "#key-key", f"WRONG{attempt:02d}")
        find(page, "#panel-key [type=submit]").click()
        reason = "key_rate_limited" if attempt == 6 else "key_unknown"
        # The button is busy until the server answers; then the alert is the new one.
        wait(page, lambda d, r=reason: find(d, "#panel-key [type=submit]").is_enabled()
             and find(d, "#panel-key .rc-alert").get_attribute("data-reason") == r)
    assert "Too many wrong session keys were tried from your network." in text_of(page, "#panel-key .rc-alert")
    assert "Too many wrong keys; wait a minute and try again." in text_of(page, "#panel-key .rc-alert")
    assert live.sessions() == []


@needs_browser
def test_a_session_key_read_out_over_the_phone_reaches_its_rep(live: LiveServer, page: Any) -> None:
    alice = live.rep("alice")
    key = live.call(alice.ok(CommandName.GENERATE_KEY, valid_for=600)).key.key
    page.get(live.url + "/")
    find(page, "#tab-key").click()
    type_into(page, "#key-name", "Eve Stone")
    type_into(page, "#key-key", f" {key[:3].lower()} - {key[3:].lower()} ")  # as people type what they hear
    find(page, "#panel-key [type=submit]").click()
    wait(page, shows(".rc-chat-title", "Waiting for a representative"))
    session = live.arrival(alice, "Eve Stone")
    assert (session.origin, session.queue, session.session_key) == (Origin.SESSION_KEY, "rep:alice", key)


@needs_browser
def test_a_picked_rep_gets_the_customer_who_survives_a_reload_and_a_dropped_connection(live: LiveServer, page: Any) -> None:
    alice = live.rep("alice")
    page.get(live.url + "/")
    find(page, "#tab-rep").click()
    wait(page, shows("#rep-list", "Alice Ng"), what="the connected reps")
    type_into(page, "#rep-name", "Fay Moss")
    find(page, "#rep-list label").click()
    find(page, "#panel-rep [type=submit]").click()
    session = live.arrival(alice, "Fay Moss")
    sid = session.id
    assert (session.origin, session.queue) == (Origin.REP_PICKED, "rep:alice")
    live.call(alice.ok(CommandName.ACCEPT, session=sid))
    live.call(alice.ok(CommandName.SAY, session=sid, text="Hi Fay, Alice here."))
    wait(page, shows(".rc-line-rep", "Hi Fay, Alice here."))

    page.refresh()  # the token in sessionStorage brings the chat back
    wait(page, shows(".rc-chat-title", "You're chatting with Alice Ng"), what="the resumed chat")
    wait(page, shows(".rc-line-rep", "Hi Fay, Alice here."))
    assert "Hi Fay, thanks for contacting us." in text_of(page, ".rc-log")

    page.execute_script("RepconsoleSupport.current.ws.close()")  # the network drops
    live.call(alice.ok(CommandName.SAY, session=sid, text="Still there?"))
    wait(page, shows(".rc-line-rep", "Still there?"), what="the line said while the page was away")
    wait(page, lambda d: not find(d, ".rc-conn").is_displayed())
    assert text_of(page, ".rc-line-rep .rc-bubble").count("Hi Fay, Alice here.") == 1
    type_into(page, ".rc-composer textarea", "Yes, still here.\n")
    live.chat_from_customer(alice, sid, "Yes, still here.")

    # Away to another page: this one may sit in the back-forward cache, but
    # its socket closes, so the server knows the customer is gone...
    page.get("about:blank")
    wait(page, lambda d: live.customers_online() == 0, what="the socket closed on the way out")
    # ...and back again, the chat picks up where it was.
    page.back()
    wait(page, lambda d: live.customers_online() == 1, what="the page came back with its token")
    live.call(alice.ok(CommandName.SAY, session=sid, text="Welcome back."))
    wait(page, shows(".rc-line-rep", "Welcome back."))
    assert text_of(page, ".rc-line-customer .rc-bubble").count("Yes, still here.") == 1


@needs_browser
def test_the_customer_reads_whom_they_are_with_after_each_transfer(live: LiveServer, page: Any) -> None:
    alice, bob = live.rep("alice"), live.rep("bob")
    page.get(live.url + "/")
    find(page, "#tab-rep").click()
    wait(page, shows("#rep-list", "Alice Ng"), what="the connected reps")
    type_into(page, "#rep-name", "Sam Lee")
    find(page, "#rep-list label").click()
    find(page, "#panel-rep [type=submit]").click()
    sid = live.arrival(alice, "Sam Lee").id
    live.call(alice.ok(CommandName.ACCEPT, session=sid))
    wait(page, shows(".rc-chat-title", "You're chatting with Alice Ng"))

    # To a rep already in the session: theirs at once, and the customer is told.
    invitation = live.call(alice.ok(CommandName.SHARE, session=sid, target="rep:bob")).invitation
    live.call(bob.ok(CommandName.ACCEPT_INVITATION, invitation=invitation.id))
    live.call(alice.ok(CommandName.TRANSFER, session=sid, target="rep:bob", note="refund approved (reps only)"))
    wait(page, shows(".rc-line-event", "You are now with Bob Ortiz."), what="the hand-over line")
    wait(page, shows(".rc-chat-title", "You're chatting with Bob Ortiz"))

    # To a team: where they go, then who has them.
    live.call(bob.ok(CommandName.TRANSFER, session=sid, target="team:bill"))
    wait(page, shows(".rc-line-event", "You are being transferred to the Billing team."), what="the transfer line")
    carol = live.rep("carol")
    live.call(carol.ok(CommandName.ACCEPT, session=sid))
    wait(page, shows(".rc-line-event", "You are now with Carol Diaz."), what="the new rep's line")
    wait(page, shows(".rc-chat-title", "You're chatting with Carol Diaz"))
    assert "refund approved" not in page.page_source, "a transfer note is for reps"
    page.save_screenshot("/tmp/s11_customer_transfer.png")


@needs_browser
def test_a_start_answered_retryable_is_retried_by_the_page_into_the_session_it_made(live: LiveServer, page: Any) -> None:
    """The server starts the session but answers the first attempt ``internal_error``, retryable (as a cluster's
    follower does when the leader's reply is lost), and drops the connection of the second one before its answer:
    the page retries by itself with the same retry_key and shows the session the first attempt made; no second
    one (docs/protocol.md, Customer endpoint)."""
    desk = live.server.customers
    real = desk._started
    attempts: list[tuple[str, object]] = []

    def flaky(msg: Start, *args: Any) -> Any:
        s = real(msg, *args)
        attempts.append((s.id, msg.retry_key))
        if len(attempts) == 1:
            lost = Error(id=msg.id, reason=ErrorReason.INTERNAL_ERROR, detail="no answer from the leader: try again", data={"retryable": True})
            raise _Answered(encode(lost))
        if len(attempts) == 2:
            raise ConnectionClosed(None, None)  # the connection ends with no answer
        return s

    desk._started = flaky
    page.get(live.url + "/")
    page.execute_script("RepconsoleChat.config.retryFirstMs = 20")
    wait(page, lambda d: find(d, '#issue-issue option[value="vpn"]'), what="the issues from /api/site")
    type_into(page, "#issue-name", "Gus Hale")
    choose(page, "#issue-issue", "vpn")
    find(page, "#panel-issue [type=submit]").click()
    wait(page, shows(".rc-chat-sub", "in line"), what="the chat of the retried start")
    assert len(attempts) == 3 and len(set(attempts)) == 1, attempts
    sid, key = attempts[0]
    assert isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_-]{22}", key), key
    assert [s.id for s in live.sessions()] == [sid]
    assert stored(page)["session"] == sid
    assert not page.find_elements("css selector", "#panel-issue .rc-alert-error")
