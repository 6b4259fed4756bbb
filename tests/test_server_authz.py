"""Authorization on a real server: who may do what, and who may see what.

The matrix: every command of :data:`repconsole.core.commands.COMMANDS`,
tried four ways (the test ids name the command and the way):

* ``own_team``: by a rep of the team the session (or team chat) belongs to,
  in a state where the rules allow it: answered with a ``result``;
* ``other_team``: by a rep who is in none of its queues: refused
  (``not_member``/``not_participant``/...), nothing changes, and the
  refusal says nothing about the session (no customer, owner, queue, chat);
  for the commands that only ever act on the rep themself (``get_next``,
  ``generate_key``, ``set_status``) the other team's rep gets only their
  own, and the first team hears nothing of it;
* ``not_logged_in``: on a connection that has not logged in:
  ``not_logged_in``, nothing changes;
* ``expired_token``: the command pipelined right behind a ``resume`` with an
  expired token: the resume is refused (``token_expired``, close 4401) and
  the command is never run.

Then a long random run checks reads: a rep never receives (in a snapshot,
a replay or live events) a session that was only ever in another team's
queues, nor another team's chat, nor another rep's session keys, and a
customer never receives a reps-only chat line.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from server_helpers import CustomerClient, RepClient, eventually, run, serving, write_site
from websockets.exceptions import ConnectionClosed

from repconsole.core import persist
from repconsole.core.commands import COMMANDS
from repconsole.core.intake import Intake
from repconsole.core.model import QueueRef, RoutingMode
from repconsole.protocol import (
    PROTOCOL_VERSION,
    Command,
    Error,
    ErrorReason,
    KeyEvent,
    Reason,
    Result,
    Resume,
    Say,
    SessionEvent,
    StepKind,
    Welcome,
    encode,
)
from repconsole.server.app import Server
from repconsole.server.timers import VirtualClock

SECRET_NAME = "Zed Secretcustomer"
SECRET_KEY = "EXT-SECRET-77"
SECRET_TEXT = "the secret chat line"
TOKEN_LIFETIME = 60  # the least the configuration allows


@dataclass
class Case:
    """One command, set up so that ``actor`` may run it with ``args``.

    Attributes:
        actor: the insider (a rep of the team the target belongs to).
        outsider: a rep in none of the target's queues.
        args: the command's arguments.
        refusals: what the outsider may be told (empty: a command on the rep themself).
        check: called with the engine and the insider's result (typed: the command's result Struct).
    """

    actor: str
    outsider: str
    args: dict[str, Any]
    refusals: frozenset[Reason]
    check: Callable[[Any, Any], None]


def _session(server: Server, *, owner: str | None = None, issue: str = "vpn") -> str:
    """A customer of ``issue``'s team; accepted by ``owner`` if given, with a secret chat line and external key."""
    rt = server.runtime
    with rt.step():
        s = rt.engine.start_with_issue(issue, Intake(SECRET_NAME, company="Secret Corp", details="secret details"))
        if owner is not None:
            rt.engine.accept(owner, s.id)
            rt.engine.say(owner, s.id, SECRET_TEXT, reps_only=True)
            rt.engine.set_external_key(owner, s.id, SECRET_KEY)
    return s.id


