"""Typing indicators over real sockets (issue 14; docs/protocol.md, Typing).

A ``typing`` is a transient beside the feed: relayed at once, throttled (one
per 2 s per sender and session), never an event (no ``seq``), never sent to
a version 2 console.
"""

from __future__ import annotations

from pathlib import Path

from server_helpers import CustomerClient, RepClient, run, serving, session_event, write_site

from repconsole.protocol import ChatEvent, CustomerIsTyping, CustomerTyping, Error, ErrorReason, RepIsTyping, Result, Say, Typing
from repconsole.server.app import Server
from repconsole.server.timers import VirtualClock
from repconsole.server.typingrelay import THROTTLE


def _typing(client: RepClient | CustomerClient) -> list[object]:
    return [m for m in client.received if isinstance(m, CustomerIsTyping | RepIsTyping)]


def _seq(server: Server) -> int:
    assert server.runtime is not None
    return server.runtime.engine.counters().seq


def test_the_customer_typing_reaches_the_reps_who_see_the_session_throttled_and_never_a_version_2_console(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            old = await RepClient.open(server)
            assert (await old.login("alice", protocol=2)).protocol == 2  # type: ignore[union-attr]
            bob = await RepClient.logged_in(server, "bob")
            carol = await RepClient.logged_in(server, "carol")  # billing: may not see a VPN session
            ann = await CustomerClient.started(server)
            assert ann.session is not None
            await bob.wait_event(session_event(ann.session))
            await bob.drain()
            seq = _seq(server)

            await ann.send(CustomerTyping(ann.next_id()))
            await bob.until(lambda: len(_typing(bob)) == 1)
            assert _seq(server) == seq  # no event, no seq: the feed's prev is untouched (the client checks every prev)
            assert _typing(bob) == [CustomerIsTyping(ann.session)]  # while it waits: the queue row shows it
            await bob.ok("accept", session=ann.session)
            clock.advance(THROTTLE)
            await ann.send(CustomerTyping(ann.next_id()))
            await ann.send(CustomerTyping(ann.next_id()))  # within 2 s of the last: dropped
            await ann.request(Say, text="It says error 809.")  # its event comes after any notice sent before it
            await bob.wait_event(lambda e: isinstance(e, ChatEvent) and e.data.line.text == "It says error 809.")
            assert _typing(bob) == [CustomerIsTyping(ann.session)] * 2  # the owner: in the tab
            clock.advance(THROTTLE)
            await ann.send(CustomerTyping(ann.next_id()))
            await bob.until(lambda: len(_typing(bob)) == 3)
            for rep in (old, carol):
                await rep.drain()
                assert _typing(rep) == [], rep  # version 2 cannot decode it; carol may not see the session
            # The customer is never answered (a transient), and gets nothing back.
            assert [type(m).__name__ for m in ann.received if isinstance(m, Result | Error)] == ["Result"]  # the say's alone

    run(main())


def test_a_rep_typing_reaches_the_customer_page_only_from_a_rep_of_the_session(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            bob = await RepClient.logged_in(server, "bob")
            alice = await RepClient.logged_in(server, "alice")
            ann = await CustomerClient.started(server, listen=True)
            assert ann.session is not None
            await bob.wait_event(session_event(ann.session))
            # Waiting: nobody takes part in it yet, so nobody's typing reaches the customer.
            await bob.send(Typing(bob.next_id(), ann.session))
            await bob.ok("accept", session=ann.session)
            clock.advance(THROTTLE)
            # alice sees the team's queue but does not take part: dropped, never answered.
            await alice.send(Typing(alice.next_id(), ann.session))
            await alice.send(Typing(alice.next_id(), "S999"))  # no such session: dropped too
            await alice.ok("set_status", status="available")  # the server has handled both by now
            await bob.send(Typing(bob.next_id(), ann.session))
            await ann.until(lambda: len(_typing(ann)) >= 1)
            await bob.send(Typing(bob.next_id(), ann.session))  # throttled
            clock.advance(THROTTLE)
            await bob.send(Typing(bob.next_id(), ann.session))
            await bob.ok("say", session=ann.session, text="Let me look.")  # pushed after any notice sent before it
            await ann.until(lambda: "Let me look." in ann.chat())
            assert _typing(ann) == [RepIsTyping("Bob Ortiz"), RepIsTyping("Bob Ortiz")]
            assert not any("bob" in frame for frame in ann.raw)  # the rep's name, never the rep's id
            await bob.drain()
            await alice.drain()
            assert not [m for m in (*bob.received, *alice.received) if isinstance(m, Error)]  # never answered
            await ann.close()

    run(main())


def test_a_malformed_or_early_typing_is_answered_like_any_other_message(tmp_path: Path) -> None:
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            bob = await RepClient.logged_in(server, "bob")
            await bob.send_raw('{"type": "typing", "id": 5}')  # no session
            reply = await bob.reply(5)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.BAD_MESSAGE
            page = await CustomerClient.open(server)
            await page.send(CustomerTyping(77))
            early = await page.message(0)
            assert isinstance(early, Error) and early.reason == ErrorReason.NOT_STARTED and early.id == 77

    run(main())
