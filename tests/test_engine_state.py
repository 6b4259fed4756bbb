"""QueueEngine.export_state / restore_state and the read accessors persistence uses."""

from __future__ import annotations

import copy
import random

import msgspec
import pytest
from engine_helpers import RandomDriver, Site, build_site, fingerprint, intake, standard_rules

from repconsole.core import engine as engine_module
from repconsole.core.clock import ManualClock
from repconsole.core.engine import Counters, EngineState, Event, QueueEngine, RepState, TeamChat
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueRef, RepStatus, SessionState


def _busy(seed: int = 3, steps: int = 500) -> Site:
    site = build_site(seed)
    standard_rules(site)
    RandomDriver(site, seed).run(steps)
    return site


def _fresh(site: Site) -> Site:
    twin = build_site(0)
    standard_rules(twin)
    twin.clock.now = site.clock.now
    return twin


def test_export_then_restore_gives_an_engine_that_looks_the_same() -> None:
    site = _busy()
    state = copy.deepcopy(site.engine.export_state())  # a restored state becomes the engine's own
    twin = _fresh(site)
    heard: list[Event] = []
    twin.engine.subscribe(heard.append)
    twin.engine.restore_state(state)
    assert heard == []  # restoring is not a change
    mine, theirs = fingerprint(twin.engine, site.session_ids), fingerprint(site.engine, site.session_ids)
    for fp in (mine, theirs):
        del fp["next_deadline"]  # the original may still hold stale timers
        fp["snapshots"] = {
            rep: msgspec.structs.replace(snap, sessions=sorted(snap.sessions, key=lambda s: s.id))
            for rep, snap in fp["snapshots"].items()
        }
    assert mine == theirs
    assert twin.engine.counters() == site.engine.counters()
    assert twin.engine.waiting_order() == site.engine.waiting_order()
    assert [s.id for s in twin.engine.ended_sessions()] == [s.id for s in site.engine.ended_sessions()]
    assert {k.key for k in twin.engine.session_keys()} == {k.key for k in site.engine.session_keys()}
    for team in site.engine.teams:
        assert twin.engine.team_chat(team) == site.engine.team_chat(team)


def test_the_read_accessors_answer_what_the_store_needs() -> None:
    site = build_site()
    e = site.engine
    a = site.waiting_in_net("A")
    b = site.waiting_in_net("B")
    e.accept("alice", a.id)
    e.end("alice", a.id)
    e.generate_key("bob", 600)
    e.team_say("alice", "net", "hello team")
    assert e.counters() == Counters(e.seq, int(b.id[1:]), 0)
    assert e.waiting_order() == {QueueRef.team("net"): [b.id]}
    assert [s.id for s in e.ended_sessions()] == [a.id] and e.session(a.id).state is SessionState.ENDED
    assert [k.rep for k in e.session_keys()] == ["bob"]
    chat = e.team_chat("net")
    assert isinstance(chat, TeamChat) and chat.count == 1 and chat.lines[-1].text == "hello team"
    chat.lines.clear()  # a copy: the engine's chat is untouched
    assert e.team_chat("net").count == 1 and len(e.team_chat("net").lines) == 1


def test_restore_refuses_an_engine_that_already_has_state() -> None:
    site = _busy(steps=50)
    state = site.engine.export_state()
    with pytest.raises(ValueError, match="fresh engine"):
        site.engine.restore_state(state)


def test_restore_refuses_a_state_that_does_not_fit_the_directory_and_changes_nothing() -> None:
    site = _busy(steps=200)
    state = copy.deepcopy(site.engine.export_state())
    state.reps["zed"] = RepState(RepStatus.AVAILABLE, True, None)
    twin = _fresh(site)
    before = fingerprint(twin.engine)
    with pytest.raises(ValueError, match="'zed'"):
        twin.engine.restore_state(state)
    assert fingerprint(twin.engine) == before
    del state.reps["zed"]
    twin.engine.restore_state(state)  # the same engine, still fresh
    assert twin.engine.seq == site.engine.seq


def test_restore_never_hands_out_a_number_twice_even_with_counters_behind() -> None:
    site = build_site()
    s = site.waiting_in_net()
    state = copy.deepcopy(site.engine.export_state())
    state.counters = Counters(seq=state.counters.seq, sessions=0, invitations=0)
    twin = _fresh(site)
    twin.engine.restore_state(state)
    assert int(twin.waiting_in_net().id[1:]) == int(s.id[1:]) + 1


def test_restore_keeps_only_as_many_ended_sessions_as_the_engine_would(monkeypatch: pytest.MonkeyPatch) -> None:
    site = build_site()
    ids = []
    for n in range(6):
        s = site.waiting_in_net(f"C{n}")
        site.engine.customer_leave(s.id)
        ids.append(s.id)
    state = copy.deepcopy(site.engine.export_state())
    monkeypatch.setattr(engine_module, "ENDED_KEPT", 2)
    twin = _fresh(site)
    twin.engine.restore_state(state)
    assert [s.id for s in twin.engine.ended_sessions()] == ids[-2:]
    with pytest.raises(CommandError) as info:
        twin.engine.session(ids[0])
    assert info.value.reason is Reason.SESSION_ENDED


def test_an_exported_state_is_plain_data() -> None:
    state = _busy(steps=100).engine.export_state()
    assert isinstance(state, EngineState)
    assert all(isinstance(q, QueueRef) and all(isinstance(sid, str) for sid in sids) for q, sids in state.waiting.items())
    assert all(isinstance(r, RepState) for r in state.reps.values())


def test_a_flood_of_key_guessers_is_forgotten_a_minute_after_it_stops() -> None:
    """The engine's wrong-key limiter used to keep every source that ever failed, for ever."""
    clock = ManualClock()
    e = QueueEngine(clock, rng=random.Random(1))
    e.add_team("t", "T")
    e.add_rep("r", "R", ["t"])
    for i in range(20_000):  # one wrong guess from each of 20,000 addresses
        with pytest.raises(CommandError):
            e.start_with_key("QQQQQQQ", intake(), source=f"10.0.{i // 256}.{i % 256}")
    limiter = e._starts._key_failures
    assert len(limiter) == 20_000
    clock.advance(60.0)
    key = e.generate_key("r", 600)
    assert e.start_with_key(key.key, intake(), source="198.51.100.7").queue == QueueRef.personal("r")
    assert not limiter.blocked("10.0.0.0") and len(limiter) == 0
