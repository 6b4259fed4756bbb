"""Presence: rep status, lost and regained connections, and where a dropped rep's sessions go."""

from __future__ import annotations

from repconsole.core.clock import Clock
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import EventBus
from repconsole.core.engine.queues import Queues, last_queue
from repconsole.core.engine.sessions import SessionDesk
from repconsole.core.engine.timers import Timers
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueRef, Rep, RepStatus, Session, SessionState, StepKind, TimelineStep, Visibility
from repconsole.protocol.events import RepData

__all__ = ["Presence"]


class Presence:
    """Status and connection of each rep, and the fallback after a grace period.

    A rep whose console goes silent keeps everything for the site's grace
    period.  When it runs out, invitations to them are withdrawn, they leave
    the sessions they take part in, and each session they own or that waits
    for them falls back in BeyondTrust's documented order (:meth:`_fall_back`).
    """

    def __init__(self, clock: Clock, bus: EventBus, directory: Directory, queues: Queues, desk: SessionDesk,
                 timers: Timers) -> None:
        self._clock = clock
        self._bus = bus
        self._dir = directory
        self._queues = queues
        self._desk = desk
        self._timers = timers

    def set_status(self, rep_id: str, status: RepStatus) -> Rep:
        rep = self._dir.rep(rep_id)
        try:
            rep.status = RepStatus(status)
        except ValueError:
            raise CommandError(Reason.INVALID, f"unknown status {status!r}") from None
        self.emit(rep)
        return rep

    def disconnected(self, rep_id: str, since: float | None = None) -> None:
        rep = self._dir.rep(rep_id)
        if not rep.connected:
            return
        rep.connected = False
        # A grace period that ran out already (since long ago) falls back at the next advance().
        rep.grace_until = (self._clock() if since is None else since) + self._dir.site.grace_period
        self._timers.add(rep.grace_until, "grace", rep_id)
        self.emit(rep)

    def connected(self, rep_id: str) -> None:
        rep = self._dir.rep(rep_id)
        if rep.connected:
            return
        rep.connected = True
        rep.grace_until = None
        self.emit(rep)

    def emit(self, rep: Rep) -> None:
        self._bus.emit(RepData(rep.view()), self._dir.everyone())

    def grace_over(self, deadline: float, rep_id: str) -> int:
        """The grace period set for ``deadline`` ran out.  Returns 1 if it still applied, 0 if the timer was stale."""
        rep = self._dir.reps.get(rep_id)
        if rep is None or rep.connected or rep.grace_until != deadline:
            return 0
        rep.grace_until = None
        personal = QueueRef.personal(rep.id)
        # Invitations to a rep who is gone are withdrawn.
        self._desk.withdraw_invitations(personal)
        queues = self._queues
        for sid in sorted(queues.involved(rep.id) | set(queues.waiting_ids(personal))):
            s = queues.live.get(sid)
            if s is None:
                continue
            if rep.id in s.participants:
                before = queues.begin(s)
                del s.participants[rep.id]
                s.timeline.append(TimelineStep(self._clock(), StepKind.LEFT, by=rep.id, note="connection lost"))
                queues.commit(s, before)
            else:
                self._fall_back(s, rep)
        self.emit(rep)
        return 1

    def _fall_back(self, s: Session, lost: Rep) -> None:
        """Where a dropped rep's session goes, in BeyondTrust's documented order."""
        queues, desk, reps = self._queues, self._desk, self._dir.reps
        before = queues.begin(s)
        now = self._clock()
        note = f"{lost.name} lost connection"
        # 1. The connected rep who has shared it longest takes it over.
        heir = next((r for r in s.participants if reps[r].connected), None)
        if heir is not None:
            del s.participants[heir]
            s.owner = heir
            s.state = SessionState.ACTIVE
            s.queue = None
            s.held = False
            s.timeline.append(TimelineStep(now, StepKind.CONNECTION_LOST, by=heir, note=f"{note}; {reps[heir].name} took over"))
            queues.commit(s, before)
            desk.chat(s, None, f"{note}. {reps[heir].name} is now the owner.", Visibility.ALL)
            return
        # 2. The last queue it was in, 3. the queue it first entered, 4. the
        # site's fallback queue: the first of them that someone can serve.
        candidates = [last_queue(s, excluding=lost.id), s.first_queue, self._dir.site.fallback_queue]
        target = next((q for q in candidates if q is not None and self._can_serve(q, lost.id)), None)
        if target is None:
            # 5. Nowhere to go: end it, and tell the customer why.
            desk.chat(s, None, "Your representative lost connection and no one else is available. Please try again.", Visibility.ALL)
            desk.end_session(s, "representative lost connection", by=None)
            return
        s.owner = None
        s.held = False
        queues.enqueue(s, target, StepKind.CONNECTION_LOST, note=note)
        queues.commit(s, before)
        desk.chat(s, None, "Your representative lost connection. You are back in the queue; the next available representative will help you.", Visibility.ALL)

    def _can_serve(self, q: QueueRef, lost: str) -> bool:
        reps = self._dir.reps
        if q.is_personal:
            return q.id != lost and q.id in reps and reps[q.id].connected
        team = self._dir.teams.get(q.id)
        if team is None:
            return False
        # A persistent queue keeps sessions even with no member logged in.
        return team.persistent or any(reps[m].connected for m in team.members if m != lost)
