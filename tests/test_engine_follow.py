"""A follower's copy of an engine (QueueEngine.changes_of / apply_changes), as a cluster keeps it.

Random traffic runs on a leader; after every step its changes go through the
log entry's codec (persist.dump_changes -> JSON -> load_changes) into a
follower built with the same directory, which must then hold the same state
and give every rep the same snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from engine_helpers import RandomDriver, Site, build_site, fingerprint, snapshot_view

from repconsole.core import persist
from repconsole.core.engine import EngineChanges
from repconsole.core.model import QueueRef, RepStatus, RoutingMode, RuleAction, WaitingRule


def ship(changes: EngineChanges) -> EngineChanges:
    """Through the wire, as a log entry carries it (nothing of the leader's objects is shared)."""
    return persist.load_changes(msgspec.json.decode(msgspec.json.encode(persist.dump_changes(changes))))


def follow(leader: Site, follower: Site) -> Callable[[], None]:
    """Apply, after each step, what the leader's step changed."""
    seen = len(leader.events)

    def each() -> None:
        nonlocal seen
        events = leader.events[seen:]
        seen = len(leader.events)
        follower.clock.now = leader.clock.now
        if events:
            follower.engine.apply_changes(ship(leader.engine.changes_of(events)))

    return each


def assert_same(leader: Site, follower: Site) -> None:
    assert follower.engine.seq == leader.engine.seq
    assert persist.dump(follower.engine) == persist.dump(leader.engine)
    theirs, ours = fingerprint(leader.engine, leader.session_ids), fingerprint(follower.engine, leader.session_ids)
    del theirs["next_deadline"], ours["next_deadline"]  # a follower keeps no timers: it never advances time
    assert ours == theirs
    for rep_id in leader.engine.reps:
        assert snapshot_view(follower.engine, rep_id) == snapshot_view(leader.engine, rep_id), rep_id


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_follower_applying_every_step_holds_the_leaders_state(seed: int) -> None:
    leader, follower = build_site(seed), build_site(seed)
    driver = RandomDriver(leader, seed)
    each = follow(leader, follower)
    for _ in range(6):
        driver.run(100, each=each)
        assert_same(leader, follower)
    assert sum(driver.done.values()) > 300
    assert follower.events == [], "a follower's listeners hear nothing: it publishes the leader's events"


def test_applying_takes_no_notice_of_steps_it_did_not_see_only_of_what_it_is_given() -> None:
    """A change is the state after the step, not a diff: a follower that missed one step is
    wrong only about what that step alone touched (it must start from a snapshot instead)."""
    leader, follower = build_site(5), build_site(5)
    each = follow(leader, follower)
    each()
    rep = next(iter(leader.engine.reps))
    leader.engine.set_status(rep, RepStatus.BUSY if leader.engine.reps[rep].status is not RepStatus.BUSY else RepStatus.AVAILABLE)
    changes = ship(leader.engine.changes_of(leader.events[-1:]))
    assert list(changes.reps) == [rep] and changes.sessions == []
    assert follower.engine.reps[rep].status is not leader.engine.reps[rep].status
    follower.engine.apply_changes(changes)
    assert follower.engine.reps[rep].status is leader.engine.reps[rep].status
    assert follower.engine.seq == leader.engine.seq


def test_a_step_that_changes_the_directory_carries_it_and_the_copy_takes_every_part() -> None:
    """A configuration reload in a cluster (repconsole/server/reload.py's apply, on the leader):
    new teams and reps, names, a rule, routing and skills, capacities, joining a team, issues,
    buttons and links reach the copy with the step's changes, even a step that emitted no event."""
    leader, follower = build_site(8), build_site(8)
    for site in (leader, follower):
        site.engine.directory_changed = False  # built from the configuration both share
    driver = RandomDriver(leader, 8)
    each = follow(leader, follower)
    driver.run(60, each=each)
    assert leader.engine.changes_of([]).directory is None, "no directory change: none carried"

    e = leader.engine
    e.add_team("sec", "Security")
    e.teams["net"].name = "Networks"  # a reload renames in place, and says so
    e.directory_changed = True
    e.set_rule("sec", WaitingRule(30.0, RuleAction.TRANSFER, "net"))
    e.add_rep("zoe", "Zoe", ["sec", "net"], connected=False, skills=["vpn"])
    alice = e.reps["alice"]
    alice.teams.add("sec")
    e.teams["sec"].members.add("alice")
    e.add_issue("mfa", "MFA reset", "security", "sec")
    e.buttons.pop("btn-promo")
    e.add_link("link-sec", "Security help", QueueRef.team("sec"))
    shipped = ship(e.changes_of([]))  # nothing announced yet: the directory alone
    assert shipped.directory is not None
    follower.engine.apply_changes(shipped)
    assert follower.engine.directory_changed is False, "a copy applying it has nothing to carry"
    first = len(leader.events)
    e.set_routing("sec", RoutingMode.LEAST_BUSY, {"security": "vpn"})
    e.set_team_capacity("net", 2)
    e.set_capacity("zoe", 3)
    e.set_skills("alice", ["vpn", "billing"])
    e.set_status("zoe", RepStatus.AVAILABLE)
    follower.engine.apply_changes(ship(e.changes_of(leader.events[first:])))
    for t in e.teams:
        ours, theirs = follower.engine.teams[t], e.teams[t]
        assert (ours.name, ours.members, ours.rule, ours.routing, ours.max_sessions, ours.skills, ours.persistent) == (
            theirs.name, theirs.members, theirs.rule, theirs.routing, theirs.max_sessions, theirs.skills, theirs.persistent)  # fmt: skip
    for r in e.reps:
        ours_r, theirs_r = follower.engine.reps[r], e.reps[r]
        assert (ours_r.name, ours_r.teams, ours_r.max_sessions, ours_r.own_max_sessions, ours_r.skills, ours_r.routed) == (
            theirs_r.name, theirs_r.teams, theirs_r.max_sessions, theirs_r.own_max_sessions, theirs_r.skills, theirs_r.routed)  # fmt: skip
    assert follower.engine.issues == e.issues and follower.engine.buttons == e.buttons and follower.engine.links == e.links
    assert follower.engine.site == e.site
    # Every rep's snapshot (the directory, as consoles get it) is the leader's; traffic goes on, the new
    # team and rep included, and the copy stays the leader's.
    driver.run(100, each=each)
    assert_same(leader, follower)


def test_a_pause_of_offers_reaches_the_copy_and_survives_a_restore_and_a_takeover() -> None:
    # A rep's pause is runtime state like their status: a follower's snapshot shows it, a restarted
    # engine keeps it, and whoever runs the engine afterwards ends it on time (its "resume" timer).
    leader, follower = build_site(6), build_site(6)
    each = follow(leader, follower)
    each()
    rep = next(iter(leader.engine.reps))
    leader.engine.rep_connected(rep)
    each()
    leader.engine.pause_offers(rep, 10)
    until = leader.engine.reps[rep].paused_until
    assert until is not None
    each()
    assert follower.engine.reps[rep].paused_until == until
    assert snapshot_view(follower.engine, rep) == snapshot_view(leader.engine, rep)
    # A restart: the state as stored, restored into a fresh engine.
    restarted = build_site(6)
    restarted.clock.now = leader.clock.now
    assert persist.load(restarted.engine, msgspec.json.decode(msgspec.json.encode(persist.dump(leader.engine)))) == []
    assert restarted.engine.reps[rep].paused_until == until
    # A takeover: the copy leads; both end the pause when it is due.
    follower.engine.lead()
    for site in (restarted, follower):
        site.clock.now = until + 1
        site.engine.advance()
        assert site.engine.reps[rep].paused_until is None, site
