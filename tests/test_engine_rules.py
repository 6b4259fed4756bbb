"""Time-driven rules: waiting-session rules per team, and the fallback after a lost connection."""

from __future__ import annotations

import pytest
from engine_helpers import (
    T0,
    Site,
    assert_refused,
    build_site,
    intake,
    site,  # noqa: F401  (pytest fixture)
    timeline_kinds,
)

from repconsole.core.errors import Reason
from repconsole.core.model import QueueRef, RuleAction, SessionState, StepKind, Visibility, WaitingRule
from repconsole.protocol import EventKind, GoneReason, RepData, SessionGoneData

# ------------------------------------------------------------ waiting rules


def test_mark_overdue_after_n_seconds(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(90, RuleAction.MARK_OVERDUE))
    s = site.waiting_in_net()
    bob = site.console("bob")
    assert s.rule_deadline == T0 + 90 and e.next_deadline() == T0 + 90
    assert site.tick(89.9) == 0 and not s.overdue
    assert site.tick(0.1) == 1
    assert s.overdue and s.queue == QueueRef.team("net") and s.rule_deadline is None
    assert s.timeline[-1].kind is StepKind.RULE_OVERDUE
    bob.sync()
    assert bob.state.rows["team:net"][s.id].session.overdue is True
    # Marked once: the rule does not fire again.
    assert site.tick(10_000) == 0 and timeline_kinds(s).count("rule_overdue") == 1


def test_transfer_to_the_overflow_team_after_n_seconds(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(60, RuleAction.TRANSFER, "bill"))
    e.set_rule("bill", WaitingRule(45, RuleAction.MARK_OVERDUE))
    s = site.waiting_in_net()
    bob, carol = site.console("bob"), site.console("carol")
    site.tick(60)
    assert s.queue == QueueRef.team("bill") and not s.overdue
    assert s.timeline[-1].kind is StepKind.RULE_TRANSFERRED and s.timeline[-1].queue == QueueRef.team("bill")
    assert bob.sync().gone[s.id] == SessionGoneData(s.id, GoneReason.MOVED)
    assert s.id in carol.rows("team:bill")
    # The overflow team's own rule starts counting on arrival there.
    assert s.rule_deadline == site.clock.now + 45
    site.tick(45)
    assert s.overdue and s.queue == QueueRef.team("bill")


def test_two_teams_pointing_at_each_other_do_not_ping_pong(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(30, RuleAction.TRANSFER, "bill"))
    e.set_rule("bill", WaitingRule(30, RuleAction.TRANSFER, "net"))
    s = site.waiting_in_net()
    site.tick(30)
    assert s.queue == QueueRef.team("bill")
    site.tick(30)  # the second hop would send it back: it is marked overdue instead
    assert (s.queue, s.overdue, s.rule_deadline) == (QueueRef.team("bill"), True, None)
    assert timeline_kinds(s) == ["arrived", "rule_transferred", "rule_overdue"]
    assert site.tick(3600) == 0 and e.next_deadline() is None


def test_a_rule_pointing_at_its_own_team_marks_overdue(site: Site) -> None:
    site.engine.set_rule("net", WaitingRule(30, RuleAction.TRANSFER, "net"))
    s = site.waiting_in_net()
    site.tick(30)
    assert s.overdue and timeline_kinds(s) == ["arrived", "rule_overdue"]


def test_a_ring_of_three_teams_stops_after_one_lap(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(10, RuleAction.TRANSFER, "bill"))
    e.set_rule("bill", WaitingRule(10, RuleAction.TRANSFER, "hw"))
    e.set_rule("hw", WaitingRule(10, RuleAction.TRANSFER, "net"))
    s = site.waiting_in_net()
    for _ in range(10):
        site.tick(10)
    assert (s.queue, s.overdue) == (QueueRef.team("hw"), True)
    assert timeline_kinds(s) == ["arrived", "rule_transferred", "rule_transferred", "rule_overdue"]


def test_rule_timer_re_arms_after_a_transfer(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(60, RuleAction.MARK_OVERDUE))
    s = site.waiting_in_net()
    site.tick(30)
    e.accept("alice", s.id)
    site.tick(20)
    e.transfer("alice", s.id, QueueRef.team("net"))  # back in at T0+50: due at T0+110
    assert s.rule_deadline == T0 + 110
    site.tick(10)  # T0+60: the timer from the first stay is stale
    assert not s.overdue
    site.tick(49.9)
    assert not s.overdue
    site.tick(0.1)
    assert s.overdue


