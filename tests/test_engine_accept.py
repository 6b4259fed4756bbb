"""Accepting: one winner, only from one's own queues, capacity, Get Next, status."""

from __future__ import annotations

import pytest
from engine_helpers import (
    Site,
    assert_refused,
    build_site,
    intake,
    site,  # noqa: F401  (pytest fixture)
)

from repconsole.core.commands import execute
from repconsole.core.errors import Reason
from repconsole.core.model import QueueRef, RepStatus, SessionState, StepKind
from repconsole.protocol import EventKind, GoneReason, RepResult, SessionGoneData

# ------------------------------------------------------------------- accept


def test_accept_makes_the_rep_owner_and_opens_the_session(site: Site) -> None:
    s = site.waiting_in_net()
    site.tick(12)
    site.engine.accept("alice", s.id)
    assert (s.state, s.owner, s.queue, s.held) == (SessionState.ACTIVE, "alice", None, False)
    assert site.engine.queue_count(QueueRef.team("net")) == 0
    assert site.engine.involved("alice") == {s.id}
    assert s.timeline[-1].kind is StepKind.ACCEPTED and s.timeline[-1].by == "alice"
    assert s.chat[-1].author is None and "Alice Ng accepted" in s.chat[-1].text


def test_exactly_one_rep_wins_and_the_loser_learns_who(site: Site) -> None:
    s = site.waiting_in_net()
    bob = site.console("bob")
    assert "S1" in bob.rows("team:net")
    site.engine.accept("alice", s.id)
    err = assert_refused(site.engine, Reason.ALREADY_TAKEN, lambda: site.engine.accept("bob", s.id))
    assert err.data["by"] == "alice" and "Alice Ng" in err.detail
    assert s.owner == "alice"
    # Bob's queue dropped the row and said why, without saying where it went.
    changes = bob.sync()
    assert changes.gone[s.id] == SessionGoneData(s.id, GoneReason.TAKEN, by="alice")
    assert s.id not in bob.state.rows["team:net"] and s.id not in bob.state.sessions


def test_many_reps_racing_for_one_session(site: Site) -> None:
    s = site.engine.start_with_issue("invoice", intake())
    winners, losers = [], []
    for rep in ["erin", "carol"]:
        try:
            site.engine.accept(rep, s.id)
            winners.append(rep)
        except Exception as exc:
            losers.append(exc)
    assert winners == ["erin"]
    assert [(x.reason, x.data["by"]) for x in losers] == [(Reason.ALREADY_TAKEN, "erin")]


def test_accepting_your_own_session_again_is_refused(site: Site) -> None:
    s = site.active("alice")
    assert_refused(site.engine, Reason.ALREADY_IN_SESSION, lambda: site.engine.accept("alice", s.id))


def test_only_members_of_the_queue_may_accept(site: Site) -> None:
    net = site.waiting_in_net()
    personal = site.engine.start_with_rep("bob", intake())
    assert_refused(site.engine, Reason.NOT_MEMBER, lambda: site.engine.accept("carol", net.id))
    assert_refused(site.engine, Reason.NOT_MEMBER, lambda: site.engine.accept("alice", personal.id))
    assert site.engine.accept("bob", personal.id).owner == "bob"


def test_a_stranger_is_not_told_who_took_a_session(site: Site) -> None:
    # Carol (Billing) never saw this Networking session: "not yours", not "taken by Alice".
    s = site.active("alice")
    err = assert_refused(site.engine, Reason.NOT_MEMBER, lambda: site.engine.accept("carol", s.id))
    assert "by" not in err.data


def test_accepting_is_refused_at_the_reps_maximum() -> None:
    site = build_site(max_sessions={"alice": 2})
    first, second = site.active("alice"), site.active("alice")
    third = site.waiting_in_net()
    err = assert_refused(site.engine, Reason.AT_CAPACITY, lambda: site.engine.accept("alice", third.id))
    assert err.data == {"max_sessions": 2}
    assert_refused(site.engine, Reason.AT_CAPACITY, lambda: site.engine.get_next("alice"))
    site.engine.end("alice", first.id)
    assert site.engine.accept("alice", third.id).owner == "alice"
    assert site.engine.load("alice") == 2 and second.owner == "alice"


