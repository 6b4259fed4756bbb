"""The /rep endpoint of a real server: login, snapshot, commands, events, resume.

Every message the clients send or receive is checked against
docs/protocol.schema.json, and every events frame's ``prev`` against the
last seq the client saw (see server_helpers.RepClient).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_SCALE
from msgspec import UNSET
from server_helpers import CHEAP, PASSWORDS, RepClient, _hashes, eventually, run, serving, session_event, site_toml, wire, write_site
from websockets.asyncio.client import connect

from repconsole.core.intake import Intake
from repconsole.protocol import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    ChatEvent,
    Command,
    Error,
    ErrorReason,
    Events,
    GoneReason,
    KeyEvent,
    Login,
    Logout,
    MessageType,
    Reason,
    RepEvent,
    RepStatus,
    Result,
    ResumeReason,
    SessionEvent,
    SessionGoneData,
    SessionGoneEvent,
    SessionState,
    StepKind,
    TeamChatEvent,
    Welcome,
)
from repconsole.server import app, passwords
from repconsole.server.app import Server
from repconsole.server.auth import Argon2Params, HashParams, ScryptParams, hash_password, parse_hash, verify_password
from repconsole.server.config import load_config
from repconsole.server.timers import VirtualClock


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


def frame(**fields: Any) -> str:
    """A frame written by hand, for what no protocol Struct would send: a broken client."""
    return json.dumps(fields)


def arrive(server: Server, issue: str = "vpn", name: str = "Ann Lee") -> str:
    """A customer arrives through the issue form (in-process, as one server step)."""
    rt = server.runtime
    assert rt is not None
    with rt.step():
        s = rt.engine.start_with_issue(issue, Intake(name))
    return s.id


def test_login_gets_a_welcome_and_the_reps_own_snapshot(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            net, bill, hw = arrive(server, "vpn"), arrive(server, "invoice"), arrive(server, "printer")
            alice = await RepClient.open(server)
            welcome = await alice.login("alice")
            assert isinstance(welcome, Welcome)
            assert welcome.rep == "alice" and welcome.resumed is False
            assert len(welcome.token) >= 32  # 192 bits, URL-safe base64
            assert welcome.expires_at - welcome.server_time == pytest.approx(12 * 3600, abs=5)
            assert welcome.resume_window == 300
            snap = alice.snapshot
            assert snap is not None and snap.you.id == "alice" and snap.you.connected is True
            assert {s.id for s in snap.sessions} == {net}
            assert set(snap.team_chat) == {"net"}
            assert alice.seq == server.runtime.engine.seq == snap.seq

            erin = await RepClient.logged_in(server, "erin")
            assert {s.id for s in erin.snapshot.sessions} == {net, bill}
            dave = await RepClient.logged_in(server, "dave")
            assert {s.id for s in dave.snapshot.sessions} == {hw}
            # Everyone learns that alice came online; the directory is shared.
            assert {r.id: r.connected for r in dave.snapshot.reps}["alice"] is True

    run(main())


def test_wrong_or_unknown_credentials_are_refused_and_closed_4401(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            for user, password in [("alice", "wrong-password"), ("mallory", "whatever-pw"), ("alice", PASSWORDS["bob"])]:
                c = await RepClient.open(server)
                reply = await c.login(user, password)
                assert isinstance(reply, Error) and reply.reason == ErrorReason.BAD_CREDENTIALS
                assert await c.closed_with() == 4401
            assert server.runtime.engine.reps["alice"].connected is False

    run(main())


def test_an_unknown_username_costs_one_verification_with_the_reps_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Response time must not tell which usernames exist: a login for a username
    without a hash runs exactly one argon2id verification, with the parameters the
    reps' own hashes have (not the server's defaults, not OWASP's)."""
    checked: list[tuple[str, HashParams]] = []

    def counting(password: str, encoded: str) -> bool:
        checked.append((password, parse_hash(encoded)))
        return verify_password(password, encoded)

    monkeypatch.setattr(passwords, "verify_password", counting)
    # dave has no password at all: a known username that no password opens.
    dave = f'password_hash = "{_hashes()["dave"]}"\n'
    toml = site_toml()
    assert dave in toml
    toml = toml.replace(dave, "")
    config = tmp_path / "site.toml"
    config.write_text(toml, encoding="utf-8")
    other = Argon2Params(time_cost=2, memory_cost=16, parallelism=1)  # the server's own cost differs from the configured hashes'

    async def main() -> None:
        server = Server(load_config(config), tmp_path / "data", port=0, hash_params=other)
        await server.start()
        try:
            for user in ("alice", "mallory", "dave"):
                c = await RepClient.open(server)
                reply = await c.login(user, f"{user}-guess")
                assert isinstance(reply, Error) and reply.reason == ErrorReason.BAD_CREDENTIALS, reply
                assert await c.closed_with() == 4401
        finally:
            await server.stop()

    run(main())
    known = parse_hash(_hashes()["alice"])
    assert known == CHEAP != other
    assert checked == [("alice-guess", known), ("mallory-guess", known), ("dave-guess", known)]


ELSEWHERE = {"local_addr": ("127.0.0.2", 0)}  # another client address (all of 127/8 is loopback)