def test_a_rule_never_fires_for_an_accepted_session(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(60, RuleAction.TRANSFER, "bill"))
    s = site.waiting_in_net()
    site.tick(59)
    e.accept("alice", s.id)
    assert s.rule_deadline is None
    assert site.tick(3600) == 0
    assert (s.state, s.owner, s.overdue) == (SessionState.ACTIVE, "alice", False)
    assert not {"rule_overdue", "rule_transferred"} & set(timeline_kinds(s))


def test_a_rule_does_not_fire_for_a_held_session(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(60, RuleAction.MARK_OVERDUE))
    s = site.waiting_in_net()
    e.accept("alice", s.id)
    e.hold("alice", s.id)
    site.tick(3600)
    assert s.held and not s.overdue and s.rule_deadline is None


def test_a_transfer_clears_the_overdue_mark(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(10, RuleAction.MARK_OVERDUE))
    s = site.waiting_in_net()
    site.tick(10)
    e.accept("alice", s.id)
    assert not s.overdue
    e.transfer("alice", s.id, QueueRef.team("bill"))
    assert not s.overdue and s.rule_deadline is None  # Billing has no rule


def test_next_deadline_is_the_soonest_timer(site: Site) -> None:
    e = site.engine
    e.set_rule("net", WaitingRule(100, RuleAction.MARK_OVERDUE))
    e.set_rule("bill", WaitingRule(40, RuleAction.MARK_OVERDUE))
    assert e.next_deadline() is None
    site.waiting_in_net()
    e.start_with_issue("invoice", intake())
    assert e.next_deadline() == T0 + 40
    e.rep_disconnected("dave")
    assert e.next_deadline() == T0 + 40
    site.tick(40)
    assert e.next_deadline() == T0 + 60  # Dave's grace period


def test_an_overflow_rule_needs_a_real_team(site: Site) -> None:
    with pytest.raises(Exception) as info:
        site.engine.set_rule("net", WaitingRule(10, RuleAction.TRANSFER, "nope"))
    assert getattr(info.value, "reason", None) is Reason.UNKNOWN_TEAM
    assert site.engine.teams["net"].rule is None


# ------------------------------------------------------------ lost connection


