"""Sessions and their chat: arrive, accept, share, transfer, hold, end, leave, say.

Every command checks everything before its first change, so that a refused
command (a :class:`~repconsole.core.errors.CommandError`) changes nothing;
then it brackets the change with ``begin``/``commit`` (see
:mod:`repconsole.core.engine.queues`) and adds a chat line if the people
in the session should read about it.

Accepting is atomic because the engine is single-threaded: a command runs
to completion before the next one starts, so "is it still waiting?" and
"it is mine now" can never be split by another rep's accept.
"""

from __future__ import annotations

from repconsole.core.clock import Clock
from repconsole.core.engine.chat import chat_text
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import EventBus
from repconsole.core.engine.queues import NOTHING, Queues, last_queue
from repconsole.core.errors import CommandError, Reason
from repconsole.core.intake import Intake
from repconsole.core.model import (
    CUSTOMER,
    ChatLine,
    Invitation,
    Issue,
    Origin,
    QueueRef,
    Rep,
    Session,
    SessionState,
    StepKind,
    TimelineStep,
    Visibility,
)
from repconsole.protocol.events import ChatData

__all__ = ["SessionDesk"]


class SessionDesk:
    """The commands that move a session through its life, and its chat.

    Attributes:
        invitations: the open invitations of live sessions, by id.
        invitation_counter: the number of the last invitation id handed out (``I<n>``).
    """

    def __init__(self, clock: Clock, bus: EventBus, directory: Directory, queues: Queues) -> None:
        self._clock = clock
        self._bus = bus
        self._listeners = bus.listeners  # the bus's own list: empty means nobody to tell
        self._dir = directory
        self._queues = queues
        self.invitations: dict[str, Invitation] = {}
        self.invitation_counter = 0

    # ------------------------------------------------------------- arriving

    def arrive(self, origin: Origin, intake: Intake, queue: QueueRef, *, source: str, issue: Issue | None = None,
               page_url: str = "", page_html: str = "", session_key: str = "") -> Session:
        """A new session, waiting in ``queue``."""
        if not isinstance(intake, Intake):
            raise CommandError(Reason.INVALID, "intake is required")
        now = self._clock()
        queues = self._queues
        s = Session(
            id=queues.new_id(),
            origin=origin,
            created_at=now,
            customer_name=intake.customer_name,
            company=intake.company,
            company_code=intake.company_code,
            issue_code=issue.code if issue else None,
            issue=issue.name if issue else "",
            category=issue.category if issue else "",
            details=intake.details,
            platform=intake.platform,
            locale=intake.locale,
            external_key=intake.external_key,
            custom_fields=dict(intake.custom_fields),
            portal=intake.portal,
            session_key=session_key,
            source=source,
            page_url=page_url,
            page_html=page_html,
            priority=intake.priority,
        )
        queues.live[s.id] = s
        queues.enqueue(s, queue, StepKind.ARRIVED, note=origin.label)
        queues.commit(s, NOTHING)
        return s

    def customer_say(self, session_id: str, text: str) -> ChatLine:
        s = self.live(session_id)
        return self.chat(s, CUSTOMER, chat_text(text), Visibility.ALL)

    def customer_leave(self, session_id: str, *, disconnected: bool = False) -> None:
        s = self.live(session_id)
        self.end_session(s, "customer disconnected" if disconnected else "customer left", by=None)

    # ------------------------------------------------------------ accepting

    def accept(self, rep_id: str, session_id: str) -> Session:
        """Take a waiting session.  Exactly one rep wins; the rest learn who did."""
        rep = self._dir.rep(rep_id)
        s = self._queues.session(session_id)
        if s.state is SessionState.ENDED:
            raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
        if s.state is SessionState.ACTIVE:
            if rep_id == s.owner:
                raise CommandError(Reason.ALREADY_IN_SESSION, "You already own this session.", session_id=session_id)
            # Say who won only to a rep who could have taken it; anyone else
            # learns nothing about a session they were never shown.
            last = last_queue(s)
            if rep_id in s.participants or (last is not None and rep_id in self._dir.members(last)):
                reps = self._dir.reps
                by = reps[s.owner].name if s.owner in reps else s.owner
                raise CommandError(Reason.ALREADY_TAKEN, f"Already taken by {by}.", by=s.owner, session_id=session_id)
            raise CommandError(Reason.NOT_MEMBER, session_id=session_id)
        assert s.queue is not None
        if rep_id not in self._dir.members(s.queue):
            raise CommandError(Reason.NOT_MEMBER, session_id=session_id)
        if rep_id != s.owner and rep_id not in s.participants:
            # Resuming or taking back one's own session needs no new slot.
            self._check_capacity(rep)
        before = self._queues.begin(s)
        resumed = s.held
        s.participants.pop(rep_id, None)
        s.state = SessionState.ACTIVE
        s.owner = rep_id
        s.queue = None
        s.held = False
        s.overdue = False
        s.rule_deadline = None
        now = self._clock()
        transferred = bool(s.timeline) and s.timeline[-1].kind is StepKind.TRANSFERRED
        s.timeline.append(TimelineStep(now, StepKind.ACCEPTED, by=rep_id))
        self._queues.commit(s, before)
        if resumed:
            self.chat(s, None, f"{rep.name} resumed the session.", Visibility.ALL)
        elif transferred:
            # The customer was told "You are being transferred to ..." and
            # now learns who has them; the reps read who accepted it.
            self.chat(s, None, f"{rep.name} accepted the session.", Visibility.REPS)
            self.chat(s, None, f"You are now with {rep.name}.", Visibility.ALL)
        else:
            self.chat(s, None, f"{rep.name} accepted the session.", Visibility.ALL)
        return s

    def accept_invitation(self, rep_id: str, invitation_id: str) -> Session:
        """Join a shared session as a participant."""
        rep = self._dir.rep(rep_id)
        inv = self.invitations.get(invitation_id)
        if inv is None:
            raise CommandError(Reason.UNKNOWN_INVITATION, invitation_id=invitation_id)
        if rep_id not in self._dir.members(inv.target):
            raise CommandError(Reason.NOT_MEMBER, invitation_id=invitation_id)
        s = self._queues.live[inv.session]
        if rep_id == s.owner or rep_id in s.participants:
            raise CommandError(Reason.ALREADY_IN_SESSION, session_id=s.id)
        self._check_capacity(rep)
        before = self._queues.begin(s)
        del s.invitations[invitation_id]
        del self.invitations[invitation_id]
        now = self._clock()
        s.participants[rep_id] = now
        s.timeline.append(TimelineStep(now, StepKind.JOINED, by=rep_id))
        self._queues.commit(s, before)
        self.chat(s, None, f"{rep.name} joined the session.", Visibility.ALL)
        return s

    def get_next(self, rep_id: str) -> Session:
        """Accept the longest-waiting session across the rep's team queues."""
        rep = self._dir.rep(rep_id)
        session_id = self._queues.oldest_waiting(rep.teams)
        if session_id is None:
            raise CommandError(Reason.NOTHING_WAITING)
        return self.accept(rep_id, session_id)

    # ---------------------------------------------------------- the owner's

    def transfer(self, rep_id: str, session_id: str, target: QueueRef, note: str = "", *, stay: bool = False) -> Session:
        """Hand the session to a rep or a team, with a note pinned for the receiver.

        A rep who already takes part in the session becomes its owner at
        once: they are working it already, so it does not wait in their
        personal queue (and their console keeps its tab, with the note).
        Anyone else gets it in their queue.  The old owner stays on as a
        participant if ``stay``.  Either way the customer is told.
        """
        rep = self._dir.rep(rep_id)
        s = self._owned(rep_id, session_id)
        self._dir.check_target(target)
        if target == QueueRef.personal(rep_id):
            raise CommandError(Reason.INVALID, "You cannot transfer a session to yourself.")
        self._dir.check_reachable(target)
        note = chat_text(note, allow_empty=True)
        if target.is_personal and target.id in s.participants:
            return self._hand_over(rep, s, self._dir.reps[target.id], note, stay=stay)
        before = self._queues.begin(s)
        now = self._clock()
        s.owner = None
        s.held = False
        if stay:
            s.participants[rep_id] = now
        s.transfer_note = note
        self._queues.enqueue(s, target, StepKind.TRANSFERRED, by=rep_id, note=note)
        self._queues.commit(s, before)
        self._say_transferred(s, rep, self._dir.queue_name(target), note)
        if target.is_personal:
            where = self._dir.reps[target.id].name
        else:
            where = f"the {self._dir.teams[target.id].name} team"
        self.chat(s, None, f"You are being transferred to {where}.", Visibility.ALL)
        return s

    def _hand_over(self, rep: Rep, s: Session, receiver: Rep, note: str, *, stay: bool) -> Session:
        """The owner ``rep`` transfers ``s`` to ``receiver``, who takes part in it: the owner changes at once."""
        before = self._queues.begin(s)
        now = self._clock()
        del s.participants[receiver.id]
        if stay:
            s.participants[rep.id] = now
        s.owner = receiver.id
        # A held session waits in the old owner's queue: handed over, it is active again.
        s.state = SessionState.ACTIVE
        s.queue = None
        s.held = False
        s.overdue = False
        s.rule_deadline = None
        s.transfer_note = note
        s.timeline.append(TimelineStep(now, StepKind.TRANSFERRED, queue=self._dir.ref(QueueRef.personal(receiver.id)), by=rep.id, note=note))
        self._queues.commit(s, before)
        self._say_transferred(s, rep, receiver.name, note)
        self.chat(s, None, f"You are now with {receiver.name}.", Visibility.ALL)
        return s

    def _say_transferred(self, s: Session, rep: Rep, where: str, note: str) -> None:
        """The reps' chat line about a transfer (the note is for reps, never the customer)."""
        self.chat(s, None, f"{rep.name} transferred the session to {where}." + (f" Note: {note}" if note else ""), Visibility.REPS)

    def share(self, rep_id: str, session_id: str, target: QueueRef) -> Invitation:
        """Invite a rep or a team to join.  The owner keeps ownership."""
        rep = self._dir.rep(rep_id)
        s = self._owned(rep_id, session_id)
        self._dir.check_target(target)
        if target.is_personal and (target.id == s.owner or target.id in s.participants):
            raise CommandError(Reason.ALREADY_IN_SESSION, rep=target.id)
        self._dir.check_reachable(target)
        for inv in s.invitations.values():
            if inv.target == target:
                return inv  # inviting twice is one invitation
        before = self._queues.begin(s)
        now = self._clock()
        self.invitation_counter += 1
        target = self._dir.ref(target)
        inv = Invitation(f"I{self.invitation_counter}", s.id, target, rep_id, now)
        s.invitations[inv.id] = inv
        self.invitations[inv.id] = inv
        s.timeline.append(TimelineStep(now, StepKind.SHARED, queue=target, by=rep_id))
        self._queues.commit(s, before)
        self.chat(s, None, f"{rep.name} invited {self._dir.queue_name(target)} to join.", Visibility.REPS)
        return inv

    def hold(self, rep_id: str, session_id: str) -> Session:
        """Park the session in the owner's personal queue; participants stay."""
        rep = self._dir.rep(rep_id)
        s = self._owned(rep_id, session_id)
        if s.held:
            raise CommandError(Reason.INVALID, "The session is already on hold.")
        before = self._queues.begin(s)
        s.held = True
        self._queues.enqueue(s, QueueRef.personal(rep_id), StepKind.HELD, by=rep_id)
        self._queues.commit(s, before)
        self.chat(s, None, f"{rep.name} put the session on hold.", Visibility.ALL)
        return s

    def end(self, rep_id: str, session_id: str) -> Session:
        """End the session for everyone (owner only)."""
        rep = self._dir.rep(rep_id)
        s = self._owned(rep_id, session_id)
        self.end_session(s, f"ended by {rep.name}", by=rep_id)
        return s

    # ------------------------------------------------------ any rep in it

    def leave(self, rep_id: str, session_id: str) -> Session:
        """A participant leaves; the session goes on without them."""
        rep = self._dir.rep(rep_id)
        s = self.live(session_id)
        if rep_id == s.owner:
            raise CommandError(Reason.INVALID, "The owner ends or transfers the session instead of leaving it.")
        if rep_id not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        before = self._queues.begin(s)
        del s.participants[rep_id]
        s.timeline.append(TimelineStep(self._clock(), StepKind.LEFT, by=rep_id))
        self._queues.commit(s, before)
        self.chat(s, None, f"{rep.name} left the session.", Visibility.ALL)
        return s

    def say(self, rep_id: str, session_id: str, text: str, *, reps_only: bool = False) -> ChatLine:
        self._dir.rep(rep_id)
        s = self.live(session_id)
        if rep_id != s.owner and rep_id not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        return self.chat(s, rep_id, chat_text(text), Visibility.REPS if reps_only else Visibility.ALL)

    def set_external_key(self, rep_id: str, session_id: str, external_key: str) -> Session:
        self._dir.rep(rep_id)
        s = self.live(session_id)
        if rep_id != s.owner and rep_id not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        if not isinstance(external_key, str) or len(external_key) > 100:
            raise CommandError(Reason.INVALID, "external_key must be text of at most 100 characters")
        before = self._queues.begin(s)
        s.external_key = external_key
        self._queues.commit(s, before)
        return s

    # ----------------------------------------------- shared with presence

    def chat(self, s: Session, author: str | None, text: str, visibility: Visibility) -> ChatLine:
        """Add a line to the session's chat (``author`` None: the system) and tell whoever is in it."""
        line = ChatLine(len(s.chat) + 1, self._clock(), author, text, visibility)
        s.chat.append(line)
        if not self._listeners:
            self._bus.skip()  # as emit() would, without building the payload
            return line
        self._bus.emit(ChatData(s.id, line.view()), self._queues.in_session(s))
        return line

    def end_session(self, s: Session, reason: str, *, by: str | None) -> None:
        """End ``s`` for everyone, whoever asked (the owner, the customer, a fallback)."""
        before = self._queues.begin(s)
        now = self._clock()
        for inv_id in s.invitations:
            self.invitations.pop(inv_id, None)
        s.invitations.clear()
        s.state = SessionState.ENDED
        s.ended_at = now
        s.end_reason = reason
        s.rule_deadline = None
        s.timeline.append(TimelineStep(now, StepKind.ENDED, by=by, note=reason))
        self._queues.retire(s)
        self._queues.commit(s, before)

    def withdraw_invitations(self, target: QueueRef) -> None:
        """Withdraw every invitation to ``target`` (a rep who is gone)."""
        for inv in [i for i in self.invitations.values() if i.target == target]:
            s = self._queues.live[inv.session]
            before = self._queues.begin(s)
            del s.invitations[inv.id]
            del self.invitations[inv.id]
            self._queues.commit(s, before)

    # --------------------------------------------------------------- checks

    def live(self, session_id: str) -> Session:
        s = self._queues.session(session_id)
        if s.state is SessionState.ENDED:
            raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
        return s

    def _owned(self, rep_id: str, session_id: str) -> Session:
        s = self.live(session_id)
        if rep_id != s.owner:
            if rep_id in s.participants:
                raise CommandError(Reason.NOT_OWNER, session_id=session_id)
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        return s

    def _check_capacity(self, rep: Rep) -> None:
        if self._queues.load(rep.id) >= rep.max_sessions:
            raise CommandError(Reason.AT_CAPACITY, max_sessions=rep.max_sessions)
