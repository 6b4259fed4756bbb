"""Auto-assignment under random interleavings (issue 14), with its invariants checked after every step.

Hypothesis drives arrivals, offers answered (accepted, declined) or left to
expire, pulls by id and Get Next racing the offers, ends, transfers,
capacity, status, connection and pause changes, and time.  What the engine
promised is checked against what it *told* the reps (the ``offer`` and
``offer_ended`` events), not against its own bookkeeping:

* never two open offers for one session;
* never an offer to a rep at capacity: sessions plus open offers stay
  within the rep's maximum after every command;
* an offer goes only to a connected, available, unpaused member of the
  session's team, for a session waiting there;
* a rep who declined or missed a session is never offered it again (until
  it is transferred);
* accepting is exactly once: a queue entry of a session is accepted at
  most once, whoever reaches for it and by whichever command;
* routing is work-conserving: after every command, no waiting session of a
  routed team is left without an offer while a member could take it.
"""

from __future__ import annotations

import os
import random

from engine_helpers import intake
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueKind, QueueRef, RepStatus, RoutingMode, SessionState, SiteConfig, StepKind
from repconsole.protocol import OfferData, OfferEndedData, OfferOutcome

REPS = {"alice": ["net"], "bob": ["net"], "carol": ["bill"], "erin": ["net", "bill"], "finn": ["bill"]}
ISSUES = ["vpn", "invoice", "refund"]
picks = st.integers(min_value=0, max_value=10_000)
reps = st.sampled_from(sorted(REPS))


class OfferMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.open: dict[str, str] = {}  # session -> rep, from the events
        self.refused: set[tuple[str, str]] = set()  # (session, rep) declined or missed, since its last transfer
        self.accepted: set[tuple[str, int]] = set()  # (session, the timeline step it entered its queue by) accepted
        self.created: list[str] = []

    @initialize(
        caps=st.fixed_dictionaries({r: st.one_of(st.none(), st.integers(min_value=0, max_value=3)) for r in REPS}),
        net=st.sampled_from([RoutingMode.LEAST_BUSY, RoutingMode.SKILLS]),
        skills=st.fixed_dictionaries({r: st.sampled_from([(), ("invoices",), ("vpn", "invoices")]) for r in REPS}),
    )
    def build(self, caps: dict[str, int | None], net: RoutingMode, skills: dict[str, tuple[str, ...]]) -> None:
        self.clock = ManualClock(1_000_000.0)
        e = self.e = QueueEngine(self.clock, rng=random.Random(0), site=SiteConfig(max_sessions_default=2))
        e.add_team("net", "Networking", routing=net, skills={"Network": "vpn"})
        e.add_team("bill", "Billing", routing=RoutingMode.SKILLS, skills={"Billing": "invoices"}, max_sessions=1)
        for rep, teams in REPS.items():
            e.add_rep(rep, rep.title(), teams, max_sessions=caps[rep], skills=skills[rep])
        e.add_issue("vpn", "VPN", "Network", "net")
        e.add_issue("invoice", "Invoice", "Billing", "bill")
        e.add_issue("refund", "Refund", "Refunds", "bill")
        e.subscribe(self._heard)

    # ------------------------------------------------------------ the events

    def _heard(self, event: Event) -> None:
        data = event.data
        if isinstance(data, OfferData):
            o = data.offer
            assert event.audience == {o.rep}, "an offer is told to its rep only"
            assert o.session not in self.open, f"two open offers for {o.session}"
            assert (o.session, o.rep) not in self.refused, f"{o.session} offered again to {o.rep}, who refused it"
            rep = self.e.reps[o.rep]
            assert rep.connected and rep.status is RepStatus.AVAILABLE and rep.paused_until is None
            s = self.e.session(o.session)
            assert s.state is SessionState.WAITING and s.queue is not None and s.queue.serialize() == o.queue
            assert s.queue.kind is QueueKind.TEAM and o.rep in self.e.teams[s.queue.id].members
            self.open[o.session] = o.rep
        elif isinstance(data, OfferEndedData):
            assert self.open.get(data.session) == data.rep, "an offer that was not open ended"
            del self.open[data.session]
            if data.outcome in (OfferOutcome.DECLINED, OfferOutcome.EXPIRED):
                self.refused.add((data.session, data.rep))
            if data.outcome is OfferOutcome.ACCEPTED:
                assert self.e.session(data.session).owner == data.rep

    # ------------------------------------------------------------- helpers

    def _waiting(self, pick: int) -> str | None:
        waiting = [sid for sid in self.created if self.e.session(sid).state is SessionState.WAITING]
        return waiting[pick % len(waiting)] if waiting else None

    def _accepting(self, rep: str, how: str, sid: str | None) -> None:
        """Accept by some command (an offer, a pull by id, Get Next); the queue entry it took is taken once only."""
        # A queue entry: the session and the timeline step that put it in its queue.
        entered = {
            s.id: max(i for i, step in enumerate(s.timeline) if step.queue is not None and step.kind is not StepKind.SHARED)
            for s in self.e.sessions()
            if s.state is SessionState.WAITING
        }
        try:
            if how == "offer":
                assert sid is not None
                s = self.e.accept_offer(rep, sid)
            elif how == "next":
                s = self.e.get_next(rep)
            else:
                assert sid is not None
                s = self.e.accept(rep, sid)
        except CommandError:
            return
        assert s.id in entered, f"{s.id} accepted while not waiting"
        entry = (s.id, entered[s.id])
        assert entry not in self.accepted, f"{entry} accepted twice"
        self.accepted.add(entry)
        assert s.owner == rep and s.id not in self.open

    # --------------------------------------------------------------- rules

    @rule(issue=st.sampled_from(ISSUES), n=st.integers(min_value=1, max_value=3))
    def arrive(self, issue: str, n: int) -> None:
        for _ in range(n):
            self.created.append(self.e.start_with_issue(issue, intake(f"C{len(self.created)}")).id)

    @rule(pick=picks)
    def accept_an_offer(self, pick: int) -> None:
        if self.open:
            sid = sorted(self.open)[pick % len(self.open)]
            self._accepting(self.open[sid], "offer", sid)

    @rule(pick=picks)
    def decline_an_offer(self, pick: int) -> None:
        if self.open:
            sid = sorted(self.open)[pick % len(self.open)]
            self.e.decline_offer(self.open[sid], sid)

    @rule(rep=reps, pick=picks, offered_first=st.booleans())
    def race(self, rep: str, pick: int, offered_first: bool) -> None:
        """An offered session pulled by ``rep`` and accepted by its offered rep, in either order: one wins."""
        if not self.open:
            return
        sid = sorted(self.open)[pick % len(self.open)]
        offered = self.open[sid]
        before = len(self.accepted)
        order = [(offered, "offer"), (rep, "pull")]
        for who, how in order if offered_first else reversed(order):
            self._accepting(who, how, sid)
        assert len(self.accepted) - before <= 1
        if self.e.session(sid).owner is not None:
            assert len(self.accepted) - before == 1

    @rule(rep=reps, pick=picks)
    def pull(self, rep: str, pick: int) -> None:
        sid = self._waiting(pick)
        if sid is not None:
            self._accepting(rep, "pull", sid)

    @rule(rep=reps)
    def get_next(self, rep: str) -> None:
        self._accepting(rep, "next", None)

    @rule(pick=picks)
    def end(self, pick: int) -> None:
        active = [sid for sid in self.created if self.e.session(sid).state is SessionState.ACTIVE]
        if active:
            s = self.e.session(active[pick % len(active)])
            assert s.owner is not None
            self.e.end(s.owner, s.id)

    @rule(pick=picks)
    def customer_leaves(self, pick: int) -> None:
        sid = self._waiting(pick)
        if sid is not None:
            self.e.customer_leave(sid)

    @rule(pick=picks, team=st.sampled_from(["net", "bill"]))
    def transfer(self, pick: int, team: str) -> None:
        active = [sid for sid in self.created if self.e.session(sid).state is SessionState.ACTIVE]
        if active:
            s = self.e.session(active[pick % len(active)])
            assert s.owner is not None
            self.refused = {(sid, r) for sid, r in self.refused if sid != s.id}  # a fresh start
            self.e.transfer(s.owner, s.id, QueueRef.team(team))

    @rule(rep=reps, cap=st.one_of(st.none(), st.integers(min_value=0, max_value=3)))
    def capacity(self, rep: str, cap: int | None) -> None:
        self.e.set_capacity(rep, cap)

    @rule(team=st.sampled_from(["net", "bill"]), cap=st.one_of(st.none(), st.integers(min_value=0, max_value=3)))
    def team_capacity(self, team: str, cap: int | None) -> None:
        self.e.set_team_capacity(team, cap)

    @rule(rep=reps, status=st.sampled_from(list(RepStatus)))
    def status(self, rep: str, status: RepStatus) -> None:
        self.e.set_status(rep, status)

    @rule(rep=reps, connected=st.booleans())
    def connection(self, rep: str, connected: bool) -> None:
        if connected:
            self.e.rep_connected(rep)
        else:
            self.e.rep_disconnected(rep)

    @rule(rep=reps, minutes=st.sampled_from([0, 0.25, 1, 5]))
    def pause(self, rep: str, minutes: float) -> None:
        self.e.pause_offers(rep, minutes)

    @rule(seconds=st.sampled_from([1.0, 10.0, 19.9, 20.0, 21.0, 60.0, 301.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.e.advance()

    @rule(team=st.sampled_from(["net", "bill"]), mode=st.sampled_from(list(RoutingMode)))
    def routing(self, team: str, mode: RoutingMode) -> None:
        self.e.set_routing(team, mode)

    # ---------------------------------------------------------- invariants

    @invariant()
    def the_engine_agrees_with_what_it_said(self) -> None:
        if not hasattr(self, "e"):
            return
        assert {o.session: o.rep for o in self.e.open_offers()} == self.open

    @invariant()
    def nobody_is_over_capacity_counting_offers(self) -> None:
        if not hasattr(self, "e"):
            return
        held: dict[str, int] = {}
        for rep in self.open.values():
            held[rep] = held.get(rep, 0) + 1
        for rep_id, rep in self.e.reps.items():
            if held.get(rep_id):
                assert self.e.load(rep_id) + held[rep_id] <= rep.max_sessions, f"{rep_id} over capacity with offers"

    @invariant()
    def routing_leaves_no_session_a_member_could_take(self) -> None:
        if not hasattr(self, "e"):
            return
        e = self.e
        for team in e.teams.values():
            if team.routing is RoutingMode.NONE:
                continue
            for s in e.waiting_in(QueueRef.team(team.id)):
                if s.id in self.open:
                    continue
                need = team.skills.get(s.category) if team.routing is RoutingMode.SKILLS else None
                for rep_id in team.members:
                    rep = e.reps[rep_id]
                    offers = sum(1 for r in self.open.values() if r == rep_id)
                    could = (
                        rep.connected and rep.status is RepStatus.AVAILABLE and rep.paused_until is None
                        and e.load(rep_id) + offers < rep.max_sessions
                        and (s.id, rep_id) not in self.refused and (need is None or need in rep.skills)
                    )  # fmt: skip
                    assert not could, f"{s.id} waits in {team.id} unoffered while {rep_id} could take it"

    @invariant()
    def nothing_due_is_left_unfired(self) -> None:
        if not hasattr(self, "e"):
            return
        deadline = self.e.next_deadline()
        assert deadline is None or deadline > self.clock.now or self.e.advance() == 0


OfferMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("OFFER_EXAMPLES", "150")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOffers = OfferMachine.TestCase


def test_no_offer_rule_refuses_an_offer_that_is_gone() -> None:
    """A companion to the machine: an accept_offer after a pull is NO_OFFER, never a second owner."""
    clock = ManualClock()
    e = QueueEngine(clock, rng=random.Random(0))
    e.add_team("net", "Net", routing=RoutingMode.LEAST_BUSY)
    e.add_rep("a", "A", ["net"])
    e.add_rep("b", "B", ["net"])
    e.add_issue("vpn", "VPN", "Network", "net")
    sid = e.start_with_issue("vpn", intake()).id
    offered = e.open_offers()[0].rep
    other = "b" if offered == "a" else "a"
    e.accept(other, sid)
    try:
        e.accept_offer(offered, sid)
    except CommandError as err:
        assert err.reason is Reason.NO_OFFER
    else:
        raise AssertionError("accept_offer after a pull succeeded")
    assert e.session(sid).owner == other
