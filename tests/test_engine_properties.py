"""The engine under random sequences of everything, with invariants after every step.

Hypothesis drives arrivals through every origin, rep commands (through
:func:`commands.execute`, as both backends do), customers chatting and
leaving, connections dropping and coming back, and time passing far enough
to fire waiting-session rules and grace periods.  After every step:

* no session is lost: each one ever created is either ended with a reason,
  or live in exactly one place (waiting in exactly one queue, or active with
  an owner), and the engine's indexes agree with the sessions;
* one owner at most, never also a participant; a waiting session that is not
  held has no owner; a held one waits in its owner's personal queue;
* no rep is over their maximum;
* timers: nothing due is left unfired, every waiting session under a rule
  has it armed (or is already overdue), no accepted session has one;
* every rep's console, fed event by event through its RepFeed, equals a
  console freshly loaded from ``engine.snapshot(rep)``, and shows no session
  of a team the rep is not in unless it was put in front of them.

A refused command must change nothing at all (compared in full).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from engine_helpers import (
    ALL_ORIGINS,
    ORIGIN_QUEUE,
    Console,
    Site,
    assert_mirrors_snapshot,
    build_site,
    fingerprint,
    intake,
    standard_rules,
)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from repconsole.core.commands import execute
from repconsole.core.engine import QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.model import Origin, QueueRef, Session, SessionState

REPS = ["alice", "bob", "carol", "dave", "erin"]
TARGETS = [f"rep:{r}" for r in REPS] + ["team:net", "team:bill", "team:hw", "team:vault"]
# Seconds the clock may jump: around the rule thresholds (60, 90, 120 s)
# and the grace period (60 s), so that deadlines are hit, just missed and passed.
JUMPS = [0.5, 10.0, 29.5, 30.0, 59.0, 60.0, 61.0, 90.0, 125.0, 400.0]

reps = st.sampled_from(REPS)
picks = st.integers(min_value=0, max_value=10_000)


class EngineMachine(RuleBasedStateMachine):
    site: Site
    consoles: dict[str, Console]

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []
        self.checked_seq = -1

    @initialize(
        fallback=st.sampled_from([None, "team:vault", "team:hw"]),
        caps=st.fixed_dictionaries({r: st.integers(min_value=1, max_value=2) for r in REPS}),
        waiting=st.integers(min_value=0, max_value=8),
    )
    def build(self, fallback: str | None, caps: dict[str, int], waiting: int) -> None:
        self.site = build_site(0, fallback_queue=QueueRef.parse(fallback) if fallback else None, max_sessions=caps)
        standard_rules(self.site)
        self.consoles = {rep: self.site.console(rep) for rep in REPS}
        # Start with some customers already waiting, so short runs have something to do.
        for i in range(waiting):
            self._arrive(ALL_ORIGINS[i % len(ALL_ORIGINS)], REPS[i % len(REPS)], i)

    # ------------------------------------------------------------ helpers

    @property
    def e(self) -> QueueEngine:
        return self.site.engine

    def _pick(self, pick: int, pred: Callable[[Session], bool]) -> Session | None:
        """The ``pick``-th (modulo) live session matching ``pred``, in arrival order."""
        pool = sorted((s for s in self.e.sessions() if pred(s)), key=lambda s: int(s.id[1:]))
        return pool[pick % len(pool)] if pool else None

    def _command(self, rep: str, name: str, args: dict[str, Any]) -> None:
        """Run a rep command; a refusal must leave everything as it was."""
        if not self.e.reps[rep].connected:
            return  # a console that lost its connection sends nothing
        before = fingerprint(self.e, self.created)
        try:
            execute(self.e, rep, name, args)
            event(f"{name}: ok")
        except CommandError as exc:
            event(f"{name}: {exc.reason.value}")
            assert fingerprint(self.e, self.created) == before, f"refused {name} changed the engine"

    def _customer(self, call: Callable[[], object]) -> None:
        """Run a customer request; a refusal must emit nothing."""
        seq = self.e.seq
        try:
            s = call()
        except CommandError as exc:
            event(f"customer: {exc.reason.value}")
            assert self.e.seq == seq
            return
        if isinstance(s, Session) and s.id not in self.created:
            self.created.append(s.id)

    # -------------------------------------------------------------- customers

    def _arrive(self, origin: Origin, rep: str, pick: int) -> None:
        e, who = self.e, intake(f"Customer {len(self.created) + 1}")
        match origin:
            case Origin.SESSION_KEY:
                key = e.generate_key(rep, 600)  # a disconnected rep's key still works: it was read out earlier
                self._customer(lambda: e.start_with_key(key.key, who, source="phone"))
            case Origin.REP_PICKED:
                self._customer(lambda: e.start_with_rep(rep, who))
            case Origin.REP_BUTTON:
                self._customer(lambda: e.start_with_button("btn-alice", who))
            case Origin.TEAM_BUTTON:
                self._customer(lambda: e.start_with_button(["btn-net", "btn-promo"][pick % 2], who))
            case Origin.ISSUE_FORM:
                self._customer(lambda: e.start_with_issue(["vpn", "invoice", "printer"][pick % 3], who))
            case Origin.BROWSER_REP | Origin.BROWSER_TEAM:
                link = "link-alice" if origin is Origin.BROWSER_REP else "link-bill"
                self._customer(lambda: e.start_browser(link, who, page_url="https://x.example", page_html="<p/>"))

    # Two arrival rules (to a team, to a rep) so that customers keep coming
    # at a useful rate among the many rep rules.
    @rule(origin=st.sampled_from([o for o in ALL_ORIGINS if not ORIGIN_QUEUE[o].is_personal]), pick=picks)
    def arrive_at_team(self, origin: Origin, pick: int) -> None:
        self._arrive(origin, REPS[pick % len(REPS)], pick)

    @rule(origin=st.sampled_from([o for o in ALL_ORIGINS if ORIGIN_QUEUE[o].is_personal]), rep=reps, pick=picks)
    def arrive_for_rep(self, origin: Origin, rep: str, pick: int) -> None:
        self._arrive(origin, rep, pick)

    @rule(pick=picks, leave=st.booleans())
    def customer(self, pick: int, leave: bool) -> None:
        s = self._pick(pick, lambda s: True)
        if s is None:
            return
        if leave:
            self._customer(lambda: self.e.customer_leave(s.id))
        else:
            self._customer(lambda: self.e.customer_say(s.id, "hello?"))

    # ------------------------------------------------------------------- reps

    @rule(rep=reps, pick=picks, sensible=st.booleans())
    def accept(self, rep: str, pick: int, sensible: bool) -> None:
        """Sensible: a session waiting in one of the rep's queues; otherwise any session at all."""
        mine = {QueueRef.personal(rep)} | {QueueRef.team(t) for t in self.e.reps[rep].teams}
        s = self._pick(pick, (lambda s: s.queue in mine) if sensible else (lambda s: True))
        if s is not None:
            self._command(rep, "accept", {"session": s.id})

    @rule(rep=reps)
    def get_next(self, rep: str) -> None:
        self._command(rep, "get_next", {})

    # ("target" is reserved by @rule, hence "to")
    @rule(pick=picks, to=st.sampled_from(TARGETS), stay=st.booleans(), note=st.sampled_from(["", "needs admin"]))
    def transfer(self, pick: int, to: str, stay: bool, note: str) -> None:
        s = self._pick(pick, lambda s: s.owner is not None)
        if s is not None and s.owner is not None:
            self._command(s.owner, "transfer", {"session": s.id, "target": to, "stay": stay, "note": note})

    @rule(pick=picks, to=st.sampled_from(TARGETS))
    def share(self, pick: int, to: str) -> None:
        s = self._pick(pick, lambda s: s.owner is not None)
        if s is not None and s.owner is not None:
            self._command(s.owner, "share", {"session": s.id, "target": to})

    @rule(pick=picks, rep=reps, sensible=st.booleans())
    def accept_invitation(self, pick: int, rep: str, sensible: bool) -> None:
        s = self._pick(pick, lambda s: bool(s.invitations))
        if s is None:
            return
        inv = list(s.invitations.values())[pick % len(s.invitations)]
        if sensible:
            members = [inv.target.id] if inv.target.is_personal else sorted(self.e.teams[inv.target.id].members)
            rep = members[pick % len(members)] if members else rep
        self._command(rep, "accept_invitation", {"invitation": inv.id})

    # Two everyday flows as single steps, so that sessions with several reps
    # (where fallback, holds and capacity get interesting) are common.
    @rule(pick=picks, rep=reps)
    def consult(self, pick: int, rep: str) -> None:
        """The owner invites a colleague, who joins straight away."""
        s = self._pick(pick, lambda s: s.owner is not None)
        if s is None or s.owner is None:
            return
        self._command(s.owner, "share", {"session": s.id, "target": f"rep:{rep}"})
        for inv in list(s.invitations.values()):
            if inv.target == QueueRef.personal(rep):
                self._command(rep, "accept_invitation", {"invitation": inv.id})

    @rule(pick=picks, team=st.sampled_from(["net", "bill", "hw"]))
    def warm_transfer(self, pick: int, team: str) -> None:
        """The owner hands over to a team and stays on; a member picks it up."""
        s = self._pick(pick, lambda s: s.owner is not None)
        if s is None or s.owner is None:
            return
        self._command(s.owner, "transfer", {"session": s.id, "target": f"team:{team}", "stay": True})
        members = sorted(self.e.teams[team].members)
        if s.queue == QueueRef.team(team) and members:
            self._command(members[pick % len(members)], "accept", {"session": s.id})

    @rule(pick=picks)
    def hold_or_resume(self, pick: int) -> None:
        s = self._pick(pick, lambda s: s.owner is not None)
        if s is not None and s.owner is not None:
            self._command(s.owner, "accept" if s.held else "hold", {"session": s.id})

    @rule(pick=picks, rep=reps, leave=st.booleans())
    def end_or_leave(self, pick: int, rep: str, leave: bool) -> None:
        if not leave:
            s = self._pick(pick, lambda s: s.owner is not None)
            if s is not None and s.owner is not None:
                self._command(s.owner, "end", {"session": s.id})
            return
        s = self._pick(pick, lambda s: bool(s.participants))
        if s is not None:
            who = list(s.participants)[pick % len(s.participants)] if pick % 5 else rep
            self._command(who, "leave", {"session": s.id})

    @rule(pick=picks, reps_only=st.booleans())
    def say(self, pick: int, reps_only: bool) -> None:
        s = self._pick(pick, lambda s: s.owner is not None)
        if s is not None and s.owner is not None:
            self._command(s.owner, "say", {"session": s.id, "text": "try this", "reps_only": reps_only})

    @rule(rep=reps, team=st.sampled_from(["net", "bill", "hw"]), read=st.booleans())
    def team_chat(self, rep: str, team: str, read: bool) -> None:
        if read:
            self._command(rep, "team_read", {"team": team})
        else:
            self._command(rep, "team_say", {"team": team, "text": "anyone free?"})

    @rule(rep=reps, name=st.sampled_from(["explode", "accept", "transfer"]), args=st.sampled_from([{}, {"session": 5}, {"session": "S1", "x": 1}]))
    def malformed(self, rep: str, name: str, args: dict[str, Any]) -> None:
        before = fingerprint(self.e, self.created)
        try:
            execute(self.e, rep, name, args)
        except CommandError:
            pass
        else:  # pragma: no cover - every combination above is malformed
            raise AssertionError(f"{name} {args} was accepted")
        assert fingerprint(self.e, self.created) == before

    # --------------------------------------------------------- presence, time

    @rule(rep=reps)
    def connection(self, rep: str) -> None:
        """Drop a connected rep; bring a dropped one back (within grace or not)."""
        if self.e.reps[rep].connected:
            self.e.rep_disconnected(rep)
        else:
            self.e.rep_connected(rep)

    @rule(seconds=st.sampled_from(JUMPS))
    def time_passes(self, seconds: float) -> None:
        self.site.tick(seconds)

    # ------------------------------------------------------------- invariants

    @invariant()
    def no_session_is_lost(self) -> None:
        e = self.e
        live = {s.id: s for s in e.sessions()}
        created = set(self.created)
        assert set(live) <= created, "the engine holds a session nobody started"
        queues = [QueueRef.personal(r) for r in e.reps] + [QueueRef.team(t) for t in e.teams]
        placed: dict[str, QueueRef] = {}
        for q in queues:
            waiting = e.waiting_in(q)
            assert e.queue_count(q) == len(waiting)
            assert [s.queue_entered_at for s in waiting] == sorted(s.queue_entered_at for s in waiting)
            for s in waiting:
                assert s.id not in placed, f"{s.id} waits in {placed[s.id]} and {q}"
                assert s.queue == q and s.state is SessionState.WAITING
                placed[s.id] = q
        for sid in self.created:
            s = e.session(sid)
            if s.state is SessionState.ENDED:
                assert sid not in live and s.end_reason and s.ended_at is not None and s.queue is None
                assert not s.invitations
            elif s.state is SessionState.WAITING:
                assert s.queue is not None and placed.get(sid) == s.queue
            else:
                assert s.owner is not None and s.queue is None and sid not in placed
        assert sum(1 for s in live.values() if s.state is SessionState.WAITING) == len(placed) == e.waiting_total()

    @invariant()
    def queue_positions_count_the_sessions_ahead_not_on_hold(self) -> None:
        e = self.e
        for q in [QueueRef.personal(r) for r in e.reps] + [QueueRef.team(t) for t in e.teams]:
            ahead = 0
            for s in e.waiting_in(q):
                assert e.queue_position(s.id) == ahead + 1, f"{s.id} in {q}"
                ahead += not s.held
        for s in e.sessions():
            if s.state is not SessionState.WAITING:
                assert e.queue_position(s.id) is None

    @invariant()
    def one_owner_and_consistent_membership(self) -> None:
        e = self.e
        involved: dict[str, set[str]] = {r: set() for r in e.reps}
        for s in e.sessions():
            assert s.owner not in s.participants
            if s.state is SessionState.WAITING and not s.held:
                assert s.owner is None
            if s.held:
                assert s.state is SessionState.WAITING and s.owner is not None and s.queue == QueueRef.personal(s.owner)
            for rep in [*s.participants, *([s.owner] if s.owner else [])]:
                involved[rep].add(s.id)
            for inv in s.invitations.values():
                assert inv.session == s.id
        for rep in e.reps:
            assert e.involved(rep) == involved[rep]
            assert e.load(rep) <= e.reps[rep].max_sessions, f"{rep} is over their maximum"
            # Whatever load() counts, the rep is never in more active sessions than allowed.
            active = sum(1 for sid in involved[rep] if e.session(sid).state is SessionState.ACTIVE)
            assert active <= e.reps[rep].max_sessions, f"{rep} is in {active} active sessions"

    @invariant()
    def timers_are_armed_and_nothing_due_is_left(self) -> None:
        e, now = self.e, self.site.clock.now
        deadline = e.next_deadline()
        assert deadline is None or deadline > now
        for s in e.sessions():
            if s.state is not SessionState.WAITING:
                assert s.rule_deadline is None
                continue
            assert s.queue is not None
            rule = None if s.queue.is_personal else e.teams[s.queue.id].rule
            if s.rule_deadline is not None:
                assert rule is not None and s.rule_deadline > now
            elif rule is not None:
                assert s.overdue, f"{s.id} waits in {s.queue} with its rule unarmed"
        for rep in e.reps.values():
            assert rep.grace_until is None or (not rep.connected and rep.grace_until > now)
            if not rep.connected and rep.grace_until is None:
                # Grace is over: the rep is out of every session and invitation.
                assert not e.involved(rep.id)
                assert all(inv.target != QueueRef.personal(rep.id) for s in e.sessions() for inv in s.invitations.values())

    @invariant()
    def consoles_mirror_the_engine(self) -> None:
        e = self.e
        # A console is a function of the events it got (and of the clock, for
        # key expiry, which the comparison filters on both sides): with no new
        # event since the last check there is nothing new to compare.
        if e.seq == self.checked_seq:
            return
        self.checked_seq = e.seq
        for rep, console in self.consoles.items():
            assert_mirrors_snapshot(console)
            teams = e.reps[rep].teams
            for s in console.state.sessions.values():
                mine = rep == s.owner or rep in s.participants
                mine_queues = {f"rep:{rep}"} | {f"team:{t}" for t in teams}
                invited = any(inv.target in mine_queues for inv in s.invitations)
                queue = s.queue
                in_my_queue = queue in mine_queues
                assert mine or invited or in_my_queue, f"{rep} sees {s.id} in {queue}"


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(
    # About 5 s.  A deeper search, e.g. nightly: ENGINE_MACHINE_EXAMPLES=3000.
    max_examples=int(os.environ.get("ENGINE_MACHINE_EXAMPLES", "150")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
