"""Races on a real server: many consoles act on the same customer at the same moment.

Every console is its own WebSocket login (a distinct rep of one team).  A
customer arrives through ``/customer``; once every console has been told of
the session, all of them send ``accept`` together: every frame is written
before any reply is read, so the server has them all in its socket buffers
at once.  Exactly one wins; every other console is told who did.  The same
for Get Next with fewer customers waiting than consoles pressing it, for
reps at their capacity, and for one rep's two consoles racing for two
sessions with room for one.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from server_helpers import CustomerClient, RepClient, crowd_login, crowd_rep, run, serving, session_event, write_crowd_site

from repconsole.protocol import (
    Command,
    CustomerState,
    Error,
    GoneReason,
    Reason,
    Result,
    SessionGoneData,
    SessionGoneEvent,
    Started,
)
from repconsole.server.app import Server

TEAM = "race"
MAX_SESSIONS = 3
# Trials per number of consoles: every trial is one customer and one race.
TRIALS = {2: 25, 4: 25, 8: 25, 16: 25, 32: 25}


def _site(tmp_path: Path, reps: int = 32, max_sessions: int = MAX_SESSIONS) -> Path:
    return write_crowd_site(tmp_path, {TEAM: reps, "other": 1}, max_sessions=max_sessions)


async def _consoles(server: Server, n: int) -> list[RepClient]:
    return list(await asyncio.gather(*(crowd_login(server, crowd_rep(TEAM, i)) for i in range(n))))


async def _arrive(server: Server, consoles: list[RepClient], name: str) -> tuple[CustomerClient, str]:
    """A customer starts a session through /customer; returns once every console was told."""
    customer = await CustomerClient.open(server)
    started = await customer.start("issue", TEAM, name)
    assert isinstance(started, Started), started
    sid = started.session
    await asyncio.gather(*(c.wait_event(session_event(sid)) for c in consoles))
    return customer, sid


async def _together(consoles: list[RepClient], name: str, **args: Any) -> list[Result | Error]:
    """Send ``name`` from every console at once (all frames out before any reply is read); the replies."""
    rids = [c.next_id() for c in consoles]
    commands = [Command(rid, name, args) for rid in rids]
    await asyncio.gather(*(c.send(m) for c, m in zip(consoles, commands, strict=True)))
    return list(await asyncio.gather(*(c.reply(rid) for c, rid in zip(consoles, rids, strict=True))))


def _loads_within_limits(server: Server) -> None:
    engine = server.runtime.engine
    for rep in engine.reps.values():
        assert engine.load(rep.id) <= rep.max_sessions, (rep.id, engine.load(rep.id), rep.max_sessions)


@pytest.mark.parametrize("n", sorted(TRIALS), ids=[f"{n}-consoles" for n in sorted(TRIALS)])
def test_exactly_one_console_wins_an_accept_race(n: int, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(_site(tmp_path), tmp_path / "data") as server:
            engine = server.runtime.engine
            consoles = await _consoles(server, n)
            rng = random.Random(n)
            wins: dict[str, int] = {}
            for trial in range(TRIALS[n]):
                # Line the consoles up in a different order each time: no one is always first to write.
                rng.shuffle(consoles)
                customer, sid = await _arrive(server, consoles, f"Racer {n}.{trial}")
                replies = await _together(consoles, "accept", session=sid)

                results = [(c, r) for c, r in zip(consoles, replies, strict=True) if isinstance(r, Result)]
                assert len(results) == 1, (trial, replies)
                winner_console, won = results[0]
                winner = won.result.session.owner
                assert winner == winner_console.snapshot.you.id
                wins[winner] = wins.get(winner, 0) + 1
                for c, r in zip(consoles, replies, strict=True):
                    if c is winner_console:
                        continue
                    assert isinstance(r, Error) and r.reason == Reason.ALREADY_TAKEN, (trial, r)
                    assert r.data == {"by": winner, "session_id": sid}, r
                    assert r.detail == f"Already taken by Rep {winner}."
                # The engine agrees, and so does the customer.
                s = engine.session(sid)
                assert s.owner == winner and s.state.value == "active" and s.queue is None
                _loads_within_limits(server)
                await customer.until(lambda c=customer: bool(c.statuses) and c.statuses[-1].state is CustomerState.ACTIVE)
                assert customer.statuses[-1].rep_name == f"Rep {winner}"
                # Every loser sees it leave the queue, taken by the winner; the winner, that it is theirs.
                losers = [c for c in consoles if c is not winner_console]
                gone = SessionGoneData(sid, GoneReason.TAKEN, by=winner)
                await asyncio.gather(*(c.wait_event(lambda e, gone=gone: isinstance(e, SessionGoneEvent) and e.data == gone) for c in losers))
                await winner_console.ok("end", session=sid)
                await customer.closed_with()
            assert sum(wins.values()) == TRIALS[n]

    run(main(), 60)


@pytest.mark.parametrize("waiting", [1, 3, 7], ids=lambda k: f"{k}-waiting-8-consoles")
def test_get_next_race_gives_each_waiting_customer_to_exactly_one_console(waiting: int, tmp_path: Path) -> None:
    n = 8

    async def main() -> None:
        async with serving(_site(tmp_path), tmp_path / "data") as server:
            engine = server.runtime.engine
            consoles = await _consoles(server, n)
            rng = random.Random(waiting)
            for trial in range(8):
                rng.shuffle(consoles)
                customers = []
                for k in range(waiting):
                    customer, _ = await _arrive(server, consoles, f"Next {trial}.{k}")
                    customers.append(customer)
                queued = {s.id for s in engine.waiting_in(engine.session(customers[0].session).queue)}
                assert len(queued) == waiting
                replies = await _together(consoles, "get_next")

                won = [(c, r.result.session) for c, r in zip(consoles, replies, strict=True) if isinstance(r, Result)]
                refused = [r for r in replies if isinstance(r, Error)]
                assert len(won) == waiting, replies
                assert {s.id for _, s in won} == queued  # distinct, and exactly the ones waiting
                assert all(r.reason == Reason.NOTHING_WAITING for r in refused), refused
                for c, s in won:
                    assert s.owner == c.snapshot.you.id == engine.session(s.id).owner
                assert engine.waiting_total() == 0
                _loads_within_limits(server)
                await asyncio.gather(*(c.ok("end", session=s.id) for c, s in won))
                for customer in customers:
                    await customer.closed_with()

    run(main(), 60)


def test_reps_at_capacity_never_go_over_it_in_a_race(tmp_path: Path) -> None:
    """Winners keep their sessions, so reps fill up: a rep at capacity is refused
    (``at_capacity``) if the server reads their accept before the winner's."""
    n, cap = 8, 2

    async def main() -> None:
        async with serving(_site(tmp_path, max_sessions=cap), tmp_path / "data") as server:
            engine = server.runtime.engine
            consoles = await _consoles(server, n)
            rng = random.Random(7)
            for trial in range(n * cap + 4):
                rng.shuffle(consoles)
                before = {c.snapshot.you.id: engine.load(c.snapshot.you.id) for c in consoles}
                _, sid = await _arrive(server, consoles, f"Full {trial}")
                replies = await _together(consoles, "accept", session=sid)
                results = [(c, r) for c, r in zip(consoles, replies, strict=True) if isinstance(r, Result)]
                room = [rep for rep, load in before.items() if load < cap]
                if not room:
                    assert not results, replies
                    assert all(r.reason == Reason.AT_CAPACITY for r in replies), replies
                    assert engine.session(sid).state.value == "waiting"
                    continue
                assert len(results) == 1, replies
                winner = results[0][1].result.session.owner
                assert winner in room
                for c, r in zip(consoles, replies, strict=True):
                    rep = c.snapshot.you.id
                    if rep == winner:
                        continue
                    if r.reason == Reason.AT_CAPACITY:
                        assert before[rep] == cap, (rep, before[rep])
                        assert r.data == {"max_sessions": cap}
                    else:
                        assert r.reason == Reason.ALREADY_TAKEN and r.data["by"] == winner, r
                assert engine.load(winner) == before[winner] + 1
                _loads_within_limits(server)
            assert all(engine.load(c.snapshot.you.id) == cap for c in consoles)

    run(main(), 60)


