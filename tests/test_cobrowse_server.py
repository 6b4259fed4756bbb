"""Co-browsing over real sockets: a recorder on /cobrowse, reps watching on /rep, a live view by ticket."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE
from server_helpers import (
    CustomerClient,
    RecorderClient,
    RepClient,
    ViewClient,
    eventually,
    page_change,
    page_snapshot,
    run,
    serving,
    write_site,
)

from repconsole.protocol import (
    MAX_FRAME,
    Attached,
    ChatEvent,
    CloseCode,
    CobrowseName,
    CobrowseState,
    Error,
    ErrorReason,
    Logout,
    MessageType,
    NoResult,
    Reason,
    Result,
    RrwebType,
    Say,
    Started,
    TicketResult,
    Via,
    WatchResult,
)
from repconsole.server.app import Server
from repconsole.server.timers import VirtualClock

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"  # this checkout's (the installed repconsole.resources may be another checkout's)
WATCH, UNWATCH, POINT, TICKET = CobrowseName.WATCH, CobrowseName.UNWATCH, CobrowseName.POINT, CobrowseName.TICKET


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


async def browser_session(server: Server, link: str = "link-alice", **options: Any) -> tuple[CustomerClient, str, str]:
    """A customer who started a browser-sharing session with ``link``: the client, the session, the token."""
    customer = await CustomerClient.open(server, **options)
    reply = await customer.start(Via.LINK, link, "Ann Lee", page_url="https://shop.example/")
    assert isinstance(reply, Started), reply
    return customer, reply.session, reply.token


async def refused(client: RepClient, name: str, *, valid: bool = True, **args: Any) -> str:
    reply = await client.call(name, valid=valid, **args)
    assert isinstance(reply, Error), reply
    return reply.reason


# ------------------------------------------------------------- the stream


def test_a_watcher_gets_the_page_live_and_a_late_joiner_the_snapshot_and_every_change_since(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock()
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            assert recorder.attached is not None and (recorder.attached.session, recorder.attached.watching) == (sid, [])

            assert await alice.ok(WATCH, session=sid) == WatchResult(CobrowseState.WAITING, "https://shop.example/", "Shop")
            await recorder.until(lambda: bool(recorder.watching))
            assert recorder.watching[-1].reps == ["Alice Ng"]

            await recorder.record(page_snapshot("Hello"))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            assert alice.page.texts(sid) == ["Hello"]
            for n in range(100):
                await recorder.record([page_change(f"change {n}")])
            await alice.until(lambda: len(alice.page.texts(sid)) == 101)
            assert all(at == clock.now() for _, at, _ in alice.page.batches[sid])  # stamped on the server's clock

            invitation = (await alice.ok("share", session=sid, target="rep:bob")).invitation
            await bob.ok("accept_invitation", invitation=invitation.id)
            assert bob.page.batches == {}  # nothing of the page until bob watches
            result = await bob.ok(WATCH, session=sid)
            assert result.state is CobrowseState.LIVE
            await bob.until(lambda: len(bob.page.texts(sid)) == 101)
            assert bob.page.types(sid)[:3] == [RrwebType.META, RrwebType.FULL_SNAPSHOT, RrwebType.INCREMENTAL_SNAPSHOT]
            assert bob.page.texts(sid) == alice.page.texts(sid)
            await recorder.until(lambda: recorder.watching[-1].reps == ["Alice Ng", "Bob Ortiz"])

            clock.advance(5)
            await recorder.record([page_change("live")])
            for rep in (alice, bob):
                await rep.until(lambda rep=rep: rep.page.texts(sid)[-1:] == ["live"])  # type: ignore[misc]
                assert rep.page.batches[sid][-1][1] == clock.now()

            await alice.ok(POINT, session=sid, x=120.5, y=300)
            await recorder.until(lambda: bool(recorder.pointers))
            assert (recorder.pointers[0].x, recorder.pointers[0].y, recorder.pointers[0].by) == (120.5, 300, "Alice Ng")

            await bob.ok(UNWATCH, session=sid)
            await recorder.until(lambda: recorder.watching[-1].reps == ["Alice Ng"])
            await recorder.record([page_change("after bob")])
            await alice.until(lambda: alice.page.texts(sid)[-1:] == ["after bob"])
            await bob.drain()
            assert bob.page.texts(sid)[-1] == "live"

    run(main())


def test_page_info_and_stopping_reach_the_watchers_and_the_chat_goes_on(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            customer, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("Cart"))
            await recorder.page_info("https://shop.example/cart", "Your cart")
            await alice.until(lambda: alice.page.statuses.get(sid, [])[-1:] != [] and alice.page.statuses[sid][-1].title == "Your cart")
            assert alice.page.statuses[sid][-1].url == "https://shop.example/cart"

            await recorder.stop()
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.STOPPED)
            assert alice.page.statuses[sid][-1].detail == "the customer stopped sharing"
            await customer.request(Say, text="I stopped sharing, but I'm still here")
            await alice.wait_event(lambda e: isinstance(e, ChatEvent) and e.data.line.text == "I stopped sharing, but I'm still here")
            reply = await alice.call(WATCH, session=sid)  # a new watch: nothing of the page is left
            assert isinstance(reply, Result) and reply.result.state is CobrowseState.STOPPED

            # The customer shares again: a new page attaches.
            again = await RecorderClient.attached_to(server, token)
            await again.record(page_snapshot("Shared again"))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            assert alice.page.texts(sid)[-1:] == ["Shared again"]

    run(main())


def test_a_new_page_replaces_the_recorder_and_the_stream_follows_it(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            first = await RecorderClient.attached_to(server, token)
            await first.record(page_snapshot("Page one"))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            assert alice.page.texts(sid) == ["Page one"]

            second = await RecorderClient.open(server)
            attached = await second.attach(token, "https://shop.example/two", "Two")
            assert isinstance(attached, Attached) and attached.watching == ["Alice Ng"]
            assert await first.closed_with() == CloseCode.NORMAL
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.WAITING)
            await second.record([page_change("not before a snapshot")])
            await second.record(page_snapshot("Page two"))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            assert alice.page.texts(sid) == ["Page one", "Page two"]
            assert alice.page.statuses[sid][-1].url == "https://shop.example/two"

            await second.ws.close()  # the page is left: the stream waits for the next one
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.WAITING)

    run(main())


def test_the_end_of_the_session_ends_every_watch_and_closes_the_recorder(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot())
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            await alice.ok("end", session=sid)
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.ENDED)
            assert await recorder.closed_with() == CloseCode.NORMAL
            assert server.cobrowse is not None and server.cobrowse.relay.stream(sid) is None
            assert await refused(alice, WATCH, session=sid) == Reason.SESSION_ENDED
            again = await RecorderClient.open(server)
            reply = await again.attach(token)
            assert isinstance(reply, Error) and reply.reason == Reason.SESSION_ENDED
            assert await again.closed_with() == CloseCode.NORMAL

    run(main())


# ----------------------------------------------------------- who may see it


def test_only_the_owner_and_participants_may_watch(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice, bob, carol = [await RepClient.logged_in(server, rep) for rep in ("alice", "bob", "carol")]
            _, sid, token = await browser_session(server, "link-bill")  # to team bill: carol's
            assert await refused(carol, WATCH, session=sid) == Reason.NOT_PARTICIPANT  # waiting: nobody's yet
            await carol.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("Private"))
            for rep in (alice, bob):
                for name in (WATCH, UNWATCH, POINT, TICKET):
                    args: dict[str, Any] = {"x": 1, "y": 1} if name == POINT else {}
                    assert await refused(rep, name, session=sid, **args) == Reason.NOT_PARTICIPANT
            assert await refused(alice, WATCH, session="S999") == Reason.UNKNOWN_SESSION
            assert await refused(alice, WATCH, valid=False) == Reason.INVALID
            assert await refused(alice, POINT, valid=False, session=sid, x=-1, y=0) == Reason.INVALID

            issue_customer = await CustomerClient.started(server)  # not a browser-sharing session
            assert issue_customer.session is not None
            await alice.ok("accept", session=issue_customer.session)
            assert await refused(alice, WATCH, session=issue_customer.session) == Reason.NOT_BROWSER

            await carol.ok(WATCH, session=sid)
            await carol.until(lambda: carol.page.texts(sid) == ["Private"])
            for rep in (alice, bob):
                await rep.drain()
                assert rep.page.batches == {} and rep.page.statuses == {}

    run(main())


def test_a_rep_who_leaves_or_loses_the_session_stops_watching(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice, bob = await RepClient.logged_in(server, "alice"), await RepClient.logged_in(server, "bob")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            invitation = (await alice.ok("share", session=sid, target="rep:bob")).invitation
            await bob.ok("accept_invitation", invitation=invitation.id)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("One"))
            await alice.ok(WATCH, session=sid)
            await bob.ok(WATCH, session=sid)
            await recorder.until(lambda: bool(recorder.watching) and recorder.watching[-1].reps == ["Alice Ng", "Bob Ortiz"])

            await bob.ok("leave", session=sid)
            await recorder.until(lambda: recorder.watching[-1].reps == ["Alice Ng"])
            await recorder.record([page_change("two")])
            await alice.until(lambda: alice.page.texts(sid)[-1:] == ["two"])
            await bob.drain()
            assert bob.page.texts(sid) == ["One"]

            await alice.ok("transfer", session=sid, target="team:net")  # alice does not stay
            await recorder.until(lambda: recorder.watching[-1].reps == [])
            await bob.ok("accept", session=sid)
            await bob.ok(WATCH, session=sid)
            await bob.until(lambda: bob.page.texts(sid)[-2:] == ["One", "two"])
            await recorder.record([page_change("three")])
            await bob.until(lambda: bob.page.texts(sid)[-1:] == ["three"])
            await alice.drain()
            assert alice.page.texts(sid)[-1] == "two"

    run(main())


def test_a_watch_belongs_to_its_connection(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("Hi"))
            second = await RepClient.open(server)
            assert alice.token is not None
            await second.resume(alice.token, alice.seq)
            await alice.ok(WATCH, session=sid)
            await alice.until(lambda: alice.page.texts(sid) == ["Hi"])
            await second.drain()
            assert second.page.batches == {}  # the other console of the same login watches nothing
            await second.ok(WATCH, session=sid)
            await second.until(lambda: second.page.texts(sid) == ["Hi"])
            await recorder.until(lambda: bool(recorder.watching))
            assert [w.reps for w in recorder.watching] == [["Alice Ng"]]  # one rep, however many consoles
            assert server.cobrowse is not None
            stream = server.cobrowse.relay.stream(sid)
            assert stream is not None and len(stream.viewers) == 2
            await alice.close()
            await eventually(lambda: len(stream.viewers) == 1)
            await recorder.record([page_change("still")])
            await second.until(lambda: second.page.texts(sid)[-1:] == ["still"])
            await second.close()
            await recorder.until(lambda: len(recorder.watching) == 2)
            assert recorder.watching[-1].reps == []

    run(main())


# ---------------------------------------------------------- the recorder's side


def test_a_token_that_opens_no_browser_session_attaches_to_nothing(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            forged = await RecorderClient.open(server)
            reply = await forged.attach("A" * 32)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.TOKEN_UNKNOWN
            assert await forged.closed_with() == CloseCode.NOT_AUTHENTICATED

            issue = await CustomerClient.started(server)
            assert issue.token is not None
            other = await RecorderClient.open(server)
            reply = await other.attach(issue.token)
            assert isinstance(reply, Error) and reply.reason == Reason.NOT_BROWSER
            assert await other.closed_with() == CloseCode.NORMAL

            before = await RecorderClient.open(server)
            await before.record(page_snapshot("no attach"))
            await before.until(lambda: bool(before.errors))
            assert before.errors[0].reason == ErrorReason.NOT_STARTED

    run(main())


def test_another_customers_token_cannot_reach_a_stream_that_is_not_its_own(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, victim, victim_token = await browser_session(server)
            _, attacker, attacker_token = await browser_session(server)
            await alice.ok("accept", session=victim)
            await alice.ok(WATCH, session=victim)
            real = await RecorderClient.attached_to(server, victim_token)
            await real.record(page_snapshot("The real page"))
            fake = await RecorderClient.attached_to(server, attacker_token)
            assert fake.attached is not None and fake.attached.session == attacker
            await fake.record(page_snapshot("A fake page"))
            second = await fake.attach(victim_token + "x")  # a second attach with a guessed token closes the socket
            assert isinstance(second, Error) and second.reason == ErrorReason.TOKEN_UNKNOWN
            await real.record([page_change("still the real one")])
            await alice.until(lambda: alice.page.texts(victim)[-1:] == ["still the real one"])
            assert alice.page.texts(victim) == ["The real page", "still the real one"]
            assert attacker not in alice.page.batches

    run(main())


def test_bad_frames_get_an_error_or_a_close_and_nothing_else_is_affected(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            _, other_sid, other_token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("Fine"))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)

            await recorder.send_raw("{not json")
            await recorder.send_raw('{"type":"' + MessageType.RECORD + '","batch":1,"part":0,"parts":1}')
            await recorder.send_raw(b"\x00binary")
            await recorder.until(lambda: len(recorder.errors) == 3)
            assert {e.reason for e in recorder.errors} == {ErrorReason.BAD_MESSAGE}

            await recorder.record('{"an": "object"}')
            await recorder.until(lambda: len(recorder.errors) == 4 and bool(recorder.asks))
            assert recorder.errors[-1].data == {"batch": 1} and "not a JSON array of rrweb events" in recorder.errors[-1].detail
            assert recorder.asks[-1].reason == "lost_batch"
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.RESYNC)
            await recorder.record(page_snapshot("Back"))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE and alice.page.texts(sid)[-1] == "Back")

            other = await RecorderClient.attached_to(server, other_token)
            await recorder.send_raw("x" * (MAX_FRAME + 1))
            assert await recorder.closed_with() == CloseCode.MESSAGE_TOO_BIG
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.WAITING)
            await other.record(page_snapshot("Other"))  # every other connection goes on
            assert (await alice.ok("say", session=sid, text="still fine")).line.text == "still fine"
            assert server.cobrowse is not None
            stream = server.cobrowse.relay.stream(other_sid)
            await eventually(lambda: stream is not None and stream.state is CobrowseState.LIVE)

    run(main())


def test_a_page_over_the_rate_is_asked_for_a_fresh_snapshot_once_the_rate_allows(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock()
        config = write_site(tmp_path, server="cobrowse_rate = 1024\ncobrowse_buffer = 65536")
        async with serving(config, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("Big", pad=30_000))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            for n in range(8):  # 80 KB more at once: over the 64 KiB bucket
                await recorder.record([page_change(f"burst {n}", pad=10_000)])
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.RESYNC)
            assert alice.page.statuses[sid][-1].detail == "the page changed faster than 1 KiB/s"
            relayed = len(alice.page.texts(sid))
            assert relayed < 9
            await recorder.send_raw("ping")  # answered after anything the burst made the server say
            await recorder.until(lambda: bool(recorder.errors))
            assert recorder.asks == []  # a snapshot as big as the last would not pass yet either
            clock.advance(20)
            await recorder.send_raw("ping")
            await recorder.until(lambda: len(recorder.errors) == 2)
            assert recorder.asks == []
            clock.advance(10)  # the bucket refills 1 KiB a second: now it holds the last snapshot's size
            await recorder.until(lambda: bool(recorder.asks))
            assert recorder.asks[-1].reason == "rate_limited"
            await recorder.record(page_snapshot("Fresh", pad=30_000))
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            assert alice.page.texts(sid)[-1].startswith("Fresh")

    run(main())


# ----------------------------------------------------------------- tickets


async def http_get(server: Server, path: str) -> tuple[int, Any, bytes]:
    """GET ``path`` (in a thread: the server runs on this loop)."""
    return await asyncio.to_thread(_get, server, path)


def _get(server: Server, path: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5 * TIMEOUT_SCALE) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_a_ticket_opens_a_live_view_once_within_thirty_seconds(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock()
        async with serving(site, tmp_path / "data", clock=clock, resources=RESOURCES) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("In a browser"))

            ticket = await alice.ok(TICKET, session=sid)
            assert isinstance(ticket, TicketResult) and ticket.expires_at == clock.now() + 30
            assert ticket.url.startswith(f"http://127.0.0.1:{server.port}/cobrowse/view?ticket=")
            status, headers, body = await http_get(server, ticket.url.split(str(server.port), 1)[1])
            assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and b"replay.min.js" in body

            view = await ViewClient.redeem(server, ticket.url)
            await view.until(lambda: view.page.state(sid) is CobrowseState.LIVE)
            assert view.page.texts(sid) == ["In a browser"]
            await recorder.until(lambda: bool(recorder.watching) and recorder.watching[-1].reps == ["Alice Ng"])
            await recorder.record([page_change("live in the browser")])
            await view.until(lambda: view.page.texts(sid)[-1:] == ["live in the browser"])

            again = await ViewClient.redeem(server, ticket.url)  # single use
            assert await again.closed_with() == CloseCode.NOT_AUTHENTICATED
            assert again.errors[0].reason == ErrorReason.TOKEN_UNKNOWN

            late = await alice.ok(TICKET, session=sid)
            clock.advance(31)
            expired = await ViewClient.redeem(server, late.url)
            assert await expired.closed_with() == CloseCode.NOT_AUTHENTICATED

            await alice.ok("end", session=sid)
            await view.until(lambda: view.page.state(sid) is CobrowseState.ENDED)
            assert await view.closed_with() == CloseCode.NORMAL

    run(main())


def test_a_ticket_is_bound_to_its_login_and_its_place_in_the_session(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock(), resources=RESOURCES) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("Hi"))
            view = await ViewClient.redeem(server, (await alice.ok(TICKET, session=sid)).url)
            await view.until(lambda: view.page.state(sid) is CobrowseState.LIVE)
            unused = (await alice.ok(TICKET, session=sid)).url
            await alice.ok("transfer", session=sid, target="team:net")  # alice is out of the session
            assert await view.closed_with() == CloseCode.NORMAL
            refused_view = await ViewClient.redeem(server, unused)
            assert await refused_view.closed_with() == CloseCode.NORMAL
            assert refused_view.errors[0].reason == Reason.NOT_PARTICIPANT

            await alice.ok("accept", session=sid)
            view = await ViewClient.redeem(server, (await alice.ok(TICKET, session=sid)).url)
            await view.until(lambda: view.page.state(sid) is CobrowseState.LIVE)
            await alice.send(Logout(alice.next_id()))
            assert await view.closed_with() == CloseCode.LOGGED_OUT

    run(main())


def test_the_server_serves_the_vendored_replayer_and_the_snippet_files(tmp_path: Path) -> None:
    async def main() -> None:
        site = write_site(tmp_path)
        resources = tmp_path / "resources"
        (resources / "rrweb").mkdir(parents=True)
        (resources / "cobrowse").mkdir()
        for name in ("replay.min.js", "replay.min.css", "record.min.js", "LICENSE"):
            (resources / "rrweb" / name).write_bytes((RESOURCES / "rrweb" / name).read_bytes())
        (resources / "cobrowse" / "cobrowse.js").write_text("/* the snippet */", encoding="utf-8")
        (resources / "cobrowse" / "consent.css").write_text("/* its style */", encoding="utf-8")
        # No page directory of its own: the snippet comes from the resources.
        empty = tmp_path / "no-pages"
        empty.mkdir()
        async with serving(site, tmp_path / "data", resources=resources, static_dir=empty) as server:
            for name, kind in (("replay.min.js", "text/javascript"), ("replay.min.css", "text/css"), ("record.min.js", "text/javascript")):
                status, headers, body = await http_get(server, f"/vendor/rrweb/{name}")
                assert (status, headers["Content-Type"].split(";")[0]) == (200, kind)
                assert body == (RESOURCES / "rrweb" / name).read_bytes()
            assert (await http_get(server, "/cobrowse.js"))[2] == b"/* the snippet */"
            assert (await http_get(server, "/cobrowse/consent.css"))[2] == b"/* its style */"
            status, headers, body = await http_get(server, "/cobrowse/view.js")
            assert status == 200 and MessageType.COBROWSE_STATE.value.encode() in body
            for path in [
                "/vendor/rrweb/LICENSE", "/vendor/rrweb/missing.js", "/vendor/rrweb/../rrweb/replay.min.js",
                "/vendor/rrweb/%2e%2e/cobrowse/cobrowse.js", "/vendor/rrweb/sub/x.js", "/vendor/cobrowse/cobrowse.js",
                "/cobrowse/../rrweb/replay.min.js", "/vendor/rrweb/.hidden.js",
            ]:  # fmt: skip
                assert (await http_get(server, path))[0] == 404, path

        static = tmp_path / "static"
        static.mkdir()
        (static / "cobrowse.js").write_text("/* the page directory's */", encoding="utf-8")
        async with serving(site, tmp_path / "data", resources=resources, static_dir=static) as server:
            assert (await http_get(server, "/cobrowse.js"))[2] == b"/* the page directory's */"

    run(main())


# ---------------------------------------------------- a slow console, the privacy promise


def test_a_console_that_reads_slowly_skips_to_the_newest_snapshot_instead_of_piling_up(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        # A bucket of 16 MiB: time stands still on a virtual clock, so nothing refills it.
        config = write_site(tmp_path, server="cobrowse_rate = 1073741824\ncobrowse_buffer = 16777216")
        async with serving(config, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice", max_queue=1)
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            pages = 150
            for n in range(pages):  # 150 snapshots of 60 KB (9 MB) while alice reads nothing
                await recorder.record(page_snapshot(f"page {n}", pad=60_000))
            assert server.cobrowse is not None
            stream = server.cobrowse.relay.stream(sid)
            assert stream is not None
            await eventually(lambda: stream.next_no == pages, timeout=20)
            assert stream.buffer_bytes < 70_000  # the relay keeps the newest page only
            await alice.until(lambda: alice.page.texts(sid)[-1:] == [f"page {pages - 1}" + "x" * 60_000], timeout=20)
            assert len(alice.page.texts(sid)) < pages  # it skipped what it could not read in time

    run(main())


def test_nothing_of_the_page_is_logged_or_stored(site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = "SECRET-CUSTOMER-PAGE-7f3a"

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            await alice.ok(WATCH, session=sid)
            recorder = await RecorderClient.open(server)
            await recorder.attach(token, f"https://shop.example/{marker}", marker)
            await recorder.record(page_snapshot(marker))
            await recorder.record("[" + marker)  # refused: its text is not echoed into the logs either
            await recorder.page_info(f"https://shop.example/{marker}/2", marker)
            await recorder.record([page_change(marker)])
            await alice.until(lambda: alice.page.texts(sid)[-1:] == [marker])
            await alice.ok("end", session=sid)

    with caplog.at_level(logging.DEBUG):
        run(main())
    assert marker not in caplog.text
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    assert marker.encode() not in stored


def test_a_watch_is_answered_before_its_stream_starts(site: Path, tmp_path: Path) -> None:
    """A watch's result comes before its first chunk; the status follows the buffer."""

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=VirtualClock()) as server:
            alice = await RepClient.logged_in(server, "alice")
            _, sid, token = await browser_session(server)
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, token)
            await recorder.record(page_snapshot("First"))
            first = len(alice.received)
            reply = await alice.call(WATCH, session=sid)
            assert isinstance(reply, Result)
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE)
            kinds = [type(m).__name__ for m in alice.received[first:] if type(m).__name__ != "Events"]
            assert kinds[0] == "Result" and kinds[-1] == "CobrowseStatus" and "CobrowseChunk" in kinds
            assert isinstance(await alice.ok(UNWATCH, session=sid), NoResult)

    run(main())
