"""repconsole.core.persist: the engine's state survives a dump and a load.

A busy engine (random traffic through every command, rules, presence) is
dumped, loaded into a fresh engine with the same directory, and the two must
then be indistinguishable: the same snapshot for every rep, the same
sessions, loads and next deadline, and the same events from the same
further traffic.
"""

from __future__ import annotations

import json
import random

import msgspec
import pytest
from engine_helpers import RandomDriver, Site, build_site, fingerprint, intake, standard_rules

from repconsole.core import persist
from repconsole.core.clock import ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.model import QueueRef, SessionState


def _view(engine: QueueEngine, session_ids: list[str]) -> dict:
    """The engine's fingerprint, less what is an artefact of its history.

    A snapshot's session list comes from set indexes: its order means
    nothing.  The original engine's timer heap may still hold stale timers
    (a rule for a session that was accepted since), which make
    next_deadline() early but fire nothing; a loaded engine holds only live
    ones.  The behaviour test below shows that firing is the same.
    """
    fp = fingerprint(engine, session_ids)
    del fp["next_deadline"]
    fp["snapshots"] = {
        rep: msgspec.structs.replace(snap, sessions=sorted(snap.sessions, key=lambda s: s.id))
        for rep, snap in fp["snapshots"].items()
    }
    return fp


def _busy_site(seed: int, steps: int = 600) -> tuple[Site, RandomDriver]:
    site = build_site(seed)
    standard_rules(site)
    driver = RandomDriver(site, seed)
    driver.run(steps)
    return site, driver


def _fresh_copy(site: Site, state: dict) -> Site:
    """A new engine with the same directory and clock time, loaded from ``state``."""
    copy = build_site(0)
    standard_rules(copy)
    copy.clock.now = site.clock.now
    persist.load(copy.engine, state)
    # Keys come from the engine's generator; give the copy the same draws ahead.
    copy.engine._rng.setstate(site.engine._rng.getstate())
    return copy


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_busy_engine_round_trips(seed: int) -> None:
    site, _ = _busy_site(seed)
    state = persist.dump(site.engine)
    # JSON-ready means JSON: what the store writes is exactly this.
    state = json.loads(json.dumps(state))
    copy = _fresh_copy(site, state)
    assert _view(copy.engine, site.session_ids) == _view(site.engine, site.session_ids)
    assert persist.dump(copy.engine) == persist.dump(site.engine)
    if site.engine.next_deadline() is None:
        assert copy.engine.next_deadline() is None
    else:
        assert copy.engine.next_deadline() is None or copy.engine.next_deadline() >= site.engine.next_deadline()
    # The waiting indexes come back in queue order, not just as sets.
    for q in {*(QueueRef.team(t) for t in site.engine.teams), *(QueueRef.personal(r) for r in site.engine.reps)}:
        assert [s.id for s in copy.engine.waiting_in(q)] == [s.id for s in site.engine.waiting_in(q)]


@pytest.mark.parametrize("seed", [4, 5])
def test_a_loaded_engine_behaves_exactly_like_the_original(seed: int) -> None:
    site, driver = _busy_site(seed, 400)
    copy = _fresh_copy(site, json.loads(json.dumps(persist.dump(site.engine))))
    twin = RandomDriver(copy, seed)
    twin.rng.setstate(driver.rng.getstate())
    before_a, before_b = len(site.events), len(copy.events)
    driver.refused.clear()
    driver.run(400)
    twin.run(400)
    strip = [(e.seq, e.kind, e.data, e.audience, e.gone) for e in site.events[before_a:]]
    assert strip == [(e.seq, e.kind, e.data, e.audience, e.gone) for e in copy.events[before_b:]]
    assert driver.refused == twin.refused
    assert _view(copy.engine, site.session_ids) == _view(site.engine, site.session_ids)


def test_timers_that_passed_while_stored_fire_on_the_next_advance() -> None:
    site = build_site()
    standard_rules(site)
    waiting = site.waiting_in_net()
    site.engine.rep_disconnected("dave")
    state = persist.dump(site.engine)
    copy = _fresh_copy(site, state)
    assert copy.engine.next_deadline() == site.engine.next_deadline()
    copy.clock.advance(3600)
    assert copy.engine.advance() >= 2
    assert copy.engine.session(waiting.id).queue == QueueRef.team("bill")
    assert copy.engine.reps["dave"].grace_until is None


def test_ids_are_never_handed_out_twice_after_a_load() -> None:
    site = build_site()
    a = site.active("alice")
    site.engine.share("alice", a.id, QueueRef.personal("bob"))
    copy = _fresh_copy(site, persist.dump(site.engine))
    s = copy.waiting_in_net("Next Customer")
    assert s.id != a.id and int(s.id[1:]) == int(a.id[1:]) + 1
    inv = copy.engine.share("alice", a.id, QueueRef.team("bill"))
    assert inv.id == "I2"
    # One event for the arrival, two for the share (the session and its chat line).
    assert copy.engine.seq == site.engine.seq + 3


def test_a_session_survives_field_by_field() -> None:
    site = build_site()
    s = site.engine.start_browser("link-bill", intake("Bo", custom_fields={"a": "b"}), page_url="https://x", page_html="<b>x</b>")
    site.engine.accept("carol", s.id)
    site.engine.say("carol", s.id, "hi", reps_only=True)
    site.engine.share("carol", s.id, QueueRef.personal("erin"))
    site.engine.accept_invitation("erin", "I1")
    d = persist.dump_session(s)
    back = persist.load_session(json.loads(json.dumps(d)))
    assert persist.dump_session(back) == d
    assert back.participants == s.participants and back.page_html == "<b>x</b>"
    assert persist.dump_session(s, chat=False).keys() == d.keys() - {"chat"}


def test_a_changed_directory_is_repaired_not_kept() -> None:
    site = build_site(fallback_queue=QueueRef.team("vault"))
    mine = site.active("dave")  # dave will be gone
    waiting = site.engine.start_with_button("btn-net", intake())
    site.engine.generate_key("dave", 600)
    state = persist.dump(site.engine)

    clock = ManualClock(site.clock.now)
    engine = QueueEngine(clock, rng=random.Random(1))
    engine.site.fallback_queue = QueueRef.team("vault")
    for team_id, name in [("net", "Networking"), ("vault", "Vault")]:
        engine.add_team(team_id, name, persistent=team_id == "vault")
    engine.add_rep("alice", "Alice Ng", ["net"])
    repairs = persist.load(engine, state)
    assert any("dave" in r for r in repairs)
    moved = engine.session(mine.id)
    assert moved.state is SessionState.WAITING and moved.queue == QueueRef.team("vault") and moved.owner is None
    assert engine.session(waiting.id).queue == QueueRef.team("net")
    assert engine.keys_of("alice") == []
    assert "dave" not in {k.rep for k in engine._keys.values()}


def test_load_refuses_an_engine_that_already_has_state() -> None:
    site = build_site()
    site.waiting_in_net()
    with pytest.raises(ValueError, match="fresh engine"):
        persist.load(site.engine, persist.dump(site.engine))
    with pytest.raises(ValueError, match="format"):
        persist.load(build_site().engine, {"format": 99})