def test_one_reps_two_consoles_cannot_overshoot_max_sessions(tmp_path: Path) -> None:
    """The same rep signed in twice, with room for one more session, accepts two at once."""

    async def main() -> None:
        async with serving(_site(tmp_path, max_sessions=1), tmp_path / "data") as server:
            engine = server.runtime.engine
            rep = crowd_rep(TEAM, 0)
            first, second = await crowd_login(server, rep), await crowd_login(server, rep)
            assert first.token != second.token  # two login sessions
            for trial in range(20):
                _, a = await _arrive(server, [first, second], f"A{trial}")
                _, b = await _arrive(server, [first, second], f"B{trial}")
                ra, rb = first.next_id(), second.next_id()
                await asyncio.gather(
                    first.send(Command(ra, "accept", {"session": a})),
                    second.send(Command(rb, "accept", {"session": b})),
                )
                replies = [await first.reply(ra), await second.reply(rb)]
                assert sorted(type(r).__name__ for r in replies) == ["Error", "Result"], replies
                (refused,) = [r for r in replies if isinstance(r, Error)]
                assert refused.reason == Reason.AT_CAPACITY
                assert engine.load(rep) == 1
                (won,) = [r.result.session.id for r in replies if isinstance(r, Result)]
                await first.ok("end", session=won)
                (left,) = {a, b} - {won}
                await first.ok("accept", session=left)
                await second.ok("end", session=left)

    run(main(), 60)