def test_accepting_an_invitation_respects_the_maximum() -> None:
    site = build_site(max_sessions={"bob": 1})
    site.active("bob")
    s = site.active("alice")
    inv = site.engine.share("alice", s.id, QueueRef.personal("bob"))
    assert_refused(site.engine, Reason.AT_CAPACITY, lambda: site.engine.accept_invitation("bob", inv.id))


def test_a_session_a_rep_stays_on_counts_against_their_maximum() -> None:
    # Alice transfers and stays on as a participant.  Nothing she does can
    # stop Bob from accepting it, which makes it active for her again: so it
    # must keep its place in her count, or Bob's accept would push her over.
    site = build_site(max_sessions={"alice": 1})
    s = site.active("alice")
    site.engine.transfer("alice", s.id, QueueRef.team("net"), stay=True)
    other = site.engine.start_with_issue("vpn", intake("Zed"))
    assert_refused(site.engine, Reason.AT_CAPACITY, lambda: site.engine.accept("alice", other.id))
    site.engine.accept("bob", s.id)
    assert site.engine.load("alice") <= 1


def test_a_held_session_counts_against_a_participants_maximum() -> None:
    site = build_site(max_sessions={"bob": 1})
    s = site.active("alice")
    site.engine.accept_invitation("bob", site.engine.share("alice", s.id, QueueRef.personal("bob")).id)
    site.engine.hold("alice", s.id)
    other = site.waiting_in_net("Zed")
    assert_refused(site.engine, Reason.AT_CAPACITY, lambda: site.engine.accept("bob", other.id))
    site.engine.accept("alice", s.id)  # resume: Bob is in an active session again
    assert site.engine.load("bob") == 1


def test_taking_back_or_resuming_your_own_session_needs_no_free_slot() -> None:
    site = build_site(max_sessions={"alice": 1})
    s = site.active("alice")
    site.engine.hold("alice", s.id)
    assert site.engine.accept("alice", s.id).state is SessionState.ACTIVE
    site.engine.transfer("alice", s.id, QueueRef.team("net"), stay=True)
    assert site.engine.accept("alice", s.id).owner == "alice"
    assert site.engine.load("alice") == 1 and not s.participants


# ----------------------------------------------------------------- get next


def test_get_next_takes_the_longest_waiting_across_the_reps_teams(site: Site) -> None:
    e = site.engine
    order = []
    for issue, name in [("invoice", "oldest, billing"), ("vpn", "second, net"), ("invoice", "third, billing")]:
        order.append(e.start_with_issue(issue, intake(name)).id)
        site.tick(10)
    newest_net = e.start_with_issue("vpn", intake("newest, net")).id
    # Older than all of those would be a personal-queue session, but Get Next ignores personal queues.
    site.clock.now -= 1000
    personal_oldest = e.start_with_rep("erin", intake("personal")).id
    site.clock.now += 1000
    taken = [e.get_next("erin").id for _ in range(4)]
    assert taken == [*order, newest_net]
    assert e.session(personal_oldest).state is SessionState.WAITING
    assert_refused(e, Reason.NOTHING_WAITING, lambda: e.get_next("erin"))


def test_get_next_orders_by_arrival_not_by_time_in_the_current_queue(site: Site) -> None:
    e = site.engine
    old = e.start_with_issue("invoice", intake("old"))
    site.tick(30)
    young = e.start_with_issue("vpn", intake("young"))
    site.tick(30)
    # The old one moves to Networking after the young one arrived there.
    e.accept("carol", old.id)
    e.transfer("carol", old.id, QueueRef.team("net"))
    assert e.get_next("alice").id == old.id
    assert e.get_next("bob").id == young.id


