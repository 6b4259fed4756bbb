"""Auto-assignment (issue 14): offers of waiting team sessions to reps with room, and what ends them.

A team whose routing is not ``none`` offers each of its waiting sessions,
in queue order, to one member at a time: connected, available, not pausing
offers, with free capacity, not one who declined or missed it before, and
(``skills``) with the skill the session's issue category needs; the least
busy of those (fewest sessions and open offers); between equally busy
reps, the one who took the fewest sessions today (so that over a day work
evens out: a rep whose sessions happened to be short does not keep winning
the ties), then the longest since they last got work, an offer or a
session; then by id, so that the engine stays deterministic.

The invariants, kept after every command (tests/test_engine_offer_properties.py):

* one open offer per session at most;
* a rep's sessions plus open offers never exceed their capacity: a pull
  that fills the rep up withdraws their newest offers, and a lowered
  capacity withdraws what no longer fits;
* a rep who declined or missed a session is not offered it again, until
  it is transferred (a new start, as BeyondTrust does it);
* accepting stays exactly-once: ``accept_offer`` is an ``accept``, and
  whoever takes the session (the offered rep or a rep who pulls it), its
  open offer ends in the same command (accepted, or withdrawn).

When: the engine facade calls :meth:`Router.settle` after every command
and every :meth:`~repconsole.core.engine.QueueEngine.advance`; it routes
the teams whose capacity or queue changed since (:meth:`Router.on_commit`
marks them, from :meth:`Queues.commit`), so an offer goes out in the same
command that freed the room.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from repconsole.core.clock import Clock
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import EventBus
from repconsole.core.engine.outlook import MAX_PLACES, Outlook, joined_at
from repconsole.core.engine.presence import Presence
from repconsole.core.engine.queues import Queues
from repconsole.core.engine.timers import Timers
from repconsole.core.errors import CommandError, Reason
from repconsole.core.estimate import Calibration, ServedLog, WaitEstimate, answer_time, forecast_wait, served_rate, wait_at_rate
from repconsole.core.forecast import Forecast, Member
from repconsole.core.model import QueueKind, QueueRef, Rep, RepStatus, RoutingMode, Session, SessionState, StepKind
from repconsole.protocol.events import EstimateData, OfferData, OfferEndedData
from repconsole.protocol.views import EstimateView, OfferView
from repconsole.protocol.vocabulary import OfferOutcome

__all__ = ["DAY", "Offer", "Router", "TeamInputs"]

DAY = 86400.0  # "today" for the tie-break: the clock's day (UTC on the server's wall clock)

def _shown(view: EstimateView | None) -> tuple[int, int] | None:
    """What a console shows of an estimate: its range in minutes (None: "no estimate")."""
    return None if view is None else (view.low, view.high)


@dataclass(slots=True)
class Offer:
    """An open offer of a waiting session to one rep, until ``deadline``."""

    session: str
    rep: str
    queue: QueueRef
    at: float
    deadline: float

    def view(self) -> OfferView:
        return OfferView(self.session, self.rep, self.queue.serialize(), self.at, self.deadline)


@dataclass(frozen=True, slots=True)
class TeamInputs:
    """What every estimate of one team's waiting customers starts from, as of ``at`` (:meth:`Router.estimate`).

    ``rate``: :func:`~repconsole.core.estimate.served_rate`'s answer (None: too few served, or nobody
    serving); ``free``: room for offers now plus offers out (routed teams); ``last``: the place of a
    customer arriving now, less ``free`` (how many places the team's forecast covers).
    """

    at: float
    members: tuple[Rep, ...]
    serving: bool
    routed: bool
    free: int
    last: int
    soon: float
    rate: tuple[int, float] | None


@dataclass(slots=True)
class _Batch:
    """Within :meth:`Router.estimating`: the time, the event it was as of, and the teams' inputs and forecasts."""

    at: float
    seq: int
    inputs: dict[str, TeamInputs] = field(default_factory=dict)
    forecasts: dict[tuple[str, int], Forecast | None] = field(default_factory=dict)


class Router:
    """Open offers, who refused what, missed offers in a row, and the teams to route next.

    Attributes:
        offers: the open offers, by session id.
        refused: per session, the reps who declined or missed it (since it was last transferred).
    """

    def __init__(self, clock: Clock, bus: EventBus, directory: Directory, queues: Queues, timers: Timers,
                 presence: Presence) -> None:  # fmt: skip
        self._clock = clock
        self._bus = bus
        self._dir = directory
        self._queues = queues
        self._timers = timers
        self._presence = presence
        self.offers: dict[str, Offer] = {}
        self._by_rep: dict[str, dict[str, Offer]] = {}  # rep -> session id -> offer, oldest first
        self.refused: dict[str, set[str]] = {}
        self._missed: dict[str, int] = {}  # rep -> expired offers in a row
        self._last_work: dict[str, float] = {}  # rep -> when they last got work: an offer, or a session
        self._today: dict[str, int] = {}  # rep -> sessions they joined on day _day (the clock's, in days since its epoch)
        self._day = -1
        self._dirty: set[str] = set()  # routed teams to route at the next settle()
        self._routed: set[str] = set()  # the teams whose routing is not "none"
        self._served: dict[str, ServedLog] = {}
        self._answers: dict[str, deque[float]] = {}  # team -> how long its last accepted offers took to be accepted
        self._estimates: dict[str, EstimateView | None] = {}  # as last published (only a new range is)
        self._soon: dict[str, float] = {}  # team -> answer_time() of its answers, until the next
        self._calibration: dict[str, Calibration] = {}  # team -> how its recent waits compared with the model
        self._shown: dict[str, tuple[float, int, float]] = {}  # session -> (when, ahead, model): its first estimate
        self.outlook = Outlook(clock)  # what the estimates play forward from: session lengths, stretches away
        self._batch: _Batch | None = None  # within estimating(): each team's inputs, worked out once
        self.inputs_made = 0  # TeamInputs worked out (tests count them)
        queues.committed = self.on_commit

    # ------------------------------------------------------------- queries

    def held_by(self, rep_id: str) -> int:
        """Open offers to ``rep_id``: they count against the rep's capacity."""
        return len(self._by_rep.get(rep_id, ()))

    def offers_to(self, rep_id: str) -> list[Offer]:
        return list(self._by_rep.get(rep_id, {}).values())

    def _took(self, rep_id: str, now: float) -> None:
        """Count a session the rep joined (accepted, pulled, was transferred or invited into) for today."""
        day = int(now // DAY)
        if day != self._day:
            self._today.clear()  # a new day: everyone starts at 0
            self._day = day
        self._today[rep_id] = self._today.get(rep_id, 0) + 1

    def takes_offers(self, rep: Rep) -> bool:
        """Connected, available and not pausing offers."""
        return rep.connected and rep.status is RepStatus.AVAILABLE and rep.paused_until is None

    def room(self, rep: Rep) -> int:
        """Free capacity: the maximum less the rep's sessions and open offers."""
        return rep.max_sessions - self._queues.load(rep.id) - self.held_by(rep.id)

    # --------------------------------------------------------------- setup

    def add_team(self, team_id: str) -> None:
        self._served[team_id] = ServedLog(self._clock())
        self._answers[team_id] = deque(maxlen=200)
        self._calibration[team_id] = Calibration()
        self.outlook.add_team(team_id)
        self.team_changed(team_id)

    def _mark(self, team_ids: Iterable[str]) -> None:
        """Route these teams at the next settle() (those that route at all)."""
        routed = self._routed
        if routed:
            self._dirty.update(t for t in team_ids if t in routed)

    def mark_rep(self, rep: Rep) -> None:
        """The rep's capacity, status or connection changed: withdraw what no longer fits, route their teams."""
        self.outlook.rep_changed(rep)
        if not self.takes_offers(rep):
            self._withdraw_rep(rep.id, keep=0)
        else:
            self._withdraw_rep(rep.id, keep=rep.max_sessions - self._queues.load(rep.id))
        self._mark(rep.teams)

    def team_changed(self, team_id: str) -> None:
        """The team's routing changed: without routing, its open offers are withdrawn."""
        if self._dir.teams[team_id].routing is RoutingMode.NONE:
            self._routed.discard(team_id)
            for offer in [o for o in self.offers.values() if o.queue.id == team_id]:
                self._close(offer, OfferOutcome.WITHDRAWN)
            # Who refused what is kept: routing may come back on, and a refusal holds until the
            # session is transferred or leaves (on_commit forgets it then).
        else:
            self._routed.add(team_id)
            self._dirty.add(team_id)

    def mark_all(self) -> None:
        self._dirty.update(self._routed)

    # ------------------------------------------------------------ commands

    def offer_of(self, rep_id: str, session_id: str) -> Offer:
        """The open offer of ``session_id`` to ``rep_id``, or NO_OFFER."""
        offer = self.offers.get(session_id) if isinstance(session_id, str) else None
        if offer is None or offer.rep != rep_id:
            raise CommandError(Reason.NO_OFFER, session_id=session_id)
        return offer

    def decline(self, rep_id: str, session_id: str) -> Offer:
        self._dir.rep(rep_id)
        offer = self.offer_of(rep_id, session_id)
        self._missed[rep_id] = 0  # answering breaks a row of missed offers
        self._close(offer, OfferOutcome.DECLINED, refuse=True)
        return offer

    def pause(self, rep_id: str, minutes: float) -> Rep:
        """No offers for ``minutes`` (0: offers again now); they come back by themselves (a "resume" timer)."""
        rep = self._dir.rep(rep_id)
        if not isinstance(minutes, int | float) or not 0 <= minutes <= 24 * 60:
            raise CommandError(Reason.INVALID, "minutes must be between 0 and 1440", field="minutes")
        if minutes == 0:
            rep.paused_until = None
        else:
            rep.paused_until = self._clock() + minutes * 60
            self._timers.add(rep.paused_until, "resume", rep_id)
        self.mark_rep(rep)
        self._presence.emit(rep)
        return rep

    def resume(self, deadline: float, rep_id: str) -> int:
        """A pause set to end at ``deadline`` ended.  Returns 1, or 0 for a stale timer."""
        rep = self._dir.reps.get(rep_id)
        if rep is None or rep.paused_until != deadline:
            return 0
        rep.paused_until = None
        self.mark_rep(rep)
        self._presence.emit(rep)
        return 1

    def expire(self, deadline: float, session_id: str) -> int:
        """An offer's deadline passed unanswered: a miss.  Two in a row set the rep away.  Returns 1, or 0 if stale."""
        offer = self.offers.get(session_id)
        if offer is None or offer.deadline != deadline:
            return 0
        rep = self._dir.reps[offer.rep]
        missed = self._missed.get(rep.id, 0) + 1
        away = missed >= self._dir.site.misses_before_away
        self._missed[rep.id] = 0 if away else missed
        detail = f"You missed {missed} offers in a row, so your status is now away. Set it to available to get offers again."
        self._close(offer, OfferOutcome.EXPIRED, refuse=True, away=away, detail=detail if away else None)
        if away:
            self._presence.set_status(rep.id, RepStatus.AWAY)
            self.mark_rep(rep)
        return 1

    def status_set(self, rep: Rep) -> None:
        """The rep set their own status: setting available again starts a new count of misses."""
        if rep.status is RepStatus.AVAILABLE:
            self._missed[rep.id] = 0
        self.mark_rep(rep)

    # ------------------------------------------------------------- routing

    def settle(self) -> None:
        """Route every team marked since the last call, in a fixed order."""
        while self._dirty:
            dirty, self._dirty = sorted(self._dirty), set()
            for team_id in dirty:
                self._route(team_id)

    def _route(self, team_id: str) -> None:
        team = self._dir.teams.get(team_id)
        if team is None or team.routing is RoutingMode.NONE:
            return
        reps = self._dir.reps
        free = {r: room for r in sorted(team.members) if self.takes_offers(reps[r]) and (room := self.room(reps[r])) > 0}
        if not free:
            return
        queue = self._dir.ref(QueueRef.team(team_id))
        live = self._queues.live
        by_skill = team.routing is RoutingMode.SKILLS
        today = self._today if self._day == self._clock() // DAY else {}
        for sid in list(self._queues.waiting_ids(queue)):
            if sid in self.offers:
                continue
            s = live[sid]
            refused = self.refused.get(sid, ())
            need = team.skills.get(s.category) if by_skill else None
            best: str | None = None
            best_key: tuple[int, int, float] | None = None
            for r, room in free.items():  # sorted by id: ties go to the first
                if r in refused or (need is not None and need not in reps[r].skills):
                    continue
                key = (reps[r].max_sessions - room, today.get(r, 0), self._last_work.get(r, float("-inf")))
                if best_key is None or key < best_key:
                    best, best_key = r, key
            if best is None:
                continue
            self._make(s, best, queue)
            if free[best] == 1:
                del free[best]
                if not free:
                    return
            else:
                free[best] -= 1

    def _make(self, s: Session, rep_id: str, queue: QueueRef) -> None:
        now = self._clock()
        offer = Offer(s.id, rep_id, queue, now, now + self._dir.site.offer_timeout)
        self.offers[s.id] = offer
        self._by_rep.setdefault(rep_id, {})[s.id] = offer
        self._last_work[rep_id] = now
        self._timers.add(offer.deadline, "offer", s.id)
        self.outlook.changed()
        self._bus.emit(OfferData(offer.view()), self._dir.only(rep_id))

    def _close(self, offer: Offer, outcome: OfferOutcome, *, refuse: bool = False, away: bool = False,
               detail: str | None = None) -> None:  # fmt: skip
        del self.offers[offer.session]
        self.outlook.changed()
        mine = self._by_rep[offer.rep]
        del mine[offer.session]
        if refuse:
            self.refused.setdefault(offer.session, set()).add(offer.rep)
        # The session may go to the next rep, and the rep has room again, in any of their teams.
        self._mark((offer.queue.id, *self._dir.reps[offer.rep].teams))
        data = OfferEndedData(offer.session, offer.rep, outcome, away)
        if detail is not None:
            data = OfferEndedData(offer.session, offer.rep, outcome, away, detail)
        self._bus.emit(data, self._dir.only(offer.rep))

    def _withdraw_rep(self, rep_id: str, *, keep: int) -> None:
        """Withdraw the rep's newest open offers until at most ``keep`` are left."""
        mine = self._by_rep.get(rep_id)
        while mine and len(mine) > max(0, keep):
            self._close(mine[next(reversed(mine))], OfferOutcome.WITHDRAWN)

    # ------------------------------------------------- following sessions

    def on_commit(self, s: Session, old_queue: QueueRef | None, old_in: frozenset[str], now_in: frozenset[str]) -> None:
        """Every session change, after it is announced (see :attr:`Queues.committed`)."""
        q = s.queue
        left_team = old_queue is not None and old_queue.kind is QueueKind.TEAM and old_queue != q
        served = left_team and s.state is SessionState.ACTIVE
        assert old_queue is not None or not served
        self.outlook.session_changed(s, old_queue.id if served and old_queue is not None else None, old_in, now_in)
        if left_team:
            assert old_queue is not None
            shown = self._shown.pop(s.id, None) if self._shown else None
            if s.state is SessionState.ACTIVE:
                now = self._clock()
                self._served[old_queue.id].add(now)
                if shown is not None and shown[2] > 0:
                    at, ahead, model = shown
                    self._calibration[old_queue.id].add(ahead, (now - at) / model)
        if s.state is SessionState.ENDED and self.refused:
            self.refused.pop(s.id, None)  # also while no team routes: refusals outlive routing being off
        if not self._routed:
            return  # no team routes (the default): no offer can be open, nothing to route
        if left_team:
            assert old_queue is not None
            self._mark((old_queue.id,))
        waiting_in_team = s.state is SessionState.WAITING and q is not None and q.kind is QueueKind.TEAM
        if waiting_in_team and q != old_queue:
            assert q is not None
            last = s.timeline[-1].kind if s.timeline else None
            if last is StepKind.TRANSFERRED:
                self.refused.pop(s.id, None)  # transferred: a fresh start, every member may be offered it
            self._mark((q.id,))
        offer = self.offers.get(s.id)
        if offer is not None and not (waiting_in_team and q == offer.queue and not s.held):
            took = s.state is SessionState.ACTIVE and s.owner == offer.rep
            if took:
                self._missed[offer.rep] = 0
                self._answers[offer.queue.id].append(self._clock() - offer.at)
                self._soon.pop(offer.queue.id, None)
            self._close(offer, OfferOutcome.ACCEPTED if took else OfferOutcome.WITHDRAWN)
        if old_in != now_in:
            reps = self._dir.reps
            for rep_id in old_in ^ now_in:
                rep = reps[rep_id]
                if rep_id in now_in:  # busier: open offers must still fit
                    now = self._clock()
                    self._last_work[rep_id] = now
                    self._took(rep_id, now)
                    self._withdraw_rep(rep_id, keep=rep.max_sessions - self._queues.load(rep_id))
                self._mark(rep.teams)

    # ----------------------------------------------------------- estimates

    @contextmanager
    def estimating(self) -> Iterator[None]:
        """Estimates asked within share each team's inputs (:class:`TeamInputs`), worked out once per team.

        A position refresh asks an estimate of every connected waiting customer: tens of thousands,
        each of whose inputs (the members' room, the offers out, the rate over up to 1,000 served
        times) are the team's, not theirs.  Within, the time is read once (a refresh is one instant)
        and the inputs are kept while nothing happens: any event (a session moving, a rep going
        away, an offer) but this router's own ``estimate`` ones works them out afresh at the next
        asking.  The same answers as outside it, at that time (tests/test_estimate_batch.py).
        """
        if self._batch is not None:  # nested: the outer one's
            yield
            return
        self._batch = _Batch(self._clock(), self._bus.seq)
        try:
            yield
        finally:
            self._batch = None

    def estimate(self, team_id: str, position: int, session_id: str | None = None) -> WaitEstimate | None:
        """The wait of the customer at ``position`` in the team's queue (see :mod:`repconsole.core.estimate`).

        ``session_id``: the customer's, whose first estimate with a number is remembered until they
        are served, to calibrate the team's later estimates (:class:`~repconsole.core.estimate.Calibration`).
        """
        batch = self._batch
        if batch is None:
            inputs = self._inputs(team_id, self._clock())
        else:
            if batch.seq != self._bus.seq:  # something happened since: inputs afresh
                batch.seq = self._bus.seq
                batch.inputs.clear()
                batch.forecasts.clear()
            got = batch.inputs.get(team_id)
            inputs = batch.inputs[team_id] = got if got is not None else self._inputs(team_id, batch.at)
        est = wait_at_rate(position, inputs.rate, free_slots=inputs.free, serving=inputs.serving, soon=inputs.soon,
                           calibration=self._calibration[team_id])  # fmt: skip
        if est is None or est.ahead <= 0:
            return est
        now = inputs.at
        if session_id is not None and session_id not in self._shown:
            self._shown[session_id] = (now, est.ahead, est.model)
        if inputs.routed:
            # A routed team: play its members' sessions forward (the rate model stays the fallback,
            # and its calibration keeps learning; a pull team's reps take customers when they choose).
            places = max(est.ahead, inputs.last)
            key = (team_id, min(places, MAX_PLACES))
            if batch is not None and key in batch.forecasts:
                forecast = batch.forecasts[key]
            else:
                members = inputs.members
                forecast = self.outlook.forecast(team_id, places, lambda: self._places(members, now), self._answers[team_id])
                if batch is not None:
                    batch.forecasts[key] = forecast
            if forecast is not None:
                return forecast_wait(forecast, est.ahead, now, model=est.model) or est
        return est

    def _inputs(self, team_id: str, now: float) -> TeamInputs:
        """What every estimate of the team's customers at ``now`` starts from."""
        self.inputs_made += 1
        team = self._dir.team(team_id)
        reps = self._dir.reps
        members = tuple(reps[r] for r in team.members)
        serving = any(r.connected and r.status is RepStatus.AVAILABLE for r in members)
        routed = team.routing is not RoutingMode.NONE
        free = last = 0
        if routed:
            # Room for offers now, and the offers already out: the customers they went to (first in line) are
            # being served, so they are not ahead of anyone in the wait for the next rep.
            free = sum(max(0, self.room(r)) for r in members if self.takes_offers(r))
            free += sum(1 for o in self.offers.values() if o.queue.id == team_id)
            last = self._queues.count(self._dir.ref(QueueRef.team(team_id))) + 1 - free
        log = self._served[team_id]
        soon = self._soon.get(team_id)
        if soon is None:  # until the next answer: estimates are asked for every waiting customer, often
            soon = self._soon[team_id] = answer_time(self._answers[team_id])
        rate = served_rate(log.times(), now, since=log.since) if serving else None
        return TeamInputs(now, members, serving, routed, free, last, soon, rate)

    def _places(self, members: Iterable[Rep], now: float) -> list[Member]:
        """What a forecast starts from: each member's places, the sessions in them and how long each has gone on."""
        live = self._queues.live
        places = []
        for r in sorted(members, key=lambda r: r.id):
            ages = sorted(now - joined_at(live[sid], r.id) for sid in self._queues.involved(r.id) if sid in live)
            # Over capacity (pulled more): a place frees only when enough have ended; the oldest are likeliest to.
            ages = ages[: r.max_sessions]
            if self.takes_offers(r):
                places.append(Member(tuple(ages), self.held_by(r.id) + max(0, self.room(r))))
            elif r.connected and r.status is RepStatus.AVAILABLE and r.paused_until is not None:
                places.append(Member(tuple(ages), max(0, r.max_sessions - len(ages)), back=r.paused_until - now))
            else:  # away, busy or disconnected: back after a stretch like those seen end
                places.append(Member(tuple(ages), max(0, r.max_sessions - len(ages)), away=self.outlook.away_for(r.id, now)))
        return places

    def published(self, team_ids: Iterable[str]) -> dict[str, EstimateView | None]:
        """The estimates last published of these teams (those published at all): what a snapshot carries."""
        return {t: self._estimates[t] for t in sorted(team_ids) if t in self._estimates}

    def publish_estimates(self) -> int:
        """Tell each team's members its estimate for a customer arriving now, where it changed.  Returns how many."""
        told = 0
        for team_id in sorted(self._dir.teams):
            est = self.estimate(team_id, self._queues.count(self._dir.ref(QueueRef.team(team_id))) + 1)
            view = est.view() if est is not None else None
            # What a console shows is the range ("about 2-4 min"): the point estimate moves
            # with every arrival and accept, and an event each time (persisted, to every
            # member) cost the server a step per team twice a second for nothing to see.
            if team_id in self._estimates and _shown(self._estimates[team_id]) == _shown(view):
                continue
            self._estimates[team_id] = view
            seq = self._bus.seq
            self._bus.emit(EstimateData(team_id, view), self._dir.members(QueueRef.team(team_id)))
            if self._batch is not None and self._batch.seq == seq:
                self._batch.seq = self._bus.seq  # an estimate announced changes no team's inputs
            told += 1
        return told
