"""Auto-assignment in the engine (issue 14): who is offered what, and what ends an offer.

A small routed site on a ManualClock: Networking routes least busy,
Billing by skills; every event is recorded so that a test reads what each
rep was told.  The invariants under random interleavings are in
tests/test_engine_offer_properties.py.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from engine_helpers import assert_refused, intake

from repconsole.core.clock import ManualClock
from repconsole.core.commands import execute
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueRef, RepStatus, RoutingMode, SiteConfig
from repconsole.protocol import OfferData, OfferEndedData, OfferOutcome, RepData

T0 = 1_000_000.0


class Routed:
    """net: least busy (alice, bob, erin); bill: skills (carol, erin), category Billing needs "invoices"."""

    def __init__(self, *, net: RoutingMode = RoutingMode.LEAST_BUSY, caps: dict[str, int] | None = None) -> None:
        self.clock = ManualClock(T0)
        self.e = e = QueueEngine(self.clock, rng=random.Random(3), site=SiteConfig(max_sessions_default=3))
        e.add_team("net", "Networking", routing=net, max_sessions=2)
        e.add_team("bill", "Billing", routing=RoutingMode.SKILLS, skills={"Billing": "invoices"})
        e.add_team("hw", "Hardware")
        caps = caps or {}
        e.add_rep("alice", "Alice", ["net"], max_sessions=caps.get("alice"))
        e.add_rep("bob", "Bob", ["net"], max_sessions=caps.get("bob"))
        e.add_rep("carol", "Carol", ["bill"], max_sessions=caps.get("carol"))
        e.add_rep("erin", "Erin", ["net", "bill"], max_sessions=caps.get("erin"), skills=["invoices"])
        e.add_rep("dave", "Dave", ["hw"])
        e.add_issue("vpn", "VPN", "Network", "net")
        e.add_issue("invoice", "Invoice", "Billing", "bill")
        e.add_issue("refund", "Refund", "Refunds", "bill")  # no skill mapped: any member
        e.add_issue("printer", "Printer", "Hardware", "hw")
        self.events: list[Event] = []
        e.subscribe(self.events.append)

    def arrive(self, issue: str = "vpn", name: str = "Ann") -> str:
        return self.e.start_with_issue(issue, intake(name)).id

    def offered(self, sid: str) -> str | None:
        """Who the session is offered to now."""
        return next((o.rep for o in self.e.open_offers() if o.session == sid), None)

    def told(self, rep: str) -> list[object]:
        """The offer events ``rep`` received, in order."""
        return [ev.data for ev in self.events if isinstance(ev.data, OfferData | OfferEndedData) and rep in ev.audience]

    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.e.advance()


def test_no_routing_offers_nothing_and_pulling_is_unchanged() -> None:
    r = Routed(net=RoutingMode.NONE)
    sid = r.arrive()
    assert r.e.open_offers() == [] and r.offered(sid) is None
    assert r.e.get_next("alice").id == sid
    assert not [ev for ev in r.events if isinstance(ev.data, OfferData)]


def test_a_team_without_routing_leaves_routing_off_the_wire() -> None:
    r = Routed(net=RoutingMode.NONE)
    assert b"routing" not in msgspec.json.encode(r.e.teams["net"].view())
    assert b"routing" not in msgspec.json.encode(r.e.reps["alice"].view())
    assert b"routing" not in msgspec.json.encode(r.e.reps["dave"].view())
    assert b'"routing":"skills"' in msgspec.json.encode(r.e.teams["bill"].view())


def test_least_busy_gets_the_offer_then_the_fewest_sessions_today_then_the_longest_idle() -> None:
    r = Routed()
    busy = r.arrive(name="first")
    assert r.offered(busy) == "alice"  # all equal: by id
    r.e.accept_offer("alice", busy)
    second = r.arrive(name="second")
    assert r.offered(second) == "bob"  # alice has one session, bob and erin none; bob by id
    third = r.arrive(name="third")
    assert r.offered(third) == "erin"  # bob holds an offer now: erin is less busy
    fourth = r.arrive(name="fourth")
    # alice: 1 session, bob: 1 offer, erin: 1 offer, all equally busy; alice took a session today, bob and
    # erin none: bob (his offer and erin's went out at the same instant: by id)
    assert r.offered(fourth) == "bob"


def test_skills_route_by_category_and_unmapped_categories_go_to_anyone() -> None:
    r = Routed()
    inv = r.arrive("invoice")
    assert r.offered(inv) == "erin"  # carol lacks "invoices"
    r.e.decline_offer("erin", inv)
    assert r.offered(inv) is None  # nobody else has the skill: it waits, to be pulled
    assert r.e.accept("carol", inv).owner == "carol"  # pulling ignores skills
    refund = r.arrive("refund")
    assert r.offered(refund) == "erin"  # no skill needed; carol has a session, erin none
    r.e.set_skills("carol", ["invoices"])
    other = r.arrive("invoice", name="Bo")
    assert r.offered(other) == "erin"  # one each (a session, an offer), carol took one today, erin none
    r.clock.advance(1)
    third = r.arrive("refund", name="Cy")
    assert r.offered(third) == "carol"  # carol 1 (a session), erin 2 (offers)


def test_equally_busy_reps_with_as_many_sessions_today_go_by_the_longest_idle_and_a_new_day_starts_at_zero() -> None:
    r = Routed()
    r.e.set_status("erin", RepStatus.AWAY)
    first = r.arrive(name="first")
    r.e.accept_offer("alice", first)
    r.clock.advance(10)
    second = r.arrive(name="second")
    r.e.accept_offer("bob", second)  # one each today, bob's later
    r.e.end("alice", first)
    r.e.end("bob", second)
    third = r.arrive(name="third")
    assert r.offered(third) == "alice"  # 0 sessions each now, 1 today each: alice got work longest ago
    r.e.accept_offer("alice", third)
    r.e.end("alice", third)
    fourth = r.arrive(name="fourth")
    assert r.offered(fourth) == "bob"  # alice took 2 today, bob 1
    r.e.decline_offer("bob", fourth)  # (alice gets it)
    r.e.accept_offer("alice", fourth)
    r.e.end("alice", fourth)
    r.clock.advance(86400)  # the next day: the counts start again (3 and 1 would have made it bob's)
    assert r.offered(r.arrive(name="fifth")) == "alice"  # both last got work at the same instant: by id


def test_capacity_team_default_rep_override_and_offers_count() -> None:
    r = Routed(caps={"bob": 1})
    assert r.e.reps["alice"].max_sessions == 2  # the team's default (the site's is 3)
    assert r.e.reps["bob"].max_sessions == 1  # his own
    assert r.e.reps["carol"].max_sessions == 3  # the site's
    r.e.set_status("erin", RepStatus.BUSY)
    sids = [r.arrive(name=f"c{i}") for i in range(5)]
    offered = [r.offered(s) for s in sids]
    assert offered.count("alice") == 2 and offered.count("bob") == 1 and offered.count(None) == 2
    bob_offer = sids[offered.index("bob")]
    unoffered = sids[offered.index(None)]
    r.e.set_capacity("bob", 2)  # room for one more...
    assert r.offered(unoffered) == "bob"  # ...and routing filled it in the same command
    r.e.set_capacity("bob", 1)  # no more room: his newest offer is withdrawn
    assert OfferEndedData(unoffered, "bob", OfferOutcome.WITHDRAWN) in r.told("bob")
    assert [o.session for o in r.e.offers_to("bob")] == [bob_offer]
    r.e.accept("bob", bob_offer)  # taking the offered session by a pull counts as accepting it
    assert r.told("bob")[-1] == OfferEndedData(bob_offer, "bob", OfferOutcome.ACCEPTED)
    # A pull that fills a rep up withdraws their open offers.
    r.e.set_status("erin", RepStatus.AVAILABLE)
    erins = [o.session for o in r.e.offers_to("erin")]
    assert len(erins) == 2
    other = r.arrive(name="extra")
    assert r.offered(other) is None  # nobody has room
    r.e.accept("erin", other)
    assert len(r.e.offers_to("erin")) == 1
    assert r.told("erin")[-1] == OfferEndedData(erins[-1], "erin", OfferOutcome.WITHDRAWN)


def test_lowering_a_teams_capacity_withdraws_what_no_longer_fits() -> None:
    r = Routed()
    for i in range(6):
        r.arrive(name=f"c{i}")
    assert len(r.e.offers_to("alice")) == 2
    r.e.set_team_capacity("net", 1)
    assert len(r.e.offers_to("alice")) == 1 and len(r.e.offers_to("bob")) == 1
    assert r.e.reps["alice"].max_sessions == 1
    assert isinstance(r.events[-1].data, RepData | OfferEndedData | OfferData)


def test_decline_goes_to_the_next_rep_and_never_back() -> None:
    r = Routed()
    sid = r.arrive()
    seen = []
    while (rep := r.offered(sid)) is not None:
        seen.append(rep)
        r.e.decline_offer(rep, sid)
    assert seen == ["alice", "bob", "erin"]
    r.arrive(name="later")  # routing runs again: still nobody is offered the declined one
    assert r.offered(sid) is None
    # A transfer is a fresh start: everyone may be offered it again.
    r.e.accept("alice", sid)
    r.e.transfer("alice", sid, QueueRef.team("net"))
    assert r.offered(sid) in {"bob", "erin"}


def test_an_offer_expires_to_the_next_rep() -> None:
    r = Routed()
    first = r.arrive(name="first")
    assert r.offered(first) == "alice"
    r.tick(19.9)
    assert r.offered(first) == "alice"
    r.tick(0.1)
    assert r.offered(first) == "bob"
    assert r.told("alice")[-1] == OfferEndedData(first, "alice", OfferOutcome.EXPIRED)
    assert r.e.reps["alice"].status is RepStatus.AVAILABLE  # one miss
    r.tick(20)
    assert r.offered(first) == "erin"
    r.tick(20)
    assert r.offered(first) is None  # missed by all three: it waits to be pulled
    assert r.e.session(first).owner is None


def test_two_missed_offers_in_a_row_set_the_rep_away_and_say_why() -> None:
    r = Routed()
    r.e.set_status("bob", RepStatus.BUSY)
    r.e.set_status("erin", RepStatus.BUSY)
    first = r.arrive(name="first")
    r.tick(20)
    assert r.offered(first) is None and r.e.reps["alice"].status is RepStatus.AVAILABLE
    second = r.arrive(name="second")
    assert r.offered(second) == "alice"
    r.tick(20)
    ended = r.told("alice")[-1]
    assert isinstance(ended, OfferEndedData) and ended.outcome is OfferOutcome.EXPIRED and ended.away
    assert isinstance(ended.detail, str) and "away" in ended.detail
    assert r.e.reps["alice"].status is RepStatus.AWAY
    rep_events = [ev.data.rep for ev in r.events if isinstance(ev.data, RepData) and ev.data.rep.id == "alice"]
    assert rep_events[-1].status is RepStatus.AWAY
    third = r.arrive(name="third")
    assert r.offered(third) is None  # away: no offers
    # Available again: a new count.  One miss does not set away.
    r.e.set_status("alice", RepStatus.AVAILABLE)
    assert r.offered(third) == "alice"
    r.tick(20)
    assert r.e.reps["alice"].status is RepStatus.AVAILABLE


def test_a_decline_between_two_misses_breaks_the_row() -> None:
    r = Routed()
    r.e.set_status("bob", RepStatus.BUSY)
    r.e.set_status("erin", RepStatus.BUSY)
    a = r.arrive(name="a")
    r.tick(20)  # miss 1
    b = r.arrive(name="b")
    assert r.offered(a) is None and r.offered(b) == "alice"
    r.e.decline_offer("alice", b)
    c = r.arrive(name="c")
    r.tick(20)  # a miss again, but not two in a row
    assert r.offered(c) is None
    assert r.e.reps["alice"].status is RepStatus.AVAILABLE


def test_pause_offers_for_n_minutes_comes_back_by_itself() -> None:
    r = Routed()
    sid = r.arrive()
    assert r.offered(sid) == "alice"
    rep = execute(r.e, "alice", "pause_offers", {"minutes": 5})
    assert r.offered(sid) == "bob"  # her offer was withdrawn and went on
    assert OfferEndedData(sid, "alice", OfferOutcome.WITHDRAWN) in r.told("alice")
    assert rep.rep.routing.paused_until == T0 + 300  # type: ignore[union-attr]
    r.e.set_status("bob", RepStatus.BUSY)
    r.e.set_status("erin", RepStatus.BUSY)
    other = r.arrive(name="other")
    assert r.offered(other) is None
    r.tick(299)
    assert r.offered(other) is None
    r.tick(1)
    assert r.offered(other) == "alice"
    assert r.e.reps["alice"].paused_until is None
    announced = [ev.data.rep for ev in r.events if isinstance(ev.data, RepData) and ev.data.rep.id == "alice"]
    assert announced[-1].routing.paused_until is None  # type: ignore[union-attr]
    # 0 minutes: back at once; a stale resume timer does nothing.
    r.e.pause_offers("alice", 10)
    r.e.pause_offers("alice", 0)
    assert r.e.reps["alice"].paused_until is None
    assert_refused(r.e, Reason.INVALID, lambda: execute(r.e, "alice", "pause_offers", {"minutes": -1}))


def test_an_offer_goes_out_in_the_command_that_frees_room() -> None:
    r = Routed(caps={"alice": 1, "bob": 1, "erin": 1})
    sids = [r.arrive(name=f"c{i}") for i in range(4)]
    for sid in sids[:3]:
        rep = r.offered(sid)
        assert rep is not None
        r.e.accept_offer(rep, sid)
    assert r.offered(sids[3]) is None  # everyone is full
    seq = r.e.seq
    r.e.end("bob", sids[1])
    assert r.offered(sids[3]) == "bob"
    assert any(isinstance(ev.data, OfferData) and ev.seq > seq for ev in r.events)


def test_a_rep_coming_back_or_becoming_available_gets_offers() -> None:
    r = Routed()
    for rep in ("alice", "bob", "erin"):
        r.e.rep_disconnected(rep)
    sid = r.arrive()
    assert r.offered(sid) is None
    r.e.rep_connected("bob")
    assert r.offered(sid) == "bob"
    r.e.rep_disconnected("bob")  # gone: the offer is withdrawn, not missed
    assert r.offered(sid) is None
    assert r.told("bob")[-1] == OfferEndedData(sid, "bob", OfferOutcome.WITHDRAWN)
    r.e.rep_connected("bob")
    assert r.offered(sid) == "bob"  # withdrawn is not refused


def test_pull_and_offer_race_exactly_once() -> None:
    r = Routed()
    sid = r.arrive()
    assert r.offered(sid) == "alice"
    r.e.accept("bob", sid)  # bob pulls first
    assert r.told("alice")[-1] == OfferEndedData(sid, "alice", OfferOutcome.WITHDRAWN)
    with pytest.raises(CommandError) as info:
        r.e.accept_offer("alice", sid)
    assert info.value.reason is Reason.NO_OFFER
    assert r.e.session(sid).owner == "bob"
    # The other order: the offered rep accepts, the puller is told who won.
    other = r.arrive(name="other")
    rep = r.offered(other)
    assert rep is not None
    r.e.accept_offer(rep, other)
    loser = "erin" if rep != "erin" else "alice"
    with pytest.raises(CommandError) as info:
        r.e.accept(loser, other)
    assert info.value.reason is Reason.ALREADY_TAKEN and info.value.data["by"] == rep


def test_offers_never_go_to_a_rep_in_someone_elses_offer_for_the_same_session() -> None:
    r = Routed()
    sid = r.arrive()
    assert [o.session for o in r.e.open_offers()] == [sid]
    r.e.decline_offer("alice", sid)
    assert [(o.session, o.rep) for o in r.e.open_offers()] == [(sid, "bob")]
    assert_refused(r.e, Reason.NO_OFFER, lambda: r.e.decline_offer("alice", sid))
    assert_refused(r.e, Reason.NO_OFFER, lambda: r.e.accept_offer("erin", sid))


def test_turning_routing_off_withdraws_offers_and_tells_the_members() -> None:
    r = Routed()
    sid = r.arrive()
    r.e.set_routing("net", RoutingMode.NONE)
    assert r.e.open_offers() == []
    assert r.told("alice")[-1] == OfferEndedData(sid, "alice", OfferOutcome.WITHDRAWN)
    assert r.e.reps["alice"].routed is False and r.e.reps["alice"].view().routing is msgspec.UNSET
    assert r.e.reps["erin"].routed  # still in a routed team (bill)


def test_a_refusal_outlives_routing_turned_off_and_on_again() -> None:
    # Found by the property test: with no team routing, the refusals used to be cleared.
    r = Routed()
    sid = r.arrive()
    while (rep := r.offered(sid)) is not None:
        r.e.decline_offer(rep, sid)  # alice, bob and erin all say no
    for team in ("net", "bill"):
        r.e.set_routing(team, RoutingMode.NONE)
    r.e.set_routing("net", RoutingMode.LEAST_BUSY)
    assert r.offered(sid) is None
    r.e.set_routing("net", RoutingMode.NONE)
    r.e.accept("alice", sid)  # the customer is served and leaves: their refusals go with them
    r.e.end("alice", sid)
    assert sid not in r.e._router.refused  # memory: nothing is kept for a gone session


def test_the_customer_leaving_or_a_transfer_away_withdraws_the_offer() -> None:
    r = Routed()
    sid = r.arrive()
    r.e.customer_leave(sid)
    assert r.told("alice")[-1] == OfferEndedData(sid, "alice", OfferOutcome.WITHDRAWN)
    assert r.e.open_offers() == []


def test_a_snapshot_carries_the_reps_open_offers_only() -> None:
    r = Routed()
    sid = r.arrive()
    snap = r.e.snapshot("alice")
    assert [(o.session, o.rep, o.deadline) for o in snap.offers] == [(sid, "alice", T0 + 20)]  # type: ignore[union-attr]
    assert r.e.snapshot("bob").offers is msgspec.UNSET
    assert b'"offers"' not in msgspec.json.encode(r.e.snapshot("dave"))