def _setup(name: str, server: Server) -> Case:
    e = server.runtime.engine
    session_refusals = frozenset({Reason.NOT_MEMBER, Reason.NOT_PARTICIPANT, Reason.NOT_OWNER})
    match name:
        case "accept":
            sid = _session(server)
            return Case("alice", "dave", {"session": sid}, session_refusals, lambda e, r: _is(e.session(sid).owner, "alice"))
        case "accept_invitation":
            sid = _session(server, owner="bob")
            with server.runtime.step():
                inv = e.share("bob", sid, QueueRef.team("net"))
            return Case("alice", "dave", {"invitation": inv.id}, session_refusals, lambda e, r: _is("alice" in e.session(sid).participants, True))
        case "get_next":
            sid = _session(server)
            return Case("alice", "dave", {}, frozenset(), lambda e, r: _is(r.session.id, sid))
        case "transfer":
            sid = _session(server, owner="alice")
            return Case("alice", "dave", {"session": sid, "target": "team:bill", "note": "over to you"}, session_refusals,
                        lambda e, r: _is(e.session(sid).queue, QueueRef.team("bill")))  # fmt: skip
        case "share":
            sid = _session(server, owner="alice")
            return Case("alice", "dave", {"session": sid, "target": "rep:bob"}, session_refusals, lambda e, r: _is(len(e.session(sid).invitations), 1))
        case "hold":
            sid = _session(server, owner="alice")
            return Case("alice", "dave", {"session": sid}, session_refusals, lambda e, r: _is(e.session(sid).held, True))
        case "end":
            sid = _session(server, owner="alice")

            def ended(e: Any, r: Any) -> None:
                # The engine has let go of it (the server keeps no finished session in memory); the store has it.
                _is(r.session.state.value, "ended")
                stored = server.runtime.store.load_session(sid)
                _is(stored.state.value if stored is not None else None, "ended")

            return Case("alice", "dave", {"session": sid}, session_refusals, ended)
        case "leave":
            sid = _session(server, owner="alice")
            with server.runtime.step():
                inv = e.share("alice", sid, QueueRef.personal("bob"))
                e.accept_invitation("bob", inv.id)
            return Case("bob", "dave", {"session": sid}, session_refusals, lambda e, r: _is("bob" in e.session(sid).participants, False))
        case "say":
            sid = _session(server, owner="alice")
            return Case("alice", "dave", {"session": sid, "text": "hello there"}, session_refusals,
                        lambda e, r: _is(e.session(sid).chat[-1].text, "hello there"))  # fmt: skip
        case "set_external_key":
            sid = _session(server, owner="alice")
            return Case("alice", "dave", {"session": sid, "external_key": "TCK-9"}, session_refusals,
                        lambda e, r: _is(e.session(sid).external_key, "TCK-9"))  # fmt: skip
        case "generate_key":
            return Case("alice", "dave", {"valid_for": 600}, frozenset(), lambda e, r: _is(r.key.rep, "alice"))
        case "set_status":
            return Case("alice", "dave", {"status": "busy"}, frozenset(), lambda e, r: _is(e.reps["alice"].status.value, "busy"))
        case "team_say":
            return Case("alice", "dave", {"team": "net", "text": "team only"}, frozenset({Reason.NOT_MEMBER}),
                        lambda e, r: _is(e._team_chat["net"].lines[-1].text, "team only"))  # fmt: skip
        case "team_read":
            with server.runtime.step():
                e.team_say("bob", "net", "unread line")
            return Case("alice", "dave", {"team": "net"}, frozenset({Reason.NOT_MEMBER}), lambda e, r: _is(r.last_read, 1))
        case "accept_offer" | "decline_offer":
            # The server's configuration cannot route yet (issue 14): the engine is told directly.
            with server.runtime.step():
                e.set_routing("net", RoutingMode.LEAST_BUSY)
            sid = _session(server)
            (offer,) = e.open_offers()
            assert offer.session == sid
            if name == "accept_offer":
                check: Callable[[Any, Any], None] = lambda e, r: _is(e.session(sid).owner, offer.rep)  # noqa: E731
            else:
                check = lambda e, r: _is((r.offer.session, e.session(sid).owner), (sid, None))  # noqa: E731
            return Case(offer.rep, "dave", {"session": sid}, frozenset({Reason.NO_OFFER}), check)
        case "pause_offers":
            return Case("alice", "dave", {"minutes": 5}, frozenset(), lambda e, r: _is(e.reps["alice"].paused_until is not None, True))
    raise AssertionError(f"no case for command {name!r}: add one to the matrix")


def _is(got: Any, expected: Any) -> None:
    assert got == expected, (got, expected)


