"""A finished session leaves nothing behind in the server's memory (issue 13, "Memory").

The server handles sessions over real sockets, as a console and a customer
page do: every other one starts with a session key, the others from the issue
form (a team queue, accepted by id, not with Get Next); accept; chat both
ways; the rep ends it or the customer leaves.  Then the server's and the
engine's per-session state is counted, not timed: the maps are back to their
size before, no engine object of a finished session is alive, and nothing
reachable from the server grew with the sessions.  History is in SQLite, and
read back from there.  What the docs bound by time is let go by moving the
server's (virtual) clock past it: the resume window (events in the resume
ring) and a day after a session key expires.

``bench/bench_soak.py`` measures the same in RSS, over 20,000 sessions.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import sqlite3
import types
from collections import Counter
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import build_site
from server_helpers import CustomerClient, RepClient, run, serving, write_site
from websockets.asyncio.server import ServerConnection

from repconsole.core.clock import ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.intake import Intake
from repconsole.core.model import ChatLine, QueueRef, Session, TimelineStep
from repconsole.protocol import CustomerResume, CustomerState, Leave, Result, Say, Started, Status
from repconsole.server.app import Server
from repconsole.server.fanout import Fanout
from repconsole.server.store import LoggedEvent
from repconsole.server.timers import VirtualClock

SESSIONS = 40  # per round; a round of the same sessions first, so that caches and pools are warm
KEY_VALIDITY = 600.0


# ------------------------------------------------------------------ the engine alone


def test_a_team_queue_accepted_by_id_does_not_keep_a_get_next_entry_per_session() -> None:
    """Get Next's heap of a team skips departed sessions lazily; sessions accepted by id
    (never by Get Next) must not leave one entry each behind for ever."""
    clock = ManualClock(1000.0)
    engine = QueueEngine(clock, rng=random.Random(1))
    engine.add_team("net", "Networking")
    engine.add_rep("alice", "Alice", ["net"], max_sessions=10)
    engine.add_issue("vpn", "VPN", "Network", "net")
    first = engine.start_with_issue("vpn", Intake("waits for ever"))  # the head of the heap is never stale
    for n in range(2000):
        clock.advance(1)
        s = engine.start_with_issue("vpn", Intake(f"Customer {n}"))
        engine.accept("alice", s.id)
        engine.end("alice", s.id)
    heap = engine._queues._oldest["net"]
    assert len(heap) <= 2 * engine.queue_count(QueueRef.team("net")) + 64 + 1
    assert engine.get_next("alice").id == first.id  # and Get Next still finds the oldest


def test_forget_ended_lets_go_of_ended_sessions_and_they_stay_ended() -> None:
    engine = build_site().engine
    ended = []
    for n in range(5):
        s = engine.start_with_issue("vpn", Intake(f"Customer {n}"))
        engine.customer_leave(s.id)
        ended.append(s.id)
    assert [s.id for s in engine.ended_sessions()] == ended
    assert engine.forget_ended(keep=2) == 3
    assert [s.id for s in engine.ended_sessions()] == ended[-2:]
    assert engine.forget_ended() == 2 and list(engine.ended_sessions()) == []
    for sid in ended:
        with pytest.raises(Exception, match="session_ended"):
            engine.session(sid)


def test_the_resume_ring_holds_no_more_than_its_bound_plus_one_compaction() -> None:
    """Events that left the ring (too old, or past ``ring_limit``) are dropped from its list
    every 4,096: the list never holds twice the documented 50,000 events."""
    loop = asyncio.new_event_loop()
    try:
        fo = Fanout(loop, seq=0, resume_window=300, ring_limit=20_000, clock=lambda: 100.0)
        audience, nobody = frozenset({"bob"}), frozenset[str]()
        for batch in range(1000):
            fo.publish([LoggedEvent(batch * 100 + i, 100.0, audience, nobody, b"{}", None) for i in range(1, 101)])
            fo.prune()
            assert len(fo._ring) <= 20_000 + 4096 + 100
        assert fo.floor == fo.seq - 20_000 and fo.replay("bob", fo.floor) is not None and fo.replay("bob", fo.floor - 1) is None
    finally:
        loop.close()


# ------------------------------------------------------------------ the server


def _alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


# What the census of the server's own state does not walk into: code, modules and
# types (shared by everything), the event loop and its tasks (the test's clients are
# there too), the sockets (websockets' own), threads and the database connection.
_OPAQUE = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, types.FrameType,
    asyncio.AbstractEventLoop, asyncio.Future, asyncio.Handle, ServerConnection, Executor, logging.Logger,
    sqlite3.Connection, sqlite3.Cursor,
)  # fmt: skip


def _census(server: Server, *, keys: bool = True) -> Counter[str]:
    """Every object reachable from the server, by type name; but for two indexes bounded
    by count, each tested on its own: the resume ring (at most ``resume_window`` seconds
    and 50,000 events, compacted now and then: ``test_server_persistence``) and the Get
    Next heaps (at most twice a team's queue, plus 64: the test above).  ``keys=False``:
    nor the session keys (kept until a day after they expire)."""
    rt = server.runtime
    assert rt is not None
    engine = rt.engine
    seen: set[int] = {id(rt.fanout._ring), id(engine._queues._oldest)}
    if not keys:
        seen |= {id(engine._starts.keys), id(engine._starts._key_expiry)}
    counts: Counter[str] = Counter()
    stack: list[Any] = [server]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _OPAQUE):
            continue
        seen.add(id(o))
        counts[type(o).__name__] += 1
        stack.extend(gc.get_referents(o))
    return counts


def _state(server: Server) -> dict[str, int]:
    """The sizes of the per-session maps of the server and its engine."""
    rt, customers = server.runtime, server.customers
    assert rt is not None and customers is not None
    engine = rt.engine
    return {
        "live sessions": sum(1 for _ in engine.sessions()),
        "ended sessions in the engine": sum(1 for _ in engine.ended_sessions()),
        "session keys": sum(1 for _ in engine.session_keys()),
        "customer pages": len(customers._links),
        "customer grace timers": len(customers._away),
        "store's queue slots": len(rt.store._slots),
        "metrics' timelines": len(server.metrics._steps),
        "Session objects": _alive(Session),
        "ChatLine objects": _alive(ChatLine),
        "TimelineStep objects": _alive(TimelineStep),
    }


async def _handle(server: Server, alice: RepClient, n: int) -> str:
    """One whole session: start (key or issue form), accept, chat both ways, end or leave."""
    page = await CustomerClient.open(server)
    if n % 2 == 0:
        key = (await alice.ok("generate_key", valid_for=KEY_VALIDITY)).key.key
        started = await page.start("key", key, f"Customer {n}")
    else:
        started = await page.start("issue", "vpn", f"Customer {n}")
    assert isinstance(started, Started), started
    sid = started.session
    await alice.ok("accept", session=sid)
    assert isinstance(await page.request(Say, text="Hello, my VPN is down."), Result)
    await alice.ok("say", session=sid, text="Let me have a look.")
    assert isinstance(await page.request(Say, text="Thanks!"), Result)
    await alice.ok("say", session=sid, text="a note for the team", reps_only=True)
    if n % 4 < 2:
        await alice.ok("end", session=sid)
    else:
        assert isinstance(await page.request(Leave), Result)
    assert await page.closed_with() == 1000
    assert page.state() is CustomerState.ENDED
    return sid


async def _settle(server: Server, clock: VirtualClock, alice: RepClient) -> None:
    """Let go of what the docs bound by time: past the resume window, and a day past every key's expiry."""
    rt = server.runtime
    assert rt is not None
    await alice.drain()
    clock.advance(KEY_VALIDITY + 86400 + rt.spec.server.resume_window + 1)
    await alice.ok("generate_key", valid_for=60)  # the engine forgets dead keys as it makes a new one
    clock.advance(rt.spec.server.resume_window + 1)
    rt.housekeeping()
    await alice.drain()
    gc.collect()


@pytest.mark.slow
def test_a_finished_session_leaves_nothing_in_the_servers_memory(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    clock = VirtualClock(2_000_000_000.0)

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            for n in range(SESSIONS):  # warm: caches, pools, the first of everything
                await _handle(server, alice, n)
            await _settle(server, clock, alice)
            before, reachable, unkeyed = _state(server), _census(server), _census(server, keys=False)

            sids = [await _handle(server, alice, n) for n in range(SESSIONS, 2 * SESSIONS)]
            # At once, within the resume window: what is not bounded by time is not kept
            # at all (ended sessions, command answers, customer tokens are in the store).
            await alice.drain()
            gc.collect()
            growth = {kind: n for kind, n in (_census(server, keys=False) - unkeyed).items() if n}
            assert sum(growth.values()) < SESSIONS, growth

            await _settle(server, clock, alice)
            after, grown = _state(server), _census(server)
            assert after == before
            growth = {kind: n for kind, n in (grown - reachable).items() if n}
            # Nothing reachable from the server grows with the sessions: not one object each.
            assert sum(growth.values()) < SESSIONS, growth

            # History is in the database: an ended session and its chat read back whole.
            rt = server.runtime
            assert rt is not None
            stored = rt.store.load_session(sids[0])
            assert stored is not None and stored.state.value == "ended"
            assert [line.text for line in stored.chat][-3:] == ["Let me have a look.", "Thanks!", "a note for the team"]

    run(main(), 120)


@pytest.mark.slow
def test_a_page_of_a_session_the_engine_let_go_of_still_resumes_to_its_end(tmp_path: Path) -> None:
    """docs/protocol.md: a page that resumes after its session ended gets the lines after
    ``last_line``, the status ``ended`` and a 1000, whether or not the engine still holds it."""
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            assert rt is not None
            alice = await RepClient.logged_in(server, "alice")
            page = await CustomerClient.started(server, "Ann Lee")
            token, sid = page.token, page.session
            await alice.ok("accept", session=sid)
            await alice.ok("say", session=sid, text="Hello Ann.")
            await alice.ok("say", session=sid, text="reps only", reps_only=True)
            await alice.ok("end", session=sid)
            assert await page.closed_with() == 1000
            assert list(rt.engine.ended_sessions()) == []  # let go of: the store has it

            again = await CustomerClient.open(server)
            started = await again.request(CustomerResume(id=1, token=token, last_line=1))
            assert isinstance(started, Started) and started.resumed and started.session == sid
            assert await again.closed_with() == 1000
            assert again.chat() == ["Hello Ann."]
            statuses = [m for m in again.received if isinstance(m, Status)]
            assert statuses[-1].state is CustomerState.ENDED and statuses[-1].detail == "ended by Alice Ng"
            assert again.ws.close_code == 1000

    run(main())