def test_reconnecting_within_the_grace_period_keeps_everything(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    held = site.active("alice", name="held")
    e.hold("alice", held.id)
    e.share("alice", s.id, QueueRef.team("bill"))
    e.rep_disconnected("alice")
    assert e.reps["alice"].connected is False and e.reps["alice"].grace_until == T0 + 60
    last = site.events[-1]
    assert last.kind is EventKind.REP and isinstance(last.data, RepData) and last.data.rep.grace_until == T0 + 60
    before = {x.id: x.to_dict(chat=True) for x in e.sessions()}
    site.tick(59.9)
    e.rep_connected("alice")
    assert e.reps["alice"].grace_until is None
    site.tick(3600)
    assert {x.id: x.to_dict(chat=True) for x in e.sessions()} == before


def test_a_second_disconnect_does_not_extend_the_grace_period(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.rep_disconnected("alice")
    site.tick(30)
    e.rep_disconnected("alice")
    site.tick(30)
    assert s.owner != "alice"


def test_disconnect_reconnect_disconnect_starts_a_new_grace_period(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.rep_disconnected("alice")
    site.tick(50)
    e.rep_connected("alice")
    e.rep_disconnected("alice")  # grace now ends at T0+110
    site.tick(10)  # T0+60: the first period's timer must not fire
    assert s.owner == "alice"
    site.tick(50)
    assert s.owner is None and s.queue == QueueRef.team("net")


def test_fallback_1_the_longest_sharing_connected_participant_takes_over(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    for rep in ("bob", "erin", "carol"):
        e.accept_invitation(rep, e.share("alice", s.id, QueueRef.personal(rep)).id)
        site.tick(1)
    e.rep_disconnected("bob")  # shared longest, but gone too
    e.rep_disconnected("alice")
    site.tick(60)
    # Bob's own grace ended at the same moment; Erin shared longest after him.
    assert (s.state, s.owner) == (SessionState.ACTIVE, "erin")
    assert list(s.participants) == ["carol"]
    assert any(step.kind is StepKind.CONNECTION_LOST and step.by == "erin" for step in s.timeline)
    takeover = [line for line in s.chat if "is now the owner" in line.text]
    assert len(takeover) == 1 and takeover[0].visibility is Visibility.ALL and takeover[0].author is None
    assert e.involved("alice") == set() and e.involved("bob") == set()


def test_fallback_2_the_last_queue_it_was_in(site: Site) -> None:
    e = site.engine
    s = site.active("alice")  # accepted from Networking; Bob and Erin are connected
    bob = site.console("bob")
    e.rep_disconnected("alice")
    site.tick(60)
    assert (s.state, s.owner, s.queue) == (SessionState.WAITING, None, QueueRef.team("net"))
    assert s.timeline[-1].kind is StepKind.CONNECTION_LOST
    told = s.chat[-1]
    assert told.visibility is Visibility.ALL and told.author is None and "back in the queue" in told.text
    assert s.id in bob.rows("team:net")
    assert e.accept("bob", s.id).owner == "bob"


def test_fallback_2_prefers_the_last_queue_over_the_first(site: Site) -> None:
    e = site.engine
    s = e.start_with_button("btn-promo", intake())  # first queue: Billing (Carol is there)
    e.accept("carol", s.id)
    e.transfer("carol", s.id, QueueRef.team("net"))  # last queue: Networking (Bob is there)
    e.accept("alice", s.id)
    e.rep_disconnected("alice")
    site.tick(60)
    assert s.queue == QueueRef.team("net")


def test_fallback_3_the_queue_it_first_entered(site: Site) -> None:
    e = site.engine
    s = e.start_with_button("btn-promo", intake())  # first queue: Billing
    e.accept("carol", s.id)
    e.transfer("carol", s.id, QueueRef.team("net"))  # last queue: Networking
    e.accept("alice", s.id)
    for rep in ("bob", "erin"):  # nobody else can serve Networking
        e.rep_disconnected(rep)
    site.tick(120)
    e.rep_disconnected("alice")
    site.tick(60)
    assert (s.queue, s.owner) == (QueueRef.team("bill"), None)


def test_fallback_4_the_sites_fallback_queue_even_if_persistent_and_empty() -> None:
    # The Vault has no members at all, but it is persistent: it keeps sessions.
    site = build_site(fallback_queue=QueueRef.team("vault"))
    e = site.engine
    s = site.active("dave")  # Hardware: Dave is its only member
    e.rep_disconnected("dave")
    site.tick(60)
    assert (s.queue, s.state, s.owner) == (QueueRef.team("vault"), SessionState.WAITING, None)
    assert e.waiting_in(QueueRef.team("vault")) == [s]


def test_a_fallback_queue_nobody_can_serve_is_skipped() -> None:
    site = build_site(fallback_queue=QueueRef.team("bill"))
    e = site.engine
    for rep in ("carol", "erin"):
        e.rep_disconnected(rep)
    s = site.active("dave")
    e.rep_disconnected("dave")
    site.tick(60)
    assert s.state is SessionState.ENDED


def test_fallback_5_the_session_ends_and_the_customer_is_told(site: Site) -> None:
    e = site.engine
    s = site.active("dave")  # Hardware has nobody else and there is no fallback queue
    e.rep_disconnected("dave")
    site.tick(60)
    assert s.state is SessionState.ENDED and s.end_reason == "representative lost connection"
    told = s.chat[-1]
    assert told.visibility is Visibility.ALL and told.author is None and "lost connection" in told.text


def test_waiting_sessions_in_a_lost_reps_personal_queue_fall_back(site: Site) -> None:
    e = site.engine
    key = e.generate_key("alice", 600)
    by_key = e.start_with_key(key.key, intake("by key"))  # only ever in Alice's queue
    transferred = site.active("bob", name="from bob")
    e.transfer("bob", transferred.id, QueueRef.personal("alice"))
    e.rep_disconnected("alice")
    site.tick(60)
    assert by_key.state is SessionState.ENDED
    # Its last queue other than Alice's own is Networking.
    assert (transferred.queue, transferred.state) == (QueueRef.team("net"), SessionState.WAITING)
    assert e.queue_count(QueueRef.personal("alice")) == 0


def test_a_held_session_of_a_lost_rep_does_not_stay_parked(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.hold("alice", s.id)
    e.rep_disconnected("alice")
    site.tick(60)
    assert (s.held, s.queue, s.owner) == (False, QueueRef.team("net"), None)


def test_a_lost_participant_just_leaves(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    e.rep_disconnected("bob")
    site.tick(60)
    assert (s.state, s.owner, s.participants) == (SessionState.ACTIVE, "alice", {})
    assert s.timeline[-1].kind is StepKind.LEFT and s.timeline[-1].by == "bob"
    assert e.involved("bob") == set()


def test_invitations_to_a_lost_rep_are_withdrawn(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    to_bob = e.share("alice", s.id, QueueRef.personal("bob"))
    to_team = e.share("alice", s.id, QueueRef.team("net"))
    e.rep_disconnected("bob")
    site.tick(60)
    assert list(s.invitations) == [to_team.id]
    assert_refused(e, Reason.UNKNOWN_INVITATION, lambda: e.accept_invitation("bob", to_bob.id))


def test_a_persistent_team_is_a_fallback_target_with_nobody_connected() -> None:
    site = build_site()
    e = site.engine
    s = e.start_with_issue("vpn", intake())
    e.accept("alice", s.id)
    e.transfer("alice", s.id, QueueRef.team("vault"))
    e.add_rep("vic", "Vic", ["vault"])
    e.accept("vic", s.id)
    e.rep_disconnected("vic")
    site.tick(60)
    assert (s.queue, s.state) == (QueueRef.team("vault"), SessionState.WAITING)


def test_a_lost_reps_grace_is_announced(site: Site) -> None:
    e = site.engine
    carol = site.console("carol")
    e.rep_disconnected("alice")
    carol.sync()
    assert carol.state.reps["alice"].connected is False and carol.state.reps["alice"].grace_until == T0 + 60
    site.tick(60)
    carol.sync()
    assert carol.state.reps["alice"].grace_until is None and carol.state.reps["alice"].connected is False


# ------------------------------------------------------------ alerts from rules and team queues


def test_a_customer_marked_overdue_is_reported_once_for_alerts(site: Site) -> None:
    from repconsole.core.state import Arrival

    e = site.engine
    e.set_rule("net", WaitingRule(90, RuleAction.MARK_OVERDUE))
    bob = site.console("bob")
    s = site.waiting_in_net()
    changes = bob.sync()
    # A new customer in one of Bob's team queues is an arrival (for the team alert) ...
    assert [(why, v.id) for why, v in changes.arrived] == [(Arrival.TEAM, s.id)]
    assert changes.overdue == []
    site.tick(90)
    changes = bob.sync()
    # ... and the rule marking them overdue is reported, once.
    assert [v.id for v in changes.overdue] == [s.id] and changes.arrived == []
    site.tick(10_000)
    assert bob.sync().overdue == []


def test_a_rule_transfer_to_an_overflow_team_is_an_arrival_there(site: Site) -> None:
    from repconsole.core.state import Arrival

    e = site.engine
    e.set_rule("net", WaitingRule(60, RuleAction.TRANSFER, "bill"))
    carol = site.console("carol")  # Billing only: does not see Networking
    s = site.waiting_in_net()
    assert carol.sync().arrived == []
    site.tick(60)
    assert [(why, v.id) for why, v in carol.sync().arrived] == [(Arrival.TEAM, s.id)]


# ------------------------------------------------- the personal queue's rule


def test_the_sites_personal_rule_marks_a_customer_overdue_in_a_personal_queue(site: Site) -> None:
    e = site.engine
    e.site.personal_overdue_after = 120
    s = e.start_with_rep("alice", intake())
    alice = site.console("alice")
    assert s.queue == QueueRef.personal("alice") and s.rule_deadline == T0 + 120
    assert site.tick(119) == 0 and not s.overdue
    assert site.tick(1) == 1
    # Marked, never moved: the customer chose this rep.
    assert s.overdue and s.queue == QueueRef.personal("alice") and s.rule_deadline is None
    assert s.timeline[-1].kind is StepKind.RULE_OVERDUE
    alice.sync()
    assert alice.state.rows["rep:alice"][s.id].session.overdue is True
    assert site.tick(10_000) == 0 and timeline_kinds(s).count("rule_overdue") == 1


def test_without_a_personal_rule_a_personal_queue_has_no_deadline(site: Site) -> None:
    s = site.engine.start_with_rep("alice", intake())
    assert s.rule_deadline is None and site.engine.next_deadline() is None
    site.tick(10_000)
    assert not s.overdue


def test_a_held_session_in_the_personal_queue_never_goes_overdue(site: Site) -> None:
    e = site.engine
    e.site.personal_overdue_after = 60
    s = site.active("alice")
    e.hold("alice", s.id)
    assert s.queue == QueueRef.personal("alice") and s.held and s.rule_deadline is None
    site.tick(1000)
    assert not s.overdue


def test_the_personal_rule_survives_a_restore(site: Site) -> None:
    e = site.engine
    e.site.personal_overdue_after = 90
    s = e.start_with_rep("alice", intake())
    site.tick(30)
    fresh = build_site()
    fresh.engine.site.personal_overdue_after = 90
    fresh.clock.advance(30)
    fresh.engine.restore_state(e.export_state())
    assert fresh.engine.next_deadline() == T0 + 90
    fresh.clock.advance(60)
    assert fresh.engine.advance() == 1 and fresh.engine.session(s.id).overdue
