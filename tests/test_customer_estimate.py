"""The wait estimate on the customer's page (repconsole/server/static/support-chat.js), in real Chromium (issue 14).

A customer waiting in a team queue reads "Estimated wait: about 1–7
minutes." (the words of :func:`repconsole.core.estimate.describe`, from the
``estimate`` of their ``status``), and "We are busier than usual." when the
team has no data (nobody served lately).  The server's clock is virtual:
the history of served customers is made by moving it on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import LiveServer, choose, chromium, find, needs_browser, shows, text_of, type_into, wait

from repconsole.core.estimate import describe
from repconsole.protocol import CommandName

SHOT = Path("/tmp/r14-estimate.png")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path)
    try:
        yield server
    finally:
        server.close()


def _start(page: Any, live: LiveServer, name: str, issue: str) -> None:
    page.get(live.url + "/")
    wait(page, lambda d: find(d, f'#issue-issue option[value="{issue}"]'), what="the issues from /api/site")
    type_into(page, "#issue-name", name)
    choose(page, "#issue-issue", issue)
    find(page, "#panel-issue [type=submit]").click()


def _estimate_of(live: LiveServer, name: str) -> Any:
    async def read() -> Any:
        engine = live.server.runtime.engine
        sid = next(s.id for s in engine.sessions() if s.customer_name == name)
        return engine.estimate_for(sid)

    return live.call(read())


@needs_browser
def test_the_page_says_busier_than_usual_without_data_then_an_estimated_range(live: LiveServer, tmp_path: Path) -> None:
    alice = live.rep("alice")  # Networking: available, so the team could serve; nobody served yet
    with chromium(tmp_path / "profile-1") as page:
        _start(page, live, "Ann Lee", "vpn")
        wait(page, shows(".rc-estimate", "We are busier than usual."), what="no data: no number")
        assert find(page, ".rc-position").get_attribute("data-position") == "1"
        page.save_screenshot(str(SHOT.with_name("r14-estimate-busy.png")))
        live.call(alice.ok(CommandName.ACCEPT, session=live.arrival(alice, "Ann Lee").id))
        wait(page, shows(".rc-chat-title", "You're chatting with Alice Ng"))

    # Networking serves twenty customers, one a minute: now it has data.
    for i in range(20):
        live.advance(60)
        live.customer(f"Served {i}")
        sid = live.arrival(alice, f"Served {i}").id
        live.call(alice.ok(CommandName.ACCEPT, session=sid))
        live.call(alice.ok(CommandName.END, session=sid))
    for i in range(3):
        live.customer(f"Ahead {i}")  # three waiting before the next customer
    with chromium(tmp_path / "profile-2") as page:
        _start(page, live, "Ben Cho", "vpn")
        wait(page, lambda d: re.fullmatch(r"Estimated wait: about \d+–\d+ minutes\.", text_of(d, ".rc-estimate")), what="a range")
        assert find(page, ".rc-position").get_attribute("data-position") == "4"
        est = _estimate_of(live, "Ben Cho")
        assert est is not None and est.low >= 1
        assert text_of(page, ".rc-estimate") == f"Estimated wait: {describe(est)}."
        page.save_screenshot(str(SHOT))