def _state(server: Server) -> tuple[int, dict[str, Any]]:
    e = server.runtime.engine
    return e.seq, persist.dump(e)


def _no_leak(reply: Error, args: dict[str, Any]) -> None:
    """A refusal names the reason and echoes what was asked, nothing about the target."""
    allowed = {"session": "session_id", "invitation": "invitation_id", "team": "team"}
    echo = {allowed[k]: v for k, v in args.items() if k in allowed}
    assert set(reply.data) <= set(echo), reply
    assert all(reply.data[k] == echo[k] for k in reply.data), reply
    text = encode(reply).decode()
    for secret in (SECRET_NAME, "Secret Corp", "secret details", SECRET_TEXT, SECRET_KEY, "Alice Ng", "Bob Ortiz", '"alice"', '"bob"', "team:net"):
        assert secret not in text, (secret, reply)


MODES = ["own_team", "other_team", "not_logged_in", "expired_token"]


def test_the_matrix_covers_every_command() -> None:
    # A new command needs a row here before it can ship.
    assert set(COMMANDS) == set(MATRIX_COMMANDS)


MATRIX_COMMANDS = [
    "accept", "accept_invitation", "get_next", "transfer", "share", "hold", "end", "leave",
    "say", "set_external_key", "generate_key", "set_status", "team_say", "team_read",
    "accept_offer", "decline_offer", "pause_offers",
]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("command", MATRIX_COMMANDS)
def test_command_authorization(command: str, mode: str, tmp_path: Path) -> None:
    # A grace period longer than the token: the holder's sessions stay put while its token expires.
    site = write_site(tmp_path, grace_period=2 * TOKEN_LIFETIME, server=f"token_lifetime = {TOKEN_LIFETIME}")
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            consoles = {rep: await RepClient.logged_in(server, rep) for rep in ("alice", "bob", "dave")}
            case = _setup(command, server)
            for c in consoles.values():
                await c.drain(0.05)
            before = _state(server)

            if mode == "own_team":
                reply = await consoles[case.actor].call(command, **case.args)
                assert isinstance(reply, Result), reply
                case.check(server.runtime.engine, reply.result)

            elif mode == "other_team":
                outsider = consoles[case.outsider]
                reply = await outsider.call(command, **case.args)
                if case.refusals:
                    assert isinstance(reply, Error) and reply.reason in case.refusals, reply
                    _no_leak(reply, case.args)
                    assert _state(server) == before, "a refused command changed something"
                elif command == "get_next":
                    # Nothing waits in the outsider's teams: the other team's customer is not theirs.
                    assert isinstance(reply, Error) and reply.reason == Reason.NOTHING_WAITING, reply
                    _no_leak(reply, case.args)
                    assert _state(server) == before
                else:
                    # A command on the rep themself: it acts on the outsider only.
                    assert isinstance(reply, Result), reply
                    if command == "generate_key":
                        assert reply.result.key.rep == case.outsider
                        assert not server.runtime.engine.keys_of(case.actor)
                    else:
                        assert reply.result.rep.id == case.outsider
                        assert server.runtime.engine.reps[case.actor].status.value == "available"
                # The insider's console hears nothing of the outsider's own keys; the outsider nothing of the session.
                insider = consoles[case.actor]
                await insider.drain(0.05)
                await outsider.drain(0.05)
                assert not [e for e in insider.events if isinstance(e, KeyEvent)]
                secret_ids = {v for k, v in case.args.items() if k == "session"}
                assert not secret_ids & outsider.sessions_seen()
                assert all(SECRET_NAME not in encode(e).decode() for e in outsider.events)

            elif mode == "not_logged_in":
                c = await RepClient.open(server)
                rid = c.next_id()
                await c.send(Command(rid, command, case.args))
                reply = await c.pump()
                assert reply == Error(id=rid, reason=ErrorReason.NOT_LOGGED_IN, detail="log in or resume first", data={})
                assert _state(server) == before
                # The connection stays open and can still log in.
                assert isinstance(await c.login(case.actor), Welcome)

            else:  # expired_token
                holder = consoles[case.actor]
                token, seq = holder.token, holder.seq
                await holder.close()
                await eventually(lambda: not server.runtime.engine.reps[case.actor].connected)
                clock.advance(TOKEN_LIFETIME)  # the token expires; the grace period goes on
                before = _state(server)
                c = await RepClient.open(server)
                rid = c.next_id()
                # Both frames in one go: the command must not ride on a refused resume.
                await c.send(Resume(c.next_id(), token, seq, PROTOCOL_VERSION))
                await c.send(Command(rid, command, case.args))
                reply = await c.pump()
                assert isinstance(reply, Error) and reply.reason == ErrorReason.TOKEN_EXPIRED, reply
                assert await c.closed_with() == 4401
                assert not [m for m in c.received if isinstance(m, Result)]
                seq_before, dump_before = before
                seq_after, dump_after = _state(server)
                # The refused resume changed nothing but presence (the holder's console closed).
                assert dump_after["sessions"] == dump_before["sessions"] and dump_after["keys"] == dump_before["keys"]
                assert dump_after["team_chat"] == dump_before["team_chat"] and dump_after["waiting"] == dump_before["waiting"]
                assert {r: v["status"] for r, v in dump_after["reps"].items()} == {r: v["status"] for r, v in dump_before["reps"].items()}

    run(main())