def test_get_next_skips_sessions_that_left_and_came_back(site: Site) -> None:
    e = site.engine
    a, b, c = (e.start_with_issue("vpn", intake(n)) for n in "abc")
    e.accept("alice", a.id)
    e.transfer("alice", a.id, QueueRef.team("bill"))  # a leaves Networking
    e.accept("carol", a.id)
    e.transfer("carol", a.id, QueueRef.team("net"))  # and comes back
    e.customer_leave(b.id)
    assert [e.get_next("bob").id, e.get_next("bob").id] == [a.id, c.id]
    assert_refused(e, Reason.NOTHING_WAITING, lambda: e.get_next("bob"))


def test_get_next_ignores_held_sessions(site: Site) -> None:
    e = site.engine
    held = site.active("erin")
    e.hold("erin", held.id)  # the oldest waiting session of all, but parked
    site.tick(5)
    fresh = e.start_with_issue("vpn", intake("fresh"))
    assert e.get_next("erin").id == fresh.id
    assert_refused(e, Reason.NOTHING_WAITING, lambda: e.get_next("erin"))
    assert held.held and held.state is SessionState.WAITING


def test_get_next_for_a_rep_without_teams(site: Site) -> None:
    site.engine.add_rep("solo", "Solo")
    site.engine.start_with_rep("solo", intake())
    assert_refused(site.engine, Reason.NOTHING_WAITING, lambda: site.engine.get_next("solo"))


def test_two_reps_pressing_get_next_get_different_sessions(site: Site) -> None:
    e = site.engine
    a = e.start_with_issue("vpn", intake("a"))
    site.tick(1)
    b = e.start_with_issue("vpn", intake("b"))
    assert (e.get_next("bob").id, e.get_next("alice").id) == (a.id, b.id)


# ---------------------------------------------------------------- rep status


@pytest.mark.parametrize("status", list(RepStatus))
def test_status_is_announced_to_every_rep(site: Site, status: RepStatus) -> None:
    carol = site.console("carol")
    site.engine.set_status("alice", RepStatus.AWAY if status is not RepStatus.AWAY else RepStatus.BUSY)
    result = execute(site.engine, "alice", "set_status", {"status": status.value})
    assert isinstance(result, RepResult) and result.rep.status is status
    assert site.engine.reps["alice"].status is status
    carol.sync()
    assert carol.state.reps["alice"].status is status
    last = site.events[-1]
    assert last.kind is EventKind.REP and last.audience == frozenset(site.engine.reps)


def test_status_must_be_one_of_the_known_ones(site: Site) -> None:
    assert_refused(site.engine, Reason.INVALID, lambda: execute(site.engine, "alice", "set_status", {"status": "sleeping"}))
    assert_refused(site.engine, Reason.INVALID, lambda: site.engine.set_status("alice", "sleeping"))  # type: ignore[arg-type]


def test_default_maximum_comes_from_the_site(site: Site) -> None:
    assert site.engine.reps["alice"].max_sessions == site.engine.site.max_sessions_default == 5
    for _ in range(5):
        site.active("alice")
    sixth = site.waiting_in_net()
    assert_refused(site.engine, Reason.AT_CAPACITY, lambda: site.engine.accept("alice", sixth.id))


def test_queue_counts_follow_every_move(site: Site) -> None:
    e = site.engine
    net, bill, mine = QueueRef.team("net"), QueueRef.team("bill"), QueueRef.personal("alice")

    def counts() -> tuple[int, int, int, int]:
        return e.queue_count(net), e.queue_count(bill), e.queue_count(mine), e.waiting_total()

    a, b = site.waiting_in_net("a"), site.waiting_in_net("b")
    e.start_with_rep("alice", intake("c"))
    assert counts() == (2, 0, 1, 3)
    e.accept("alice", a.id)
    e.transfer("alice", a.id, bill)
    assert counts() == (1, 1, 1, 3)
    e.accept("carol", a.id)
    e.hold("carol", a.id)  # waits in Carol's queue, held
    assert counts() == (1, 0, 1, 3)
    e.customer_leave(b.id)
    assert counts() == (0, 0, 1, 2)
    assert [s.id for s in e.waiting_in(QueueRef.personal("carol"))] == [a.id]
