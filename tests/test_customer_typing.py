"""Typing indicators on the customer's page (repconsole/server/static/support-chat.js), in real Chromium.

The page shows "Alice Ng is typing…" when the rep types (until the rep's
line comes, or ``typingClearMs`` pass), and tells the rep when the customer
types, at most once every ``typingEveryMs``.  The rep is a typed protocol
client (:mod:`server_helpers`); docs/protocol.md, Typing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import LiveServer, choose, chromium, find, needs_browser, shows, socket_frames_sent, text_of, type_into, wait

from repconsole.protocol import CommandName, CustomerIsTyping, Typing
from repconsole.server.typingrelay import THROTTLE


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def page(live: LiveServer, tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium-profile", network_log=True) as browser:
        yield browser


def _typing_sent(page: Any) -> int:
    return sum(1 for url, payload in socket_frames_sent(page) if url.endswith("/customer") and json.loads(payload)["type"] == "typing")


def _hidden(page: Any) -> bool:
    return not find(page, ".rc-typing").is_displayed()


@needs_browser
def test_the_page_shows_the_rep_typing_and_tells_the_rep_when_the_customer_types(live: LiveServer, page: Any) -> None:
    alice = live.rep("alice")
    page.get(live.url + "/")
    wait(page, lambda d: find(d, '#issue-issue option[value="vpn"]'), what="the issues from /api/site")
    type_into(page, "#issue-name", "Ann Lee")
    choose(page, "#issue-issue", "vpn")
    find(page, "#panel-issue [type=submit]").click()
    sid = live.arrival(alice, "Ann Lee").id
    live.call(alice.ok(CommandName.ACCEPT, session=sid))
    wait(page, shows(".rc-chat-title", "You're chatting with Alice Ng"))
    assert _hidden(page)

    # The rep types: the page says so, then forgets it after typingClearMs of silence.
    page.execute_script("RepconsoleChat.config.typingClearMs = 300")
    live.call(alice.send(Typing(alice.next_id(), sid)))
    wait(page, shows(".rc-typing", "Alice Ng is typing…"), what="the rep typing")
    assert find(page, ".rc-typing").get_attribute("role") == "status"
    wait(page, lambda d: _hidden(d), what="the indicator cleared after the silence")

    # Again, and this time the line comes first: it clears at once.
    page.execute_script("RepconsoleChat.config.typingClearMs = 60000")
    live.advance(THROTTLE)  # the server's throttle: one notice per 2 s per sender
    live.call(alice.send(Typing(alice.next_id(), sid)))
    wait(page, shows(".rc-typing", "Alice Ng is typing…"), what="the rep typing again")
    live.call(alice.ok(CommandName.SAY, session=sid, text="Found it."))
    wait(page, shows(".rc-line-rep", "Found it."))
    assert _hidden(page) and text_of(page, ".rc-typing") == ""

    # The customer types five characters at once: one typing frame (throttled), and the rep is told.
    socket_frames_sent(page)
    type_into(page, ".rc-composer textarea", "Hello")
    live.call(alice.until(lambda: any(isinstance(m, CustomerIsTyping) for m in alice.received)))
    assert [m for m in alice.received if isinstance(m, CustomerIsTyping)] == [CustomerIsTyping(sid)]
    assert _typing_sent(page) == 1
    assert page.execute_script("return RepconsoleChat.typingText('')") == "Your representative is typing…"
