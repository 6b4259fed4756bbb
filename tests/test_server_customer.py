"""The /customer endpoint and the public HTTP routes of a real server."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE
from engine_helpers import RandomDriver, build_site, standard_rules
from msgspec import UNSET
from server_helpers import CustomerClient, RepClient, eventually, run, serving, session_event, write_site
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from repconsole.core import persist
from repconsole.core.engine import QueueEngine
from repconsole.core.model import QueueRef, Session, SessionState
from repconsole.protocol import (
    Chat,
    ChatEvent,
    CustomerResume,
    CustomerState,
    EmptyResult,
    Error,
    ErrorReason,
    GoneReason,
    Leave,
    MessageType,
    Origin,
    Reason,
    Say,
    SessionEvent,
    SessionGoneData,
    SessionGoneEvent,
    Started,
    Status,
)
from repconsole.server import app
from repconsole.server.app import Server
from repconsole.server.customers import POSITION_EVERY
from repconsole.server.runtime import CUSTOMER_TOKENS_KEPT
from repconsole.server.timers import VirtualClock


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path, server='allowed_origins = ["https://help.example.com"]')


def http_get(server: Server, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5 * TIMEOUT_SCALE) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def frame(**fields: Any) -> str:
    """A frame written by hand, for what no protocol Struct would send: a broken page."""
    return json.dumps(fields)


async def http(server: Server, path: str) -> tuple[int, str, bytes]:
    return await asyncio.to_thread(http_get, server, path)


def test_origins_are_checked_on_the_customer_endpoint(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            url = f"ws://127.0.0.1:{server.port}/customer"
            for origin in ["https://evil.example", "null", "http://127.0.0.1:1", "https://help.example.com:8443", "not a url"]:
                with pytest.raises(InvalidStatus) as info:
                    await connect(url, additional_headers={"Origin": origin})
                assert info.value.response.status_code == 403, origin
            for origin in [f"http://127.0.0.1:{server.port}", "https://help.example.com", "https://HELP.example.com/"]:
                c = await CustomerClient.open(server, origin=origin)
                assert isinstance(await c.start(), Started)
            # A client that is not a browser sends no Origin.
            c = await CustomerClient.open(server)
            assert isinstance(await c.start(), Started)

    run(main())


def test_a_customer_reaches_a_rep_and_they_chat(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            ann = await CustomerClient.open(server)
            started = await ann.start("issue", "vpn", "Ann Lee")
            assert started.session == ann.session and len(started.token) >= 32
            await ann.until(lambda: bool(ann.statuses))
            # A team's queue: the estimate too, null with no data yet ("we are busier than usual").
            assert ann.statuses[-1] == Status(CustomerState.WAITING, position=1, estimate=None)
            ben = await CustomerClient.open(server)
            await ben.start("issue", "vpn", "Ben Fox")
            await ben.until(lambda: bool(ben.statuses))
            assert ben.statuses[-1].position == 2

            arrived = await alice.wait_event(session_event(ann.session))
            assert arrived.data.session.customer_name == "Ann Lee"
            await alice.ok("accept", session=ann.session)
            await ann.until(lambda: ann.statuses[-1].state is CustomerState.ACTIVE)
            assert ann.statuses[-1] == Status(CustomerState.ACTIVE, rep_name="Alice Ng")
            clock.advance(POSITION_EVERY)  # positions behind a change are refreshed at most twice a second
            await ben.until(lambda: ben.statuses[-1].position == 1)  # Ann went ahead

            await alice.ok("say", session=ann.session, text="Hi Ann, let's look at the VPN.")
            await alice.ok("say", session=ann.session, text="(customer seems upset)", reps_only=True)
            await ann.until(lambda: any(line.text.startswith("Hi Ann") for line in ann.lines))
            said = await ann.request(Say, text="Thanks! It says error 809.")
            assert said.result.line.author == "customer"
            heard = await alice.wait_event(lambda e: isinstance(e, ChatEvent) and e.data.line.author == "customer")
            assert heard.data.line.text == "Thanks! It says error 809."
            texts = [line.text for line in ann.lines]
            assert "(customer seems upset)" not in texts
            rep_line = next(line for line in ann.lines if line.text.startswith("Hi Ann"))
            assert rep_line.author == "rep" and rep_line.author_name == "Alice Ng"
            assert all("alice" not in frame for frame in ann.raw)  # never a rep's id

            assert (await ann.request(Leave)).result == EmptyResult()  # {} exactly: the client checks nothing more came
            await ann.until(lambda: ann.statuses[-1].state is CustomerState.ENDED)
            assert ann.statuses[-1].detail == "customer left"
            assert await ann.closed_with() == 1000
            gone = await alice.wait_event(lambda e: isinstance(e, SessionGoneEvent))
            assert gone.data == SessionGoneData(ann.session, GoneReason.ENDED, detail="customer left")

    run(main())


def test_every_way_in(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            key = (await alice.ok("generate_key", valid_for=600)).key.key
            cases = [
                ("key", key.lower(), {}, "rep:alice", Origin.SESSION_KEY),
                ("rep", "alice", {}, "rep:alice", Origin.REP_PICKED),
                ("button", "btn-net", {}, "team:net", Origin.TEAM_BUTTON),
                ("link", "link-alice", {"page_url": "https://shop.example/cart", "page_html": "<p>cart</p>"}, "rep:alice", Origin.BROWSER_REP),
                ("issue", "vpn", {}, "team:net", Origin.ISSUE_FORM),
            ]
            sessions = {}
            for via, target, extra, queue, origin in cases:
                c = await CustomerClient.open(server)
                assert isinstance(await c.start(via, target, **extra), Started), via
                e = await alice.wait_event(session_event(c.session))
                assert (e.data.session.queue, e.data.session.origin) == (queue, origin)
                assert e.data.session.page_html is UNSET  # absent from the frame: events stay small
                sessions[via] = c.session
            accepted = await alice.ok("accept", session=sessions["link"])
            assert accepted.session.page_html == "<p>cart</p>" and accepted.session.browser

            for via, target, reason in [
                ("key", key, Reason.KEY_USED),
                ("key", "ZZZZZZZ", Reason.KEY_UNKNOWN),
                ("rep", "dave", Reason.REP_OFFLINE),
                ("rep", "nobody", Reason.UNKNOWN_REP),
                ("button", "btn-x", Reason.UNKNOWN_BUTTON),
                ("issue", "nope", Reason.UNKNOWN_ISSUE),
                ("link", "link-x", Reason.UNKNOWN_LINK),
            ]:
                c = await CustomerClient.open(server)
                reply = await c.start(via, target)
                assert isinstance(reply, Error) and reply.reason == reason, (via, reply)
            c = await CustomerClient.open(server)
            start = MessageType.START
            await c.send_raw(frame(type=start, id=1, via="issue", issue="vpn", intake={"customer_name": "X" * 101}))
            assert (await c.pump()).reason == Reason.INVALID
            await c.send_raw(frame(type=start, id=2, via="issue", issue="vpn", intake={"name": "X"}))
            assert (await c.pump()).reason == Reason.INVALID
            await c.send_raw(frame(type=start, id=5, via="issue", issue="vpn", intake={"customer_name": "X", "custom_fields": None}))
            assert (await c.pump()).data == {"field": "custom_fields"} and c.received[-1].reason == Reason.INVALID  # a field, not the intake
            await c.send_raw(frame(type=start, id=3, via="issue", issue="vpn", intake={"customer_name": "X"}, page_url="x"))
            assert (await c.pump()).reason == ErrorReason.BAD_MESSAGE
            # A malformed start (no issue to go with via issue) is that, whatever its intake says.
            await c.send_raw(frame(type=start, id=6, via="issue", intake={"customer_name": "X", "nickname": "Y"}))
            assert (await c.pump()).reason == ErrorReason.BAD_MESSAGE
            await c.send(Say(4, "hello?"))
            assert (await c.pump()).reason == ErrorReason.NOT_STARTED

    run(main())


def test_a_second_start_is_refused_as_one_whatever_its_intake(site: Path, tmp_path: Path) -> None:
    """docs/protocol.md: a second ``start`` on one connection gets ``already_started``; that
    it is a second start is the refusal, as for one whose intake is fine (not ``invalid``)."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            c = await CustomerClient.open(server)
            assert isinstance(await c.start(), Started)
            for rid, intake in [(2, {"customer_name": "Again"}), (3, {"name": "X"}), (4, {"customer_name": "X" * 101})]:
                await c.send_raw(frame(type=MessageType.START, id=rid, via="issue", issue="vpn", intake=intake))
                reply = await c.pump()
                while not isinstance(reply, Error):
                    reply = await c.pump()
                assert (reply.id, reply.reason) == (rid, ErrorReason.ALREADY_STARTED), reply

    run(main())