def test_five_failures_a_minute_lock_the_username_at_that_address_only(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            for _ in range(5):
                c = await RepClient.open(server, **ELSEWHERE)
                assert (await c.login("bob", "not-his-password")).reason == ErrorReason.BAD_CREDENTIALS
                await c.closed_with()
            c = await RepClient.open(server, **ELSEWHERE)
            reply = await c.login("bob")  # even the right password, from there, for the rest of the minute
            assert isinstance(reply, Error) and reply.reason == ErrorReason.RATE_LIMITED
            assert await c.closed_with() == 4401
            # Bob at his own address is not locked out by a guesser elsewhere, ever.
            for _ in range(3):
                assert (await RepClient.logged_in(server, "bob")).welcome is not None
            # Other usernames from that address are not affected.
            assert (await RepClient.logged_in(server, "alice", **ELSEWHERE)).welcome is not None
            clock.advance(60)
            assert (await RepClient.logged_in(server, "bob", **ELSEWHERE)).welcome is not None

    run(main())


def test_an_earlier_servers_scrypt_hash_logs_in_and_is_rehashed_with_argon2id(tmp_path: Path) -> None:
    scrypt = ScryptParams(n=2**10, r=8, p=1)
    old_alice = hash_password(PASSWORDS["alice"], scrypt)
    toml = site_toml().replace(_hashes()["alice"], old_alice)  # in the configuration file
    config = tmp_path / "site.toml"
    config.write_text(toml, encoding="utf-8")

    async def main() -> None:
        async with serving(config, tmp_path / "data") as server:
            store = server.runtime.store
            store.set_password_hash("bob", old_bob := hash_password(PASSWORDS["bob"], scrypt))  # set by `passwd`, earlier
            # A wrong password re-hashes nothing.
            c = await RepClient.open(server)
            assert (await c.login("alice", "wrong")).reason == ErrorReason.BAD_CREDENTIALS
            assert store.password_hash("alice") is None and store.password_hash("bob") == old_bob
            for rep in ("alice", "bob"):
                assert (await RepClient.logged_in(server, rep)).welcome is not None
                new = store.password_hash(rep)
                assert new is not None and new.startswith("$argon2id$") and parse_hash(new) == CHEAP
                assert verify_password(PASSWORDS[rep], new)
            # The next login checks the new hash, and keeps it.
            again = store.password_hash("alice")
            assert (await RepClient.logged_in(server, "alice")).welcome is not None
            assert store.password_hash("alice") == again

    run(main())


def test_password_checks_have_a_global_budget_a_flood_cannot_exceed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown usernames from many addresses: each costs a check until the second's budget
    is spent; then logins are refused at once, with no hash computed, until it renews."""
    site = write_site(tmp_path, server="password_work = 0.005")  # 5 ms of CPU a second
    clock = VirtualClock()
    checks: list[str] = []

    def slow(password: str, encoded: str) -> bool:
        checks.append(password)
        end = time.thread_time() + 0.002  # 2 ms of CPU, as a costly hash would take
        while time.thread_time() < end:
            pass
        return verify_password(password, encoded)

    monkeypatch.setattr(passwords, "verify_password", slow)

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            replies = []
            for i in range(10):
                c = await RepClient.open(server, local_addr=(f"127.0.1.{i + 1}", 0))
                replies.append((await c.login(f"nobody{i}", "guess")).reason)
            spent = len(checks)
            assert 2 <= spent <= 4  # 5 ms of budget, 2 ms (and a bit) each
            assert replies[:spent] == [ErrorReason.BAD_CREDENTIALS] * spent
            assert replies[spent:] == [ErrorReason.RATE_LIMITED] * (10 - spent)
            clock.advance(1.0)  # the next second
            assert (await RepClient.logged_in(server, "alice")).welcome is not None
            assert len(checks) == spent + 1

    run(main())


def test_commands_are_answered_with_their_request_id(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            won = await alice.call("accept", rid="accept-1", session=sid)
            assert isinstance(won, Result) and won.id == "accept-1"
            session = won.result.session
            assert session.owner == "alice" and session.chat[-1].text == "Alice Ng accepted the session."
            lost = await bob.call("accept", rid=77, session=sid)
            # (The client checked that the typed message is exactly the frame: nothing more was sent.)
            assert lost == Error(
                id=77,
                reason=Reason.ALREADY_TAKEN,
                detail="Already taken by Alice Ng.",
                data={"by": "alice", "session_id": sid},
            )
            # Bob saw it leave his queue, taken by alice, and never where it went.
            gone = await bob.wait_event(lambda e: isinstance(e, SessionGoneEvent))
            assert gone.data == SessionGoneData(sid, GoneReason.TAKEN, by="alice")
            assert (await alice.call("get_next")).reason == Reason.NOTHING_WAITING
            assert (await alice.call("say", session=sid, text="")).reason == Reason.INVALID
            assert (await alice.call("fly", session=sid, valid=False)).reason == Reason.UNKNOWN_COMMAND
            assert (await alice.call("accept", valid=False)).reason == Reason.INVALID  # missing argument

    run(main())


def test_a_retried_request_id_is_answered_again_without_acting_twice(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            await alice.ok("accept", session=sid)
            first = await alice.call("say", rid="m1", session=sid, text="Hello, I'm Alice.")
            again = await alice.call("say", rid="m1", session=sid, text="Hello, I'm Alice.")
            assert again == first
            # 1 and "1" are different ids.
            assert isinstance(await alice.call("team_say", rid=1, team="net", text="one"), Result)
            assert (await alice.call("team_say", rid="1", team="net", text="one")).result.line.n == 2
            # A stored refusal stays a refusal, even if the command would now succeed.
            refused = await alice.call("accept", rid="late", session="S99")
            assert refused.reason == Reason.UNKNOWN_SESSION
            assert (await alice.call("accept", rid="late", session="S99")) == refused
            await alice.drain()
            lines = [e for e in alice.events if isinstance(e, ChatEvent) and e.data.line.author == "alice"]
            assert len(lines) == 1
            assert [line.text for line in server.runtime.engine.session(sid).chat].count("Hello, I'm Alice.") == 1

            # The same login on a new connection (a resume) gets the stored answer too.
            token, seq = alice.token, alice.seq
            await alice.close()
            again = await RepClient.open(server)
            assert (await again.resume(token, seq)).resumed is True
            assert await again.call("say", rid="m1", session=sid, text="Hello, I'm Alice.") == first
            await again.drain()
            assert [line.text for line in server.runtime.engine.session(sid).chat].count("Hello, I'm Alice.") == 1

    run(main())


def test_a_request_id_reused_for_another_command_is_refused_and_runs_nothing(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            engine = server.runtime.engine
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            await alice.ok("accept", session=sid)
            first = await alice.call("say", rid="m1", session=sid, text="one")
            assert isinstance(first, Result)
            # Other arguments, then another command, under the same id: refused, and not run.
            other = await alice.call("say", rid="m1", session=sid, text="two")
            assert isinstance(other, Error) and other.reason == ErrorReason.ID_REUSED and other.id == "m1"
            assert (await alice.call("end", rid="m1", session=sid)).reason == ErrorReason.ID_REUSED
            assert [line.text for line in engine.session(sid).chat if line.author == "alice"] == ["one"]
            assert engine.session(sid).state is SessionState.ACTIVE
            # A true retry, its arguments in another order, still gets the first answer.
            alice.expect("m1", "say")
            alice.replies.pop("m1", None)
            await alice.send_raw(json.dumps({"type": "command", "id": "m1", "name": "say", "args": {"text": "one", "session": sid}}))
            assert await alice.reply("m1") == first
            # Across a restart too: the answer keeps what it answered.
            token, seq = alice.token, alice.seq
            await alice.close()
        async with serving(site, tmp_path / "data") as server:
            again = await RepClient.open(server)
            assert (await again.resume(token, seq)).resumed is True
            assert (await again.call("say", rid="m1", session=sid, text="two")).reason == ErrorReason.ID_REUSED
            assert await again.call("say", rid="m1", session=sid, text="one") == first

    run(main())


def test_answers_are_kept_exactly_for_the_resume_window(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            engine, window = server.runtime.engine, server.spec.server.resume_window
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            await alice.ok("accept", session=sid)
            first = await alice.call("say", rid="m1", session=sid, text="once")
            clock.advance(window)
            assert await alice.call("say", rid="m1", session=sid, text="once") == first  # still a retry
            clock.advance(0.001)  # past the window, before any housekeeping forgets it
            assert clock.pending() and min(clock.pending()) > clock.now()
            again = await alice.call("say", rid="m1", session=sid, text="once")
            assert isinstance(again, Result) and again != first
            assert [line.text for line in engine.session(sid).chat].count("once") == 2

    run(main())


def test_events_carry_prev_and_only_what_each_rep_may_see(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            carol = await RepClient.logged_in(server, "carol")
            dave = await RepClient.logged_in(server, "dave")
            bill = arrive(server, "invoice")
            net = arrive(server, "vpn", "Ben Fox")
            await carol.wait_event(session_event(bill))
            await alice.wait_event(session_event(net))
            await alice.ok("accept", session=net)
            await alice.ok("say", session=net, text="secret plans", reps_only=True)
            await alice.ok("transfer", session=net, target="team:hw", note="printer after all")
            await dave.wait_event(session_event(net))
            for c in (alice, carol, dave):
                await c.drain()
            assert bill not in alice.sessions_seen() and bill not in dave.sessions_seen()
            assert net not in carol.sessions_seen()
            # Dave sees the session only from the moment it reaches his team, never its earlier chat.
            assert not [e for e in dave.events if isinstance(e, ChatEvent)]
            assert isinstance(alice.events[-1], SessionGoneEvent | ChatEvent)
            sent_away = SessionGoneData(net, GoneReason.TRANSFERRED, by="alice", to="team:hw")  # she chose where: she is told
            assert any(isinstance(e, SessionGoneEvent) and e.data == sent_away for e in alice.events)
            # Batching: one frame may carry several events, each frame's prev chains.
            assert alice.frames < len(alice.events)

    run(main())


def test_a_rep_cannot_act_outside_their_queues_and_sessions(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)  # in Networking
            dave = await RepClient.logged_in(server, "dave")  # Hardware only
            alice = await RepClient.logged_in(server, "alice")
            assert (await dave.call("accept", session=sid)).reason == Reason.NOT_MEMBER
            await alice.ok("accept", session=sid)
            for name, args, reason in [
                ("accept", {"session": sid}, Reason.NOT_MEMBER),  # dave could never have taken it: not told by whom
                ("say", {"session": sid, "text": "hi"}, Reason.NOT_PARTICIPANT),
                ("end", {"session": sid}, Reason.NOT_PARTICIPANT),
                ("transfer", {"session": sid, "target": "team:hw"}, Reason.NOT_PARTICIPANT),
                ("set_external_key", {"session": sid, "external_key": "X"}, Reason.NOT_PARTICIPANT),
                ("team_say", {"team": "net", "text": "let me in"}, Reason.NOT_MEMBER),
                ("team_read", {"team": "net"}, Reason.NOT_MEMBER),
            ]:
                reply = await dave.call(name, **args)
                assert isinstance(reply, Error) and reply.reason == reason, (name, reply)
                assert "by" not in reply.data
            await dave.drain()
            assert sid not in dave.sessions_seen()
            assert not [e for e in dave.events if isinstance(e, TeamChatEvent | ChatEvent | KeyEvent)]

    run(main())


def test_anything_before_login_is_refused_but_the_connection_stays(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            c = await RepClient.open(server)
            await c.send(Command(5, "get_next", {}))
            assert await c.pump() == Error(id=5, reason=ErrorReason.NOT_LOGGED_IN, detail="log in or resume first", data={})
            await c.send(Logout(6))
            assert (await c.pump()).reason == ErrorReason.NOT_LOGGED_IN
            assert isinstance(await c.login("alice"), Welcome)
            await c.send(Login(9, "alice", "x"))
            assert (await c.pump()).reason == ErrorReason.ALREADY_LOGGED_IN

    run(main())


def test_a_welcome_says_which_protocol_version_the_server_answers_in(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.open(server)
            welcome = await alice.login("alice")
            assert isinstance(welcome, Welcome) and welcome.protocol == PROTOCOL_VERSION == 4
            back = await RepClient.open(server)
            welcome = await back.resume(alice.token, alice.seq)
            assert isinstance(welcome, Welcome) and welcome.resumed and welcome.protocol == 4

    run(main())


@pytest.mark.parametrize("version", [1, 99])  # 1: the version before snapshots in parts
def test_a_console_of_an_unsupported_protocol_version_is_told_so_and_closed_4426(version: int, site: Path, tmp_path: Path) -> None:
    """As docs/protocol.md says under Versions: ``unsupported_protocol``, a detail that
    says which versions the server speaks, and the close 4426; for login and resume alike."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            witness = await RepClient.logged_in(server, "bob")
            c = await RepClient.open(server)
            reply = await c.login("alice", protocol=version)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.UNSUPPORTED_PROTOCOL, reply
            assert f"protocol versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}," in reply.detail and f"speaks version {version}" in reply.detail, reply
            assert await c.closed_with() == 4426
            assert not server.runtime.engine.reps["alice"].connected  # nobody logged in

            alice = await RepClient.logged_in(server, "alice")
            token, seq = alice.token, alice.seq
            await alice.close()
            c = await RepClient.open(server)
            reply = await c.resume(token, seq, protocol=version)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.UNSUPPORTED_PROTOCOL, reply
            assert await c.closed_with() == 4426
            # The login is not spent: an up-to-date console resumes it.
            updated = await RepClient.open(server)
            assert (await updated.resume(token, seq)).resumed is True
            assert (await witness.call("get_next")).reason == Reason.NOTHING_WAITING

    run(main())


def test_protocol_version_0_is_a_malformed_message_and_the_connection_stays(site: Path, tmp_path: Path) -> None:
    """Versions start at 1: 0 is refused where the message is read (``bad_message``, with
    its id), like any field of the wrong value, and the connection goes on serving."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            c = await RepClient.open(server)
            reply = await c.login("alice", protocol=0, valid=False)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.BAD_MESSAGE and "protocol" in reply.detail, reply
            alice = await RepClient.logged_in(server, "alice")
            reply = await c.resume(alice.token, alice.seq, protocol=0, valid=False)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.BAD_MESSAGE and "protocol" in reply.detail, reply
            assert isinstance(await c.login("alice"), Welcome)

    run(main())


def test_a_console_that_does_not_say_its_protocol_version_speaks_version_1_and_is_told_to_update(site: Path, tmp_path: Path) -> None:
    """An older console sends no ``protocol`` in its login or resume: absent means 1, which this
    server no longer speaks (a version 1 console needs every field of a session, and a snapshot in
    one frame): ``unsupported_protocol`` and 4426, the documented clear error, for login and resume."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            old = await RepClient.open(server)
            reply = await old.login("alice", protocol=None)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.UNSUPPORTED_PROTOCOL, reply
            assert "speaks version 1" in reply.detail and "update the console" in reply.detail, reply
            assert await old.closed_with() == 4426
            alice = await RepClient.logged_in(server, "alice")
            await alice.close()
            again = await RepClient.open(server)
            reply = await again.resume(alice.token, alice.seq, protocol=None)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.UNSUPPORTED_PROTOCOL, reply
            assert await again.closed_with() == 4426

    run(main())


def test_no_login_within_the_deadline_closes_4401(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            c = await RepClient.open(server)
            due = clock.now() + app.LOGIN_TIMEOUT
            await eventually(lambda: due in clock.pending())  # the server is waiting for the login
            # Talking without logging in does not push the deadline back.
            clock.advance(app.LOGIN_TIMEOUT - 0.5)
            await c.send(Command(c.next_id(), "get_next", {}))
            assert (await c.pump()).reason == ErrorReason.NOT_LOGGED_IN
            clock.advance(0.5)
            assert await c.closed_with() == 4401

    run(main())


def test_unknown_and_expired_tokens_close_4401(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            c = await RepClient.open(server)
            reply = await c.resume("A" * 32, 0)
            assert reply.reason == ErrorReason.TOKEN_UNKNOWN and await c.closed_with() == 4401
            clock.advance(server.spec.server.token_lifetime)  # 12 hours; alice's open connection is not cut
            c = await RepClient.open(server)
            reply = await c.resume(alice.token, alice.seq)
            assert reply.reason == ErrorReason.TOKEN_EXPIRED and await c.closed_with() == 4401

    run(main())


def test_logout_revokes_the_token_and_closes_that_logins_sockets_4000(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            first = await RepClient.logged_in(server, "alice")
            second = await RepClient.open(server)
            assert (await second.resume(first.token, first.seq)).resumed is True
            other_login = await RepClient.logged_in(server, "alice")  # a second console: its own login
            await first.send(Logout(99))
            assert await first.closed_with() == 4000
            assert await second.closed_with() == 4000
            c = await RepClient.open(server)
            assert (await c.resume(first.token, first.seq)).reason == ErrorReason.TOKEN_UNKNOWN
            assert (await other_login.call("get_next")).reason == Reason.NOTHING_WAITING
            # The rep still has a console: still connected.
            assert server.runtime.engine.reps["alice"].connected

    run(main())


def test_resume_replays_exactly_the_missed_events(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            witness = await RepClient.logged_in(server, "erin")  # stays connected throughout
            cut = await RepClient.logged_in(server, "erin")
            sid = arrive(server, "vpn")
            await cut.wait_event(lambda e: isinstance(e, SessionEvent))
            await witness.drain()
            token, last = cut.token, cut.seq
            await cut.close()

            # While cut is away: events for erin, and events for others only.
            await witness.ok("accept", session=sid)
            await witness.ok("say", session=sid, text="back in a second")
            other = arrive(server, "printer")  # Hardware: not erin's
            arrive(server, "invoice")
            await witness.ok("team_say", team="bill", text="anyone on invoices?")
            await witness.drain()

            back = await RepClient.open(server)
            welcome = await back.resume(token, last)
            assert welcome.resumed is True and welcome.token == token
            await back.drain()
            expected = [e for e in witness.events if e.seq > last]
            assert back.events == expected
            assert other not in back.sessions_seen()
            # ...and it is live again: the next event follows the replay seamlessly.
            await witness.ok("team_say", team="net", text="thanks")
            await back.wait_event(lambda e: isinstance(e, TeamChatEvent) and e.data.line.text == "thanks")

    run(main())


def test_a_resume_from_too_long_ago_gets_a_fresh_snapshot(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            token, last = alice.token, alice.seq
            await alice.close()
            server.runtime.fanout.ring_limit = 3
            ids = [arrive(server, "vpn", f"Customer {i}") for i in range(5)]
            server.runtime.fanout.prune()
            c = await RepClient.open(server)
            welcome = await c.resume(token, last)
            assert welcome.resumed is False and welcome.reason is ResumeReason.OUTSIDE_RESUME_WINDOW
            assert {s.id for s in c.snapshot.sessions} == set(ids)
            # A seq from the future (another server's) is outside the window too.
            d = await RepClient.open(server)
            assert (await d.resume(token, server.runtime.engine.seq + 100)).reason is ResumeReason.OUTSIDE_RESUME_WINDOW

    run(main())


def test_a_resume_after_the_resume_window_gets_a_fresh_snapshot(site: Path, tmp_path: Path) -> None:
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            window = server.spec.server.resume_window
            engine = server.runtime.engine
            alice = await RepClient.logged_in(server, "alice")
            token, last = alice.token, alice.seq
            await alice.close()
            await eventually(lambda: not engine.reps["alice"].connected)
            sid = arrive(server, "vpn")  # what alice misses
            clock.advance(window - 1)
            early = await RepClient.open(server)
            assert (await early.resume(token, last)).resumed is True
            await early.wait_event(session_event(sid))
            await early.close()
            await eventually(lambda: not engine.reps["alice"].connected)
            # At the window's end the event is still kept; a moment past it, it is not, whenever
            # the housekeeping that forgets it runs.
            clock.advance(1)
            edge = await RepClient.open(server)
            assert (await edge.resume(token, last)).resumed is True
            await edge.close()
            await eventually(lambda: not engine.reps["alice"].connected)
            clock.advance(0.001)
            assert clock.pending() and min(clock.pending()) > clock.now()  # nothing due: no housekeeping ran
            late = await RepClient.open(server)
            welcome = await late.resume(token, last)
            assert welcome.resumed is False and welcome.reason is ResumeReason.OUTSIDE_RESUME_WINDOW
            assert sid in {s.id for s in late.snapshot.sessions}

    run(main())


def test_malformed_input_is_answered_and_everyone_is_still_served(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            command = MessageType.COMMAND
            cases: list[tuple[str | bytes, str, object]] = [
                ("{not json", ErrorReason.BAD_MESSAGE, UNSET),
                ("[1, 2]", ErrorReason.BAD_MESSAGE, UNSET),
                (frame(type=command), ErrorReason.BAD_MESSAGE, UNSET),
                (frame(type=command, id=True, name="get_next"), ErrorReason.BAD_MESSAGE, UNSET),
                (frame(id=4, name="get_next"), ErrorReason.BAD_MESSAGE, 4),
                (frame(type="teleport", id=5), ErrorReason.UNKNOWN_TYPE, 5),
                (frame(type=command, id=6, name="accept", args=[1]), ErrorReason.BAD_MESSAGE, 6),
                (frame(type=command, id=7, name=12), ErrorReason.BAD_MESSAGE, 7),
                (frame(type=command, id="x", name="transfer", args={"session": "S1", "target": "nowhere"}), Reason.INVALID, "x"),
                (frame(type=command, id=8, name="generate_key", args={"valid_for": "soon"}), Reason.INVALID, 8),
                (frame(type=command, id=9, name="get_next").encode(), ErrorReason.BAD_MESSAGE, UNSET),
                # JSON's grammar, but a number no double holds: not JSON, whatever the id says.
                (frame(type=command, id=10, name="get_next", args={"x": math.inf}).replace("Infinity", "1e999"), ErrorReason.BAD_MESSAGE, UNSET),
                (frame(type=command, id=11, name="get_next") + " and more", ErrorReason.BAD_MESSAGE, UNSET),  # not JSON either
                (frame(type=MessageType.SAY, id=12) + " and more", ErrorReason.BAD_MESSAGE, UNSET),
            ]
            for sent, reason, rid in cases:
                await alice.send_raw(sent)
                reply = await alice.pump()
                while isinstance(reply, Events):
                    reply = await alice.pump()
                assert isinstance(reply, Error) and reply.reason == reason, (sent, reply)
                assert reply.id == rid, (sent, reply)
            sid = arrive(server)
            await bob.wait_event(session_event(sid))
            assert isinstance(await alice.call("accept", session=sid), Result)

    run(main())


def test_a_frame_over_64_kib_closes_1009_and_only_that_connection(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            await alice.send_raw(wire(Command(1, "say", {"text": "x" * 70_000})))
            assert await alice.closed_with() == 1009
            assert (await bob.call("get_next")).reason == Reason.NOTHING_WAITING

    run(main())


async def raw_websocket(server: Server, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand, to send frames no client library would."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(3 * TIMEOUT_SCALE):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    return reader, writer


def text_frame(payload: bytes, *, masked: bool = True) -> bytes:
    assert len(payload) < 126
    if not masked:
        return bytes([0x81, len(payload)]) + payload
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def close_code(reader: asyncio.StreamReader) -> int:
    """The code of the close frame the server sends (its frames are small and unmasked)."""
    async with asyncio.timeout(3 * TIMEOUT_SCALE):
        head = await reader.readexactly(2)
        assert head[0] == 0x88, head  # FIN + close
        body = await reader.readexactly(head[1] & 0x7F)
    return int.from_bytes(body[:2], "big")


def test_frames_the_websocket_layer_refuses_close_the_connection(site: Path, tmp_path: Path) -> None:
    """As docs/protocol.md says: not UTF-8 closes with 1007, a protocol violation
    with 1002 (on both endpoints); everyone else is still served."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            bob = await RepClient.logged_in(server, "bob")
            for path in ("/rep", "/customer"):
                reader, writer = await raw_websocket(server, path)
                writer.write(text_frame(frame(type=MessageType.LOGIN, id=1, username="@").encode().replace(b"@", b"\xff")))
                assert await close_code(reader) == 1007, path
                writer.close()
                reader, writer = await raw_websocket(server, path)
                writer.write(text_frame(wire(Logout(1)).encode(), masked=False))
                assert await close_code(reader) == 1002, path
                writer.close()
            assert (await bob.call("get_next")).reason == Reason.NOTHING_WAITING

    run(main())


def test_chat_goes_to_the_sessions_reps_and_team_chat_to_the_team(site: Path, tmp_path: Path) -> None:
    """Who gets which event, as docs/protocol.md lists them: a session's chat only
    its owner and participants (not the team that sees it waiting), team chat
    every member of the team, the author included."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice, bob, carol = [await RepClient.logged_in(server, r) for r in ("alice", "bob", "carol")]
            sid = arrive(server, "vpn")
            with server.runtime.step():
                server.runtime.engine.customer_say(sid, "anyone there?")
            await bob.wait_event(session_event(sid))
            accepted = await alice.ok("accept", session=sid)
            assert next(line.text for line in accepted.session.chat) == "anyone there?"
            await alice.ok("say", session=sid, text="for the session")
            await alice.ok("share", session=sid, target="rep:carol")  # invited: sees it, is not in it
            await alice.ok("say", session=sid, text="before carol joins", reps_only=True)
            await alice.ok("team_say", team="net", text="for the team")
            for rep in (alice, bob):
                await rep.wait_event(lambda e: isinstance(e, TeamChatEvent) and e.data.line.text == "for the team")
            # A barrier: everyone is told of alice's status, after everything above.
            await alice.ok("set_status", status="busy")
            for rep in (alice, bob, carol):
                await rep.wait_event(lambda e: isinstance(e, RepEvent) and e.data.rep.status is RepStatus.BUSY)
            assert any(isinstance(e, SessionEvent) and e.data.session.invitations for e in carol.events)
            chats = {r.welcome.rep: [e.data.line.text for e in r.events if isinstance(e, ChatEvent)] for r in (alice, bob, carol)}
            assert chats["bob"] == [] and chats["carol"] == []
            assert "for the session" in chats["alice"] and "before carol joins" in chats["alice"]
            assert not any(isinstance(e, TeamChatEvent) for e in carol.events)  # not her team

    run(main())


def test_refusals_about_a_session_name_the_rule_and_not_who_has_it(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            dave = await RepClient.logged_in(server, "dave")  # Hardware: never sees a Networking session
            sid = arrive(server, "vpn")
            await alice.ok("accept", session=sid)
            expected = {
                "accept": ({"session": sid}, Reason.NOT_MEMBER),
                "transfer": ({"session": sid, "target": "team:hw"}, Reason.NOT_PARTICIPANT),
                "share": ({"session": sid, "target": "team:hw"}, Reason.NOT_PARTICIPANT),
                "hold": ({"session": sid}, Reason.NOT_PARTICIPANT),
                "end": ({"session": sid}, Reason.NOT_PARTICIPANT),
                "leave": ({"session": sid}, Reason.NOT_PARTICIPANT),
                "say": ({"session": sid, "text": "hi"}, Reason.NOT_PARTICIPANT),
                "set_external_key": ({"session": sid, "external_key": "X"}, Reason.NOT_PARTICIPANT),
            }
            for name, (args, reason) in expected.items():
                reply = await dave.call(name, **args)
                assert isinstance(reply, Error) and reply.reason == reason, (name, reply)
                assert reply.data == {"session_id": sid} and "Alice" not in reply.detail, (name, reply)
            assert (await dave.call("team_say", team="net", text="hi")).reason == Reason.NOT_MEMBER

    run(main())


def test_a_dropped_rep_keeps_everything_within_the_grace_period(tmp_path: Path) -> None:
    grace = 60.0
    site = write_site(tmp_path, grace_period=grace)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            engine = server.runtime.engine
            kept, lost = arrive(server, "vpn"), arrive(server, "vpn", "Ben Fox")
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            await alice.ok("accept", session=kept)
            token, seq = alice.token, alice.seq
            await alice.close()
            await bob.wait_event(lambda e: isinstance(e, RepEvent) and e.data.rep.id == "alice" and not e.data.rep.connected)
            clock.advance(grace - 0.5)  # back just in time
            assert engine.session(kept).owner == "alice"
            back = await RepClient.open(server)
            assert (await back.resume(token, seq)).resumed
            await bob.wait_event(lambda e: isinstance(e, RepEvent) and e.data.rep.id == "alice" and e.data.rep.connected)
            clock.advance(grace)  # the grace period ended with the resume: nothing falls back
            assert server.runtime.engine.session(kept).owner == "alice"

            # Gone for longer than the grace period: the session returns to its queue.
            await back.ok("accept", session=lost)
            await back.close()
            await eventually(lambda: not engine.reps["alice"].connected)
            clock.advance(grace - 0.5)
            assert engine.session(lost).owner == "alice"
            clock.advance(0.5)
            await bob.wait_event(session_event(lost, lambda s: s.state is SessionState.WAITING), timeout=3)
            assert server.runtime.engine.session(lost).queue is not None

    run(main())


def test_waiting_rules_fire_on_the_servers_clock(tmp_path: Path) -> None:
    after = 60.0
    site = write_site(tmp_path, extra=f'\n[teams.net.rule]\nafter = {after}\naction = "transfer"\noverflow_team = "bill"\n')
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            carol = await RepClient.logged_in(server, "carol")
            alice = await RepClient.logged_in(server, "alice")
            sid = arrive(server, "vpn")
            clock.advance(after - 0.5)
            assert server.runtime.engine.session(sid).queue.id == "net"  # not a moment early
            clock.advance(0.5)
            e = await carol.wait_event(session_event(sid))
            steps = {step.kind: step.at for step in e.data.session.timeline}
            assert steps[StepKind.RULE_TRANSFERRED] - steps[StepKind.ARRIVED] == after  # on the server's clock, to the instant
            assert e.data.session.queue == "team:bill"
            await alice.wait_event(lambda e: isinstance(e, SessionGoneEvent) and e.data.id == sid)

    run(main())


@pytest.mark.parametrize("how", ["socket", "client"])
def test_a_console_that_stops_reading_is_closed_4408_and_the_others_are_served(how: str, tmp_path: Path) -> None:
    """Flooded: its send buffer stays bounded, it is closed with 4408 (never a reset), its rep is
    lost at once, and another console of the team gets every event, in time."""
    limit = 64 * 1024
    site = write_site(tmp_path, server=f"send_buffer = {limit}")

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            fanout, engine = server.runtime.fanout, server.runtime.engine
            slow = await RepClient.logged_in(server, "alice")
            other = (await RepClient.logged_in(server, "bob")).listen()
            (link,) = [k for k in fanout.links() if k.rep == "alice"]
            link.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            slow.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            if how == "socket":
                slow.ws.transport.pause_reading()
            # else: the test reads nothing, and the client library stops once its queue is full.
            big = "x" * 3000
            frame = len(big) + 1024  # one frame: one line's event (the line, and well under 1 KiB more)
            waiting, sent = 0, 0
            for i in range(2000):
                with server.runtime.step():
                    engine.team_say("bob", "net", f"{i} {big}")
                sent += 1
                fanout.flush()
                if link.dropped:
                    break
                waiting = max(waiting, link.ws.transport.get_write_buffer_size())
                await asyncio.sleep(0)
            assert link.dropped and fanout.dropped_slow == 1
            assert limit <= waiting <= limit + frame  # the bound: send_buffer and one frame
            assert all(k.rep != "alice" for k in fanout.links())
            assert not engine.reps["alice"].connected  # lost at once, not when its socket goes
            # The others are served as ever: every line, promptly.
            await other.until(lambda: sum(isinstance(e, TeamChatEvent) for e in other.events) == sent, timeout=5)
            # It reads again: the close frame is there, behind what waited.
            if how == "socket":
                slow.ws.transport.resume_reading()
            assert await slow.closed_with(timeout=15) == 4408
            await other.close()

    run(main())


def test_a_console_that_stops_answering_pings_is_closed_4408_not_reset(tmp_path: Path) -> None:
    site = write_site(tmp_path, server="ping_interval = 0.2\nping_timeout = 0.3")

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            engine = server.runtime.engine
            quiet = await RepClient.logged_in(server, "alice")
            quiet.ws.transport.pause_reading()  # frozen: no pong
            await eventually(lambda: not engine.reps["alice"].connected, timeout=2)
            quiet.ws.transport.resume_reading()
            assert await quiet.closed_with(timeout=5) == 4408
            # One that never reads again is dropped once it had ping_timeout to read its 4408:
            # the server keeps nothing of it.
            gone = await RepClient.logged_in(server, "carol")
            port = gone.ws.transport.get_extra_info("sockname")[1]
            (conn,) = [c for c in server._connections if c.remote_address[1] == port]
            gone.ws.transport.pause_reading()
            await eventually(lambda: conn not in server._connections, timeout=0.2 + 2 * 0.3 + 1.0)
            # One that answers stays, however long.
            alive = await RepClient.logged_in(server, "bob")
            await asyncio.sleep(1.0)
            assert engine.reps["bob"].connected and isinstance(await alive.call("set_status", status="busy"), Result)

    run(main())


def test_the_rep_endpoint_refuses_pages_from_other_origins(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            with pytest.raises(Exception, match="403"):
                await connect(f"ws://127.0.0.1:{server.port}/rep", additional_headers={"Origin": "https://evil.example"})
            ok = await RepClient.open(server, origin=f"http://127.0.0.1:{server.port}")
            assert isinstance(await ok.login("alice"), Welcome)

    run(main())


def test_many_consoles_of_a_team_share_frames(site: Path, tmp_path: Path) -> None:
    """Consoles that must get byte-identical frames are written with one broadcast."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            consoles = [await RepClient.logged_in(server, "bob") for _ in range(6)]
            for c in consoles:
                await c.drain(0.05)
            before = server.runtime.fanout.frames_sent
            # Line them up: every console has seen the same last event.
            assert len({c.seq for c in consoles}) == 1
            sid = arrive(server, "vpn")
            for c in consoles:
                await c.wait_event(session_event(sid))
            assert server.runtime.fanout.frames_sent - before == 1
            await asyncio.gather(*(c.close() for c in consoles))

    run(main())


def test_a_change_that_cannot_be_saved_is_never_confirmed(site: Path, tmp_path: Path) -> None:
    """If the database fails, the engine is ahead of the disk: nothing more may be confirmed."""

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            server.runtime.store._db.close()
            await alice.send(Command("doomed", "accept", {"session": sid}))
            assert await alice.closed_with() in (1011, 1001)
            assert "doomed" not in alice.replies
            async with asyncio.timeout(3 * TIMEOUT_SCALE):
                await server.wait_closed()
            assert server.failed is not None

    run(main())