# ------------------------------------------------------------------ reads over a long run

A_REPS = ("alice", "bob")  # Networking only
B_REPS = ("dave",)  # Hardware only
OTHERS = ("carol", "erin")  # Billing; erin is in Networking too


def test_no_rep_ever_reads_another_teams_sessions(tmp_path: Path) -> None:
    """Random traffic; sessions kept within one team stay invisible to everyone outside it.

    * "net-only" sessions arrive for Networking and are only ever accepted,
      transferred and shared among alice, bob and team:net: dave and carol
      (not in Networking) must never hear of them;
    * "hw-only" sessions arrive for Hardware and only dave handles them:
      nobody but dave may hear of them;
    * "mixed" sessions (Billing) go anywhere.

    Consoles drop and resume, or log in afresh, at random: snapshots and
    replays are checked as well as live events.
    """
    rng = random.Random(20240611)
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            engine = server.runtime.engine
            consoles: dict[str, RepClient] = {rep: await RepClient.logged_in(server, rep) for rep in (*A_REPS, *B_REPS, *OTHERS)}
            seen: dict[str, set[str]] = {rep: set() for rep in consoles}
            texts: dict[str, list[str]] = {rep: [] for rep in consoles}
            customers: list[CustomerClient] = []
            net_only: set[str] = set()
            hw_only: set[str] = set()

            def harvest(rep: str, c: RepClient) -> None:
                seen[rep] |= c.sessions_seen()
                texts[rep].append(encode([c.snapshot, c.events]).decode())

            async def arrive(issue: str) -> str:
                cust = await CustomerClient.open(server)
                started = await cust.start("issue", issue, f"Customer {len(customers)}")
                customers.append(cust)
                return started.session

            def mine(rep: str) -> list[str]:
                return sorted(engine.involved(rep))

            async def act(rep: str, allowed: set[str]) -> None:
                c = consoles[rep]
                owned = [sid for sid in mine(rep) if sid in allowed and engine.session(sid).owner == rep]
                waiting = [s.id for q in (QueueRef.personal(rep), *(QueueRef.team(t) for t in engine.reps[rep].teams))
                           for s in engine.waiting_in(q) if s.id in allowed]  # fmt: skip
                choice = rng.random()
                if waiting and (choice < 0.35 or not owned):
                    await c.call("accept", session=rng.choice(waiting))
                elif owned:
                    sid = rng.choice(owned)
                    op = rng.choice(["say", "say_reps", "hold", "transfer", "share", "end", "key"])
                    if op == "say":
                        await c.call("say", session=sid, text=f"line {rng.random():.6f}")
                    elif op == "say_reps":
                        await c.call("say", session=sid, text=f"SECRET reps-only {rng.random():.6f}", reps_only=True)
                    elif op == "hold":
                        await c.call("hold", session=sid)
                    elif op == "key":
                        await c.call("set_external_key", session=sid, external_key=f"K{rng.randrange(1000)}")
                    elif op == "end":
                        await c.call("end", session=sid)
                    else:
                        if rep in A_REPS:
                            target = rng.choice(["team:net", "rep:alice", "rep:bob"])
                        else:
                            target = "team:hw"
                        if target == f"rep:{rep}":
                            target = "team:net"
                        await c.call(op, session=sid, target=target)
                team = sorted(engine.reps[rep].teams)[0]
                if rng.random() < 0.1:
                    await c.call("team_say", team=team, text=f"team {team} {rng.random():.6f}")
                if rng.random() < 0.03:
                    await c.call("generate_key", valid_for=600)

            for step in range(300):
                r = rng.random()
                if r < 0.12:
                    net_only.add(await arrive("vpn"))
                elif r < 0.22:
                    hw_only.add(await arrive("printer"))
                elif r < 0.28:
                    await arrive("invoice")
                elif r < 0.60:
                    await act(rng.choice(A_REPS), net_only)
                elif r < 0.80:
                    await act("dave", hw_only)
                elif r < 0.88 and customers:
                    cust = rng.choice(customers)
                    if cust.ws.close_code is None:
                        await cust.send(Say(cust.next_id(), f"customer {step}"))
                else:
                    # A console drops and resumes, or signs in afresh (a new snapshot).
                    rep = rng.choice(list(consoles))
                    c = consoles[rep]
                    await c.drain(0.02)
                    harvest(rep, c)
                    await c.close()
                    fresh = await RepClient.open(server)
                    if rng.random() < 0.5:
                        assert (await fresh.resume(c.token, c.seq)).resumed is True
                    else:
                        assert isinstance(await fresh.login(rep), Welcome)
                    consoles[rep] = fresh
            for rep, c in consoles.items():
                await c.drain(0.1)
                harvest(rep, c)

            assert net_only and hw_only
            for rep in ("dave", "carol"):
                assert not seen[rep] & net_only, (rep, sorted(seen[rep] & net_only))
            for rep in (*A_REPS, *OTHERS):
                assert not seen[rep] & hw_only, (rep, sorted(seen[rep] & hw_only))
            # Each side did see its own: the check is not vacuous.
            assert net_only <= seen["alice"] | seen["bob"]
            assert hw_only <= seen["dave"]
            for rep in consoles:
                everything = "".join(texts[rep])
                for team in ("net", "bill", "hw"):
                    if team not in engine.reps[rep].teams:
                        assert f'"team {team} ' not in everything, (rep, team)
                for key in engine._keys.values():
                    if key.rep != rep:
                        assert f'"key":"{key.key}"' not in everything.replace(" ", ""), (rep, key.key)
            for cust in customers:
                while True:
                    try:
                        await cust.pump(0.02)
                    except (TimeoutError, ConnectionClosed):
                        break
                assert not any("SECRET" in line.text for line in cust.lines), cust.lines
            # The server agrees with itself about who may see what right now.
            for rep in consoles:
                visible = {s.id for s in engine.snapshot(rep).sessions}
                assert all(rep in engine.audience(engine.session(sid)) for sid in visible)
            # The run did what it is about: sessions were worked, moved and shared.
            kinds = [e.data.session.timeline[-1].kind for c in consoles.values() for e in c.events
                     if isinstance(e, SessionEvent) and e.data.session.timeline]  # fmt: skip
            assert {StepKind.ACCEPTED, StepKind.TRANSFERRED, StepKind.SHARED} <= set(kinds), set(kinds)

    run(main(), 60)