def test_wrong_session_keys_are_rate_limited_per_address(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            key = (await alice.ok("generate_key", valid_for=600)).key.key
            c = await CustomerClient.open(server)
            for _ in range(5):
                assert (await c.start("key", "WRONG99")).reason == Reason.KEY_UNKNOWN
            assert (await c.start("key", key)).reason == Reason.KEY_RATE_LIMITED

    run(main())


def test_starts_are_limited_per_address(tmp_path: Path) -> None:
    site = write_site(tmp_path, server="customer_starts_per_minute = 2").read_text().replace("customer_starts_per_minute = 0\n", "")
    path = tmp_path / "limited.toml"
    path.write_text(site)

    async def main() -> None:
        async with serving(path, tmp_path / "data") as server:
            for _ in range(2):
                assert isinstance(await (await CustomerClient.open(server)).start(), Started)
            c = await CustomerClient.open(server)
            assert (await c.start()).reason == ErrorReason.RATE_LIMITED

    run(main())


def test_a_customer_resumes_with_the_token_and_gets_what_they_missed(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            ann = await CustomerClient.open(server)
            await ann.start()
            await alice.ok("accept", session=ann.session)
            await ann.until(lambda: ann.lines and ann.statuses and ann.statuses[-1].state is CustomerState.ACTIVE)
            seen = ann.lines[-1].n
            await ann.close()
            await alice.ok("say", session=ann.session, text="Are you still there?")
            await alice.ok("say", session=ann.session, text="note to self", reps_only=True)
            again = await CustomerClient.open(server)
            reply = await again.request(CustomerResume, token=ann.token, last_line=seen)
            assert isinstance(reply, Started) and reply.resumed and reply.session == ann.session
            await again.until(lambda: bool(again.statuses))
            assert [line.text for line in again.lines] == ["Are you still there?"]
            assert again.statuses[-1].state is CustomerState.ACTIVE
            bad = await CustomerClient.open(server)
            assert (await bad.request(CustomerResume, token="x" * 32)).reason == ErrorReason.TOKEN_UNKNOWN

    run(main())


def test_a_customer_token_resumes_for_a_day_then_is_unknown(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            ann = await CustomerClient.open(server)
            await ann.start()
            await ann.close()
            clock.advance(CUSTOMER_TOKENS_KEPT - 1)
            again = await CustomerClient.open(server)
            reply = await again.request(CustomerResume, token=ann.token)
            assert isinstance(reply, Started) and reply.session == ann.session
            await again.close()
            clock.advance(1)
            late = await CustomerClient.open(server)
            assert (await late.request(CustomerResume, token=ann.token)).reason == ErrorReason.TOKEN_UNKNOWN

    run(main())


def test_a_customer_who_does_not_come_back_has_left(tmp_path: Path) -> None:
    grace = 120.0  # the default
    text = write_site(tmp_path).read_text().replace("customer_grace = 0", f"customer_grace = {grace}")
    path = tmp_path / "grace.toml"
    path.write_text(text)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(path, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            stays, goes = await CustomerClient.open(server), await CustomerClient.open(server)
            await stays.start(name="Stays")
            await goes.start(name="Goes")
            await goes.close()
            await eventually(lambda: clock.now() + grace in clock.pending())  # the server saw the page go
            clock.advance(grace - 0.5)
            assert server.runtime.engine.session(goes.session).state == "waiting"  # it may still come back
            clock.advance(0.5)
            gone = await alice.wait_event(lambda e: isinstance(e, SessionGoneEvent), timeout=3)
            assert gone.data == SessionGoneData(goes.session, GoneReason.ENDED, detail="customer disconnected")
            assert server.runtime.engine.session(stays.session).state == "waiting"

    run(main())


def test_the_public_site_lists_what_a_customer_may_pick(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            await RepClient.logged_in(server, "carol")
            status, ctype, body = await http(server, "/api/site")
            assert status == 200 and ctype == "application/json"
            data = json.loads(body)
            assert data["reps"] == [{"id": "carol", "name": "Carol Diaz"}]  # connected reps only
            assert {i["code"] for i in data["issues"]} == {"vpn", "invoice", "printer"}
            assert data["issues"][0].keys() == {"code", "name", "category"}  # not the owning team
            assert {b["id"] for b in data["buttons"]} == {"btn-alice", "btn-net"}
            assert {link["id"] for link in data["links"]} == {"link-alice", "link-bill"}
            assert await http(server, "/healthz") == (200, "text/plain; charset=utf-8", b"ok\n")  # and nothing more, in public
            assert server.status()["reps_online"] == 1

    run(main())


def test_the_customer_page_files_are_served_with_their_types(site: Path, tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>Support</title>")
    (static / "support.js").write_text("console.log('hi')")
    (static / "support.css").write_text("body{}")
    (static / "notes.txt").write_text("private")
    (tmp_path / "secret.html").write_text("outside")

    async def main() -> None:
        async with serving(site, tmp_path / "data", static_dir=static) as server:
            for path, ctype, content in [
                ("/", "text/html; charset=utf-8", b"<!doctype html><title>Support</title>"),
                ("/support", "text/html; charset=utf-8", b"<!doctype html><title>Support</title>"),
                ("/support.js", "text/javascript; charset=utf-8", b"console.log('hi')"),
                ("/static/support.css", "text/css; charset=utf-8", b"body{}"),
            ]:
                assert await http(server, path) == (200, ctype, content), path
            for path in ["/notes.txt", "/missing.html", "/../secret.html", "/%2e%2e/secret.html", "/static/../secret.html", "/rep.html"]:
                assert (await http(server, path))[0] == 404, path
            # A WebSocket upgrade to any other path is refused at the handshake.
            for path in ["/nope", "/rep/", "/customers"]:
                with pytest.raises(InvalidStatus) as info:
                    await connect(f"ws://127.0.0.1:{server.port}{path}")
                assert info.value.response.status_code == 404, path

    run(main())


def naive_position(engine: QueueEngine, s: Session) -> int:
    """The definition: 1 + the sessions ahead in the queue that are not on hold (a walk of the queue)."""
    assert s.queue is not None
    ahead = itertools.takewhile(lambda other: other.id != s.id, engine.waiting_in(s.queue))
    return 1 + sum(1 for other in ahead if not other.held)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_queue_positions_agree_with_a_walk_of_the_queue(seed: int) -> None:
    """The engine's position index under random traffic (arrivals, accepts,
    transfers, holds and resumes, rules, dropped reps), checked after every
    step, and after a restore from the stored state."""
    site = build_site(seed)
    standard_rules(site)
    driver = RandomDriver(site, seed)
    e = site.engine
    queues = [QueueRef.personal(r) for r in e.reps] + [QueueRef.team(t) for t in e.teams]

    def check(engine: QueueEngine) -> int:
        checked = 0
        for q in queues:
            for s in engine.waiting_in(q):
                assert engine.queue_position(s.id) == naive_position(engine, s), (s.id, q)
                checked += 1
        return checked

    most, held = 0, 0
    for _ in range(600):
        driver.step()
        most = max(most, check(e))
        held = max(held, sum(1 for s in e.sessions() if s.held))
    assert most >= 10 and held >= 1  # the traffic did exercise the index
    copy = build_site(0)
    standard_rules(copy)
    copy.clock.now = site.clock.now
    persist.load(copy.engine, json.loads(json.dumps(persist.dump(e))))
    assert check(copy.engine) == check(e)
    for s in e.sessions():
        assert copy.engine.queue_position(s.id) == e.queue_position(s.id)
        if s.state is not SessionState.WAITING:
            assert e.queue_position(s.id) is None


def test_customer_positions_never_walk_the_queue(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 20,000 customers waiting, a walk per position would be quadratic: the
    server must not walk a queue to tell a customer where they are."""
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            e = server.runtime.engine
            walk = e.waiting_in

            def no_walk(queue: QueueRef) -> list[Session]:
                raise AssertionError(f"walked {queue}")

            monkeypatch.setattr(e, "waiting_in", no_walk)
            alice = await RepClient.logged_in(server, "alice")
            customers = [await CustomerClient.open(server) for _ in range(4)]
            for i, c in enumerate(customers[:3]):
                await c.start("issue", "vpn", f"Customer {i}")
                await c.until(lambda c=c: bool(c.statuses))
            assert [c.statuses[-1].position for c in customers[:3]] == [1, 2, 3]
            first, second, third, by_name = customers
            await alice.ok("accept", session=first.session)
            await alice.ok("hold", session=first.session)  # back in alice's personal queue, on hold
            await by_name.start("rep", "alice", "Picked Alice")  # behind the held one, which does not count
            await first.until(lambda: first.statuses[-1] == Status(CustomerState.WAITING, held=True))
            clock.advance(POSITION_EVERY)  # the refresh of everyone behind
            await second.until(lambda: second.statuses[-1].position == 1)
            await third.until(lambda: third.statuses[-1].position == 2)
            await by_name.until(lambda: bool(by_name.statuses))
            assert by_name.statuses[-1] == Status(CustomerState.WAITING, position=1)
            monkeypatch.setattr(e, "waiting_in", walk)
            for c in (second, third, by_name):
                assert c.statuses[-1].position == naive_position(e, e.session(c.session))

    run(main())


def test_stop_does_not_wait_for_idle_or_silent_connections(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser keeps sockets open that it may never use (a pre-connected one, a
    request it never finished) and a customer's laptop may sleep with its page's
    WebSocket open: none of them may hold up a shutdown (websockets alone waits
    10 s for each kind).  A well-behaved page is still told 1001."""
    # The silent WebSocket's grace, kept short for the test (raising=False: the test must run, and fail, without it).
    monkeypatch.setattr(app, "SHUTDOWN_GRACE", 0.5, raising=False)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            port = server.port
            idle = await asyncio.open_connection("127.0.0.1", port)
            partial = await asyncio.open_connection("127.0.0.1", port)
            partial[1].write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            silent = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16)).decode()
            silent[1].write(
                f"GET /customer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            async with asyncio.timeout(3 * TIMEOUT_SCALE):
                assert (await silent[0].readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")  # open, and never reads again
            page = await CustomerClient.open(server)
            await page.start()
            # The server accepts connections in order: once a later one is served,
            # the idle ones before it are accepted and waiting for their requests.
            assert (await http(server, "/healthz"))[0] == 200

            started = time.monotonic()
            await server.stop()
            took = time.monotonic() - started
            assert took < app.SHUTDOWN_GRACE + 2 * TIMEOUT_SCALE, f"stop() took {took:.1f} s"
            assert await page.closed_with() == 1001
            for reader, _ in (idle, partial):
                assert await rest(reader) == b""  # closed by the server, no response
            assert (await rest(silent[0])).startswith(b"\x88")  # told 1001, then dropped
            for _, writer in (idle, partial, silent):
                writer.close()

    async def rest(reader: asyncio.StreamReader) -> bytes:
        """Whatever the server sent before it closed the connection."""
        async with asyncio.timeout(TIMEOUT_SCALE):
            try:
                return await reader.read()
            except ConnectionResetError:  # an abort may reset rather than close
                return b""

    run(main())


def test_say_and_leave_push_what_they_change_before_their_result(site: Path, tmp_path: Path) -> None:
    """The order docs/protocol.md shows: the customer's own line as a chat, then the
    result of say; the ended status, then the result of leave, then 1000."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            ann = await CustomerClient.open(server)
            await ann.start()
            await ann.until(lambda: bool(ann.statuses))
            said = await ann.request(Say, text="It says error 809.")
            left = await ann.request(Leave)
            assert await ann.closed_with() == 1000
            after_start = ann.received[ann.received.index(ann.statuses[0]) + 1 :]
            assert after_start == [
                Chat(said.result.line),
                said,
                Status(CustomerState.ENDED, detail="customer left"),
                left,
            ]
            assert left.result == EmptyResult()

    run(main())


def test_a_transfer_to_a_rep_in_the_session_hands_it_over_and_the_customer_is_told(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            ann = await CustomerClient.started(server, listen=True)
            sid = ann.session
            await alice.wait_event(session_event(sid))
            await alice.ok("accept", session=sid)
            invitation = (await alice.ok("share", session=sid, target="rep:bob")).invitation
            await bob.ok("accept_invitation", invitation=invitation.id)
            await alice.ok("transfer", session=sid, target="rep:bob", note="Gateway issue, yours")
            # Bob owns it at once, the note pinned; Alice is told where it went.
            owned = await bob.wait_event(lambda e: isinstance(e, SessionEvent) and e.data.session.id == sid and e.data.session.owner == "bob")
            view = owned.data.session
            assert (view.state, view.queue, view.participants, view.transfer_note) == (SessionState.ACTIVE, None, [], "Gateway issue, yours")
            gone = await alice.wait_event(lambda e: isinstance(e, SessionGoneEvent))
            assert gone.data == SessionGoneData(sid, GoneReason.TRANSFERRED, by="alice", to="rep:bob")
            # The customer reads whom they are with now; the note is never theirs.
            await ann.until(lambda: "You are now with Bob Ortiz." in ann.chat())
            await ann.until(lambda: ann.statuses[-1] == Status(CustomerState.ACTIVE, rep_name="Bob Ortiz"))
            assert not any("Gateway" in text for text in ann.chat())

    run(main())
