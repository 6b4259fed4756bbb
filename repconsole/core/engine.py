"""The queue engine: the one place that knows the truth about sessions.

The engine is sans-I/O.  It never sleeps, never reads the time (it calls the
clock it was given), never touches a socket or Qt.  Backends drive it:

* customers and reps call its command methods; a refused command raises
  :class:`~repconsole.core.errors.CommandError` and changes nothing;
* time-based rules (waiting-session rules, a dropped rep's grace period) fire
  when the backend calls :meth:`QueueEngine.advance`, which it does at
  :meth:`QueueEngine.next_deadline`;
* every change is announced as an :class:`Event` with a strictly increasing
  ``seq`` and the set of reps allowed to see it.

Accepting is atomic because the engine is single-threaded: a command runs
to completion before the next one starts, so "is it still waiting?" and
"it is mine now" can never be split by another rep's accept.
"""

from __future__ import annotations

import heapq
import random
import string
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from repconsole.core.clock import Clock
from repconsole.core.errors import CommandError, Reason
from repconsole.core.intake import Intake
from repconsole.protocol.events import (
    ChatData,
    EventData,
    KeyData,
    RepData,
    SessionData,
    TeamChatData,
    TeamReadData,
    kind_of,
)
from repconsole.protocol.views import SiteView, SnapshotData, TeamChatView
from repconsole.protocol.vocabulary import EventKind
from repconsole.core.model import (
    CUSTOMER,
    BrowserLink,
    ChatLine,
    Invitation,
    Issue,
    Origin,
    QueueKind,
    QueueRef,
    Rep,
    RepStatus,
    RuleAction,
    Session,
    SessionKey,
    SessionState,
    SiteConfig,
    StepKind,
    SupportButton,
    Team,
    TimelineStep,
    Visibility,
    WaitingRule,
)

__all__ = ["Event", "QueueEngine", "KEY_ALPHABET", "CHAT_LIMIT", "TEAM_CHAT_HISTORY"]

# Easy to read aloud over the phone: no 0/O, 1/I/L, 2/Z, 5/S, 8/B look-alikes.
KEY_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1IL2Z5S8B")
CHAT_LIMIT = 4000
ENDED_KEPT = 5000  # ended sessions kept whole; older ones are remembered by number only
TEAM_CHAT_HISTORY = 200
MAX_KEY_VALIDITY = 7 * 24 * 3600.0

NO_REPS: frozenset[str] = frozenset()


def _insert_sorted(values: list[int], value: int) -> None:
    """Add ``value`` to the sorted ``values`` unless it is there (a new ticket is the largest: an append)."""
    if not values or values[-1] < value:
        values.append(value)
        return
    i = bisect_left(values, value)
    if values[i] != value:
        values.insert(i, value)


def _remove_sorted(values: list[int], value: int) -> None:
    i = bisect_left(values, value)
    if i < len(values) and values[i] == value:
        del values[i]


@dataclass(slots=True)
class Event:
    """One change, as the engine announces it.

    Attributes:
        seq: strictly increasing across the engine's life.
        at: engine time of the change.
        data: the payload, a protocol Struct built once for every receiver;
            its type says what kind of event this is (:attr:`kind`).
        audience: the reps allowed to see ``data``.
        gone: reps who could see the session before this change and can't
            any more; their feeds get a ``session_gone`` instead of ``data``,
            so they learn that it left without learning where it went.
    """

    seq: int
    at: float
    data: EventData
    audience: frozenset[str]
    gone: frozenset[str] = NO_REPS

    @property
    def kind(self) -> EventKind:
        return kind_of(self.data)


# A timer is (deadline, order, kind, target): a plain tuple, because the heap
# compares them constantly and tuple comparison runs in C.  ``kind`` is
# "rule" (target: a session id) or "grace" (target: a rep id).
_Timer = tuple[float, int, str, str]


@dataclass(slots=True)
class _TeamChat:
    lines: list[ChatLine] = field(default_factory=list)
    count: int = 0
    # rep id -> number of the last line that rep has read
    last_read: dict[str, int] = field(default_factory=dict)


class QueueEngine:
    """Sessions, queues, reps and teams, and every rule that moves them.

    Attributes:
        site: site-wide settings (grace period, fallback queue, key length).
        reps, teams, issues, buttons, links: the site's directory, by id.
        seq: the sequence number of the last event emitted.
    """

    def __init__(self, clock: Clock, *, rng: random.Random | None = None, site: SiteConfig | None = None) -> None:
        self._clock = clock
        # Session keys must be unguessable in production: SystemRandom unless
        # a test or the simulator asks for a seeded, repeatable generator.
        self._rng = rng if rng is not None else random.SystemRandom()
        self.site = site or SiteConfig()
        self.reps: dict[str, Rep] = {}
        self.teams: dict[str, Team] = {}
        self.issues: dict[str, Issue] = {}
        self.buttons: dict[str, SupportButton] = {}
        self.links: dict[str, BrowserLink] = {}
        self.seq = 0
        self._listeners: list[Callable[[Event], None]] = []
        self._sessions: dict[str, Session] = {}
        self._ended: dict[str, Session] = {}
        self._session_counter = 0
        self._invitation_counter = 0
        self._invitations: dict[str, Invitation] = {}
        # Indexes, all maintained in _commit(): waiting sessions per queue in
        # arrival order, and the sessions each rep owns or takes part in.
        # Each entry into a queue draws a ticket from one counter, so tickets
        # increase in queue order; _unheld holds, sorted, the tickets of the
        # sessions not on hold, so that a customer's place in the queue is a
        # bisection, not a walk of the queue (see queue_position()).
        self._waiting: dict[QueueRef, dict[str, int]] = {}
        self._unheld: dict[QueueRef, list[int]] = {}
        self._tickets = 0
        self._waiting_count = 0  # sum of len() over _waiting, kept by _commit()
        self._involved: dict[str, set[str]] = {}
        # Get Next wants the oldest waiting session across several team
        # queues; a heap per team keeps that O(log n) at 100,000 sessions.
        # Entries go stale when a session leaves; they are skipped lazily.
        self._oldest: dict[str, list[tuple[float, str]]] = {}
        self._timers: list[_Timer] = []
        self._timer_order = 0
        self._keys: dict[str, SessionKey] = {}
        # (expires_at, key), soonest first: forgetting dead keys pops from
        # the front instead of scanning every key on every generate_key().
        self._key_expiry: list[tuple[float, str]] = []
        self._key_failures: dict[str, list[float]] = {}
        self._team_chat: dict[str, _TeamChat] = {}
        # Audience building blocks, see _members(): rep id -> {rep id}, team id -> members.
        self._alone: dict[str, frozenset[str]] = {}
        self._refs: dict[QueueRef, QueueRef] = {}
        self._team_members: dict[str, frozenset[str]] = {}
        self._everyone: frozenset[str] = frozenset()  # the audience of "rep" events: one set, shared

    # ------------------------------------------------------------------ setup

    def add_team(self, team_id: str, name: str, *, rule: WaitingRule | None = None, persistent: bool = False) -> Team:
        if team_id in self.teams:
            raise ValueError(f"duplicate team id {team_id!r}")
        team = Team(team_id, name, rule=rule, persistent=persistent)
        self.teams[team_id] = team
        self._team_chat[team_id] = _TeamChat()
        self._oldest[team_id] = []
        return team

    def add_rep(
        self, rep_id: str, name: str, teams: Iterable[str] = (), *, max_sessions: int | None = None, connected: bool = True
    ) -> Rep:
        if rep_id in self.reps:
            raise ValueError(f"duplicate rep id {rep_id!r}")
        if rep_id == CUSTOMER:
            raise ValueError(f"{CUSTOMER!r} is reserved")
        team_ids = set(teams)
        for t in team_ids:
            if t not in self.teams:
                raise ValueError(f"rep {rep_id!r}: unknown team {t!r}")
        rep = Rep(
            rep_id,
            name,
            team_ids,
            max_sessions=max_sessions if max_sessions is not None else self.site.max_sessions_default,
            connected=connected,
        )
        self.reps[rep_id] = rep
        self._involved[rep_id] = set()
        for t in team_ids:
            self.teams[t].members.add(rep_id)
        return rep

    def add_issue(self, code: str, name: str, category: str, team: str) -> Issue:
        if team not in self.teams:
            raise ValueError(f"issue {code!r}: unknown team {team!r}")
        issue = Issue(code, name, category, team)
        self.issues[code] = issue
        return issue

    def add_button(self, button_id: str, description: str, target: QueueRef, *, expires_at: float | None = None) -> SupportButton:
        self._check_target(target)
        button = SupportButton(button_id, description, target, expires_at)
        self.buttons[button_id] = button
        return button

    def add_link(self, link_id: str, name: str, target: QueueRef) -> BrowserLink:
        self._check_target(target)
        link = BrowserLink(link_id, name, target)
        self.links[link_id] = link
        return link

    def set_rule(self, team_id: str, rule: WaitingRule | None) -> None:
        team = self._team(team_id)
        if rule and rule.action is RuleAction.TRANSFER:
            self._team(rule.overflow_team or "")
        team.rule = rule

    # -------------------------------------------------------------- observing

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` with every event from now on.  Returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def now(self) -> float:
        return self._clock()

    def session(self, session_id: str) -> Session:
        """A live or recently ended session.

        Raises UNKNOWN_SESSION, or SESSION_ENDED for a session that ended
        so long ago that only its number is remembered.
        """
        s = self._sessions.get(session_id) or self._ended.get(session_id)
        if s is None:
            if self._was_issued(session_id):
                raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
            raise CommandError(Reason.UNKNOWN_SESSION, session_id=session_id)
        return s

    def _was_issued(self, session_id: object) -> bool:
        # Ids are "S<n>" from a counter, so any n up to the counter was a
        # session: no set of old ids has to be kept to recognise one.
        if not isinstance(session_id, str) or not session_id.startswith("S") or not session_id[1:].isdigit():
            return False
        return 0 < int(session_id[1:]) <= self._session_counter

    def sessions(self) -> Iterator[Session]:
        """Every session that has not ended."""
        return iter(self._sessions.values())

    def waiting_in(self, queue: QueueRef) -> list[Session]:
        return [self._sessions[sid] for sid in self._waiting.get(queue, ())]

    def queue_count(self, queue: QueueRef) -> int:
        return len(self._waiting.get(queue, ()))

    def queue_position(self, session_id: str) -> int | None:
        """Where a waiting session stands in its queue: 1 + the sessions ahead of
        it that are not on hold.  None if it is not waiting.  O(log n)."""
        s = self._sessions.get(session_id)
        if s is None or s.queue is None:
            return None
        ticket = self._waiting.get(s.queue, {}).get(session_id)
        if ticket is None:
            return None
        return bisect_left(self._unheld.get(s.queue, ()), ticket) + 1

    def waiting_total(self) -> int:
        """Sessions waiting in any queue, held ones included."""
        return self._waiting_count

    def involved(self, rep_id: str) -> set[str]:
        """Ids of the live sessions ``rep_id`` owns or takes part in."""
        return set(self._involved.get(rep_id, ()))

    def load(self, rep_id: str) -> int:
        """Sessions that count against a rep's maximum: every live one they own or take part in.

        Held sessions and sessions the rep stayed on after a transfer count
        too: someone else's action (the owner resuming, the receiver
        accepting) makes them active again without asking this rep, so their
        place must stay reserved or that action would push the rep over.
        """
        return len(self._involved.get(rep_id, ()))

    def keys_of(self, rep_id: str) -> list[SessionKey]:
        now = self._clock()
        return [k for k in self._keys.values() if k.rep == rep_id and k.used_by is None and k.expires_at > now]

    def audience(self, s: Session) -> frozenset[str]:
        """The reps allowed to see session ``s`` right now.

        That is the members of the queue it waits in, its owner and
        participants, and the members of the queues its invitations wait in.
        Nobody else: not the members of a team it passed through earlier.
        """
        if s.state is SessionState.ENDED:
            return NO_REPS
        q = s.queue
        if not s.participants and not s.invitations:
            # The common cases - waiting in a queue, or one rep working it (or
            # holding it in their own queue) - come from the cache, unmerged.
            if s.owner is None:
                return self._members(q) if q is not None else NO_REPS
            if q is None or (q.kind is QueueKind.PERSONAL and q.id == s.owner):
                return self._only(s.owner)
        reps: set[str] = set(s.participants)
        if s.owner is not None:
            reps.add(s.owner)
        if s.queue is not None:
            reps |= self._members(s.queue)
        for inv in s.invitations.values():
            reps |= self._members(inv.target)
        return frozenset(reps)

    def may_see(self, rep_id: str, s: Session) -> bool:
        return rep_id in self.audience(s)

    def snapshot(self, rep_id: str) -> SnapshotData:
        """Everything ``rep_id`` may see, as of event ``seq``.

        A console starts from this and then applies every event after
        ``seq``.  Sessions the rep takes part in carry their chat.
        """
        rep = self._rep(rep_id)
        visible: dict[str, Session] = {}
        queues = [QueueRef.personal(rep_id)] + [QueueRef.team(t) for t in sorted(rep.teams)]
        for q in queues:
            for sid in self._waiting.get(q, ()):
                visible[sid] = self._sessions[sid]
        for sid in self._involved.get(rep_id, ()):
            visible[sid] = self._sessions[sid]
        for inv in self._invitations.values():
            if rep_id in self._members(inv.target):
                visible[inv.session] = self._sessions[inv.session]
        involved = self._involved.get(rep_id, set())
        return SnapshotData(
            seq=self.seq,
            at=self._clock(),
            you=rep.view(),
            site=SiteView(self.site.grace_period),
            reps=[r.view() for r in self.reps.values()],
            teams=[t.view() for t in self.teams.values()],
            sessions=[s.view(chat=s.id in involved) for s in visible.values()],
            team_chat={
                t: TeamChatView(
                    lines=[line.view() for line in self._team_chat[t].lines],
                    last_read=self._team_chat[t].last_read.get(rep_id, 0),
                    count=self._team_chat[t].count,
                )
                for t in sorted(rep.teams)
            },
            keys=[k.view() for k in self.keys_of(rep_id)],
        )

    # ------------------------------------------------------------- customers

    def start_with_key(self, key: str, intake: Intake, *, source: str = "") -> Session:
        """A customer types a session key; they join the personal queue of the rep who made it.

        ``source`` identifies the caller (an address) for rate limiting:
        a 7-character key has little entropy, so wrong guesses are counted.
        """
        now = self._clock()
        failures = self._key_failures.get(source)
        if failures:
            failures[:] = [t for t in failures if t > now - 60.0]
            if len(failures) >= self.site.key_failures_per_minute:
                raise CommandError(Reason.KEY_RATE_LIMITED)
        normalized = "".join(ch for ch in key.upper() if ch.isalnum())
        record = self._keys.get(normalized)
        reason: Reason | None = None
        if record is None:
            reason = Reason.KEY_UNKNOWN
        elif record.used_by is not None:
            reason = Reason.KEY_USED
        elif record.expires_at <= now:
            reason = Reason.KEY_EXPIRED
        if reason is not None:
            self._key_failures.setdefault(source, []).append(now)
            raise CommandError(reason)
        assert record is not None
        # The key goes in before the arrival is announced: consoles mirror the event.
        s = self._arrive(Origin.SESSION_KEY, intake, QueueRef.personal(record.rep), source=normalized, session_key=normalized)
        record.used_by = s.id
        self._emit(KeyData(record.view()), frozenset((record.rep,)))
        return s

    def start_with_rep(self, rep_id: str, intake: Intake) -> Session:
        """The customer picked a rep's name on the public support site."""
        rep = self._rep(rep_id)
        if not rep.connected:
            raise CommandError(Reason.REP_OFFLINE, rep=rep_id)
        return self._arrive(Origin.REP_PICKED, intake, QueueRef.personal(rep_id), source=rep_id)

    def start_with_button(self, button_id: str, intake: Intake) -> Session:
        button = self.buttons.get(button_id)
        if button is None:
            raise CommandError(Reason.UNKNOWN_BUTTON, button=button_id)
        if button.expires_at is not None and button.expires_at <= self._clock():
            raise CommandError(Reason.BUTTON_EXPIRED, button=button_id)
        origin = Origin.REP_BUTTON if button.target.is_personal else Origin.TEAM_BUTTON
        return self._arrive(origin, intake, button.target, source=button.description)

    def start_with_issue(self, issue_code: str, intake: Intake) -> Session:
        """The issue submission form: the team that owns the issue gets the customer."""
        issue = self.issues.get(issue_code)
        if issue is None:
            raise CommandError(Reason.UNKNOWN_ISSUE, issue=issue_code)
        return self._arrive(Origin.ISSUE_FORM, intake, QueueRef.team(issue.team), source=issue.code, issue=issue)

    def start_browser(self, link_id: str, intake: Intake, *, page_url: str = "", page_html: str = "") -> Session:
        """A help link on the customer's web page: a browser-sharing session."""
        link = self.links.get(link_id)
        if link is None:
            raise CommandError(Reason.UNKNOWN_LINK, link=link_id)
        origin = Origin.BROWSER_REP if link.target.is_personal else Origin.BROWSER_TEAM
        s = self._arrive(origin, intake, link.target, source=link.name, page_url=page_url, page_html=page_html)
        return s

    def customer_say(self, session_id: str, text: str) -> ChatLine:
        s = self._live(session_id)
        return self._chat(s, CUSTOMER, self._text(text), Visibility.ALL)

    def customer_leave(self, session_id: str) -> None:
        """The customer closed their window or gave up waiting."""
        s = self._live(session_id)
        self._end(s, "customer left", by=None)

    # ------------------------------------------------------------------ reps

    def accept(self, rep_id: str, session_id: str) -> Session:
        """Take a waiting session.  Exactly one rep wins; the rest learn who did."""
        rep = self._rep(rep_id)
        s = self.session(session_id)
        if s.state is SessionState.ENDED:
            raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
        if s.state is SessionState.ACTIVE:
            if rep_id == s.owner:
                raise CommandError(Reason.ALREADY_IN_SESSION, "You already own this session.", session_id=session_id)
            # Say who won only to a rep who could have taken it; anyone else
            # learns nothing about a session they were never shown.
            last = self._last_queue(s)
            if rep_id in s.participants or (last is not None and rep_id in self._members(last)):
                by = self.reps[s.owner].name if s.owner in self.reps else s.owner
                raise CommandError(Reason.ALREADY_TAKEN, f"Already taken by {by}.", by=s.owner, session_id=session_id)
            raise CommandError(Reason.NOT_MEMBER, session_id=session_id)
        assert s.queue is not None
        if rep_id not in self._members(s.queue):
            raise CommandError(Reason.NOT_MEMBER, session_id=session_id)
        if rep_id != s.owner and rep_id not in s.participants:
            # Resuming or taking back one's own session needs no new slot.
            self._check_capacity(rep)
        before = self._begin(s)
        resumed = s.held
        s.participants.pop(rep_id, None)
        s.state = SessionState.ACTIVE
        s.owner = rep_id
        s.queue = None
        s.held = False
        s.overdue = False
        s.rule_deadline = None
        now = self._clock()
        s.timeline.append(TimelineStep(now, StepKind.ACCEPTED, by=rep_id))
        self._commit(s, before)
        verb = "resumed the session" if resumed else "accepted the session"
        self._chat(s, None, f"{rep.name} {verb}.", Visibility.ALL)
        return s

    def accept_invitation(self, rep_id: str, invitation_id: str) -> Session:
        """Join a shared session as a participant."""
        rep = self._rep(rep_id)
        inv = self._invitations.get(invitation_id)
        if inv is None:
            raise CommandError(Reason.UNKNOWN_INVITATION, invitation_id=invitation_id)
        if rep_id not in self._members(inv.target):
            raise CommandError(Reason.NOT_MEMBER, invitation_id=invitation_id)
        s = self._sessions[inv.session]
        if rep_id == s.owner or rep_id in s.participants:
            raise CommandError(Reason.ALREADY_IN_SESSION, session_id=s.id)
        self._check_capacity(rep)
        before = self._begin(s)
        del s.invitations[invitation_id]
        del self._invitations[invitation_id]
        now = self._clock()
        s.participants[rep_id] = now
        s.timeline.append(TimelineStep(now, StepKind.JOINED, by=rep_id))
        self._commit(s, before)
        self._chat(s, None, f"{rep.name} joined the session.", Visibility.ALL)
        return s

    def get_next(self, rep_id: str) -> Session:
        """Accept the longest-waiting session across the rep's team queues."""
        rep = self._rep(rep_id)
        best: tuple[float, str] | None = None
        for team_id in rep.teams:
            heap = self._oldest[team_id]
            q = QueueRef.team(team_id)
            while heap:
                created, sid = heap[0]
                s = self._sessions.get(sid)
                if s is not None and s.state is SessionState.WAITING and s.queue == q:
                    break
                heapq.heappop(heap)
            if heap and (best is None or heap[0] < best):
                best = heap[0]
        if best is None:
            raise CommandError(Reason.NOTHING_WAITING)
        return self.accept(rep_id, best[1])

    def transfer(self, rep_id: str, session_id: str, target: QueueRef, note: str = "", *, stay: bool = False) -> Session:
        """Hand the session to a rep or a team, with a note pinned for the receiver."""
        rep = self._rep(rep_id)
        s = self._owned(rep_id, session_id)
        self._check_target(target)
        if target == QueueRef.personal(rep_id):
            raise CommandError(Reason.INVALID, "You cannot transfer a session to yourself.")
        self._check_reachable(target)
        note = self._text(note, allow_empty=True)
        before = self._begin(s)
        now = self._clock()
        s.owner = None
        s.held = False
        if stay:
            s.participants[rep_id] = now
        if target.is_personal:
            s.participants.pop(target.id, None)
        s.transfer_note = note
        self._enqueue(s, target, StepKind.TRANSFERRED, by=rep_id, note=note)
        self._commit(s, before)
        where = self._queue_name(target)
        self._chat(s, None, f"{rep.name} transferred the session to {where}." + (f" Note: {note}" if note else ""), Visibility.REPS)
        return s

    def share(self, rep_id: str, session_id: str, target: QueueRef) -> Invitation:
        """Invite a rep or a team to join.  The owner keeps ownership."""
        rep = self._rep(rep_id)
        s = self._owned(rep_id, session_id)
        self._check_target(target)
        if target.is_personal and (target.id == s.owner or target.id in s.participants):
            raise CommandError(Reason.ALREADY_IN_SESSION, rep=target.id)
        self._check_reachable(target)
        for inv in s.invitations.values():
            if inv.target == target:
                return inv  # inviting twice is one invitation
        before = self._begin(s)
        now = self._clock()
        self._invitation_counter += 1
        target = self._ref(target)
        inv = Invitation(f"I{self._invitation_counter}", s.id, target, rep_id, now)
        s.invitations[inv.id] = inv
        self._invitations[inv.id] = inv
        s.timeline.append(TimelineStep(now, StepKind.SHARED, queue=target, by=rep_id))
        self._commit(s, before)
        self._chat(s, None, f"{rep.name} invited {self._queue_name(target)} to join.", Visibility.REPS)
        return inv

    def hold(self, rep_id: str, session_id: str) -> Session:
        """Park the session in the owner's personal queue; participants stay."""
        rep = self._rep(rep_id)
        s = self._owned(rep_id, session_id)
        if s.held:
            raise CommandError(Reason.INVALID, "The session is already on hold.")
        before = self._begin(s)
        s.held = True
        self._enqueue(s, QueueRef.personal(rep_id), StepKind.HELD, by=rep_id)
        self._commit(s, before)
        self._chat(s, None, f"{rep.name} put the session on hold.", Visibility.ALL)
        return s

    def end(self, rep_id: str, session_id: str) -> Session:
        """End the session for everyone (owner only)."""
        rep = self._rep(rep_id)
        s = self._owned(rep_id, session_id)
        self._end(s, f"ended by {rep.name}", by=rep_id)
        return s

    def leave(self, rep_id: str, session_id: str) -> Session:
        """A participant leaves; the session goes on without them."""
        rep = self._rep(rep_id)
        s = self._live(session_id)
        if rep_id == s.owner:
            raise CommandError(Reason.INVALID, "The owner ends or transfers the session instead of leaving it.")
        if rep_id not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        before = self._begin(s)
        del s.participants[rep_id]
        s.timeline.append(TimelineStep(self._clock(), StepKind.LEFT, by=rep_id))
        self._commit(s, before)
        self._chat(s, None, f"{rep.name} left the session.", Visibility.ALL)
        return s

    def say(self, rep_id: str, session_id: str, text: str, *, reps_only: bool = False) -> ChatLine:
        self._rep(rep_id)
        s = self._live(session_id)
        if rep_id != s.owner and rep_id not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        return self._chat(s, rep_id, self._text(text), Visibility.REPS if reps_only else Visibility.ALL)

    def set_external_key(self, rep_id: str, session_id: str, external_key: str) -> Session:
        self._rep(rep_id)
        s = self._live(session_id)
        if rep_id != s.owner and rep_id not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        if not isinstance(external_key, str) or len(external_key) > 100:
            raise CommandError(Reason.INVALID, "external_key must be text of at most 100 characters")
        before = self._begin(s)
        s.external_key = external_key
        self._commit(s, before)
        return s

    def generate_key(self, rep_id: str, valid_for: float) -> SessionKey:
        """A one-time session key that brings a customer to this rep's personal queue.

        ``valid_for`` limits when a session may *start* with the key, not
        how long that session may last.
        """
        self._rep(rep_id)
        if not isinstance(valid_for, (int, float)) or not 0 < valid_for <= MAX_KEY_VALIDITY:
            raise CommandError(Reason.INVALID, f"valid_for must be between 0 and {MAX_KEY_VALIDITY:.0f} seconds")
        now = self._clock()
        self._forget_dead_keys(now)
        while True:
            key = "".join(self._rng.choice(KEY_ALPHABET) for _ in range(self.site.key_length))
            if key not in self._keys:
                break
        record = SessionKey(key, rep_id, now, now + float(valid_for))
        self._keys[key] = record
        heapq.heappush(self._key_expiry, (record.expires_at, key))
        self._emit(KeyData(record.view()), frozenset((rep_id,)))
        return record

    def set_status(self, rep_id: str, status: RepStatus) -> Rep:
        rep = self._rep(rep_id)
        try:
            rep.status = RepStatus(status)
        except ValueError:
            raise CommandError(Reason.INVALID, f"unknown status {status!r}") from None
        self._emit_rep(rep)
        return rep

    def team_say(self, rep_id: str, team_id: str, text: str) -> ChatLine:
        self._rep(rep_id)
        team = self._team(team_id)
        if rep_id not in team.members:
            raise CommandError(Reason.NOT_MEMBER, team=team_id)
        # Check the text before counting the line: a refusal changes nothing.
        text = self._text(text)
        chat = self._team_chat[team_id]
        chat.count += 1
        line = ChatLine(chat.count, self._clock(), rep_id, text)
        chat.lines.append(line)
        del chat.lines[:-TEAM_CHAT_HISTORY]
        # The author has read their own line.
        chat.last_read[rep_id] = chat.count
        self._emit(TeamChatData(team_id, line.view()), frozenset(team.members))
        return line

    def team_read(self, rep_id: str, team_id: str, upto: int | None = None) -> int:
        """Mark a team's chat read up to line ``upto`` (default: all of it)."""
        self._rep(rep_id)
        team = self._team(team_id)
        if rep_id not in team.members:
            raise CommandError(Reason.NOT_MEMBER, team=team_id)
        chat = self._team_chat[team_id]
        n = chat.count if upto is None else max(0, min(int(upto), chat.count))
        if n > chat.last_read.get(rep_id, 0):
            chat.last_read[rep_id] = n
            self._emit(TeamReadData(team_id, n), frozenset((rep_id,)))
        return chat.last_read.get(rep_id, 0)

    # ------------------------------------------------------------- presence

    def rep_disconnected(self, rep_id: str) -> None:
        """The rep's console went silent.  Their sessions wait out the grace period."""
        rep = self._rep(rep_id)
        if not rep.connected:
            return
        rep.connected = False
        rep.grace_until = self._clock() + self.site.grace_period
        self._add_timer(rep.grace_until, "grace", rep_id)
        self._emit_rep(rep)

    def rep_connected(self, rep_id: str) -> None:
        """The rep is back.  Within the grace period they keep everything."""
        rep = self._rep(rep_id)
        if rep.connected:
            return
        rep.connected = True
        rep.grace_until = None
        self._emit_rep(rep)

    # ----------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When :meth:`advance` next has something to do, or None."""
        return self._timers[0][0] if self._timers else None

    def advance(self) -> int:
        """Fire every timer that is due at the clock's current time.  Returns how many fired."""
        now = self._clock()
        fired = 0
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, target = heapq.heappop(self._timers)
            if kind == "rule":
                fired += self._fire_rule(deadline, target)
            elif kind == "grace":
                fired += self._fire_grace(deadline, target)
        return fired

    # ------------------------------------------------------------- internals

    def _emit(self, data: EventData, audience: frozenset[str], gone: frozenset[str] = NO_REPS) -> None:
        self.seq += 1
        if not self._listeners:
            return
        event = Event(self.seq, self._clock(), data, audience, gone)
        for listener in self._listeners:
            listener(event)

    def _emit_rep(self, rep: Rep) -> None:
        # The directory of reps (status, presence) is shared by everyone on
        # the site: it is what the transfer and share pickers list.
        # One shared set: a new one per event would be kept by every event in
        # the resume ring (O(reps) each: 64 KiB with 2,000 reps).  Reps only join.
        if len(self._everyone) != len(self.reps):
            self._everyone = frozenset(self.reps)
        self._emit(RepData(rep.view()), self._everyone)

    def _begin(self, s: Session) -> tuple[frozenset[str], QueueRef | None, frozenset[str], float]:
        """Remember what a change may invalidate; pair with :meth:`_commit`."""
        # The old audience only serves to compute ``gone`` for listeners.
        audience = self.audience(s) if self._listeners else NO_REPS
        return audience, s.queue, self._in_session(s), s.queue_entered_at

    def _in_session(self, s: Session) -> frozenset[str]:
        """The owner and participants (most sessions have no participant: no merging then)."""
        if not s.participants:
            return self._only(s.owner) if s.owner else NO_REPS
        return frozenset(s.participants) | ({s.owner} if s.owner else NO_REPS)

    def _commit(self, s: Session, before: tuple[frozenset[str], QueueRef | None, frozenset[str], float]) -> None:
        """Bring every index up to date with ``s`` and announce the change."""
        old_audience, old_queue, old_involved, old_entered = before
        if s.state is SessionState.ENDED:
            s.queue = None
        if old_entered != s.queue_entered_at or (old_queue is not s.queue and old_queue != s.queue):
            if old_queue is not None:
                ticket = self._waiting[old_queue].pop(s.id, None)
                if ticket is not None:
                    self._waiting_count -= 1
                    _remove_sorted(self._unheld[old_queue], ticket)
            if s.queue is not None:
                waiting = self._waiting.setdefault(s.queue, {})
                if s.id not in waiting:
                    self._waiting_count += 1
                    self._tickets += 1
                    waiting[s.id] = self._tickets  # the largest yet: last in the queue
                if s.queue.kind is QueueKind.TEAM:
                    heapq.heappush(self._oldest[s.queue.id], (s.created_at, s.id))
        if s.queue is not None:
            ticket = self._waiting[s.queue].get(s.id)
            if ticket is not None:
                unheld = self._unheld.setdefault(s.queue, [])
                if s.held:
                    _remove_sorted(unheld, ticket)
                else:
                    _insert_sorted(unheld, ticket)
        involved = NO_REPS if s.state is SessionState.ENDED else self._in_session(s)
        if involved != old_involved:
            for rep_id in old_involved - involved:
                self._involved[rep_id].discard(s.id)
            for rep_id in involved - old_involved:
                self._involved[rep_id].add(s.id)
        if not self._listeners:
            self.seq += 1  # nobody to tell, but the numbering still moves
            return
        audience = self.audience(s)
        # Audiences come from a cache in the common cases: often the very same set.
        gone = NO_REPS if old_audience is audience or not old_audience else old_audience - audience
        self._emit(SessionData(s.view()), audience, gone)

    def _arrive(self, origin: Origin, intake: Intake, queue: QueueRef, *, source: str, issue: Issue | None = None,
                page_url: str = "", page_html: str = "", session_key: str = "") -> Session:
        if not isinstance(intake, Intake):
            raise CommandError(Reason.INVALID, "intake is required")
        now = self._clock()
        self._session_counter += 1
        s = Session(
            id=f"S{self._session_counter}",
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
        self._sessions[s.id] = s
        before = (NO_REPS, None, frozenset(), 0.0)
        self._enqueue(s, queue, StepKind.ARRIVED, note=origin.label)
        self._commit(s, before)
        return s

    def _enqueue(self, s: Session, queue: QueueRef, kind: StepKind, *, by: str | None = None, note: str = "") -> None:
        now = self._clock()
        queue = self._ref(queue)
        s.state = SessionState.WAITING
        s.queue = queue
        s.queue_entered_at = now
        s.overdue = False
        s.rule_deadline = None
        s.timeline.append(TimelineStep(now, kind, queue=queue, by=by, note=note))
        if queue.kind is QueueKind.TEAM and not s.held:
            rule = self.teams[queue.id].rule
            if rule is not None:
                s.rule_deadline = now + rule.after
                self._add_timer(s.rule_deadline, "rule", s.id)

    def _end(self, s: Session, reason: str, *, by: str | None) -> None:
        before = self._begin(s)
        now = self._clock()
        for inv_id in s.invitations:
            self._invitations.pop(inv_id, None)
        s.invitations.clear()
        s.state = SessionState.ENDED
        s.ended_at = now
        s.end_reason = reason
        s.rule_deadline = None
        s.timeline.append(TimelineStep(now, StepKind.ENDED, by=by, note=reason))
        del self._sessions[s.id]
        self._ended[s.id] = s
        if len(self._ended) > ENDED_KEPT:
            # Ended sessions are history (the server keeps them in its
            # database); holding every one would grow memory, and the cost
            # of each full garbage collection, for the whole shift.
            del self._ended[next(iter(self._ended))]
        self._commit(s, before)

    def _chat(self, s: Session, author: str | None, text: str, visibility: Visibility) -> ChatLine:
        line = ChatLine(len(s.chat) + 1, self._clock(), author, text, visibility)
        s.chat.append(line)
        if not self._listeners:
            self.seq += 1  # as _emit() would, without building the payload
            return line
        self._emit(ChatData(s.id, line.view()), self._in_session(s))
        return line

    def _fire_rule(self, deadline: float, session_id: str) -> int:
        s = self._sessions.get(session_id)
        # A timer is stale unless the session still waits for exactly this deadline.
        if s is None or s.state is not SessionState.WAITING or s.rule_deadline != deadline:
            return 0
        assert s.queue is not None and s.queue.kind is QueueKind.TEAM
        team = self.teams[s.queue.id]
        rule = team.rule
        if rule is None:
            return 0
        before = self._begin(s)
        now = self._clock()
        target = rule.overflow_team if rule.action is RuleAction.TRANSFER else None
        if target is not None and target != team.id and target not in s.rule_visited and target in self.teams:
            s.rule_visited.add(team.id)
            self._enqueue(s, QueueRef.team(target), StepKind.RULE_TRANSFERRED, note=f"waited {rule.after:.0f}s in {team.name}")
        else:
            # Marking instead of transferring is also the ping-pong guard: a
            # rule never sends a session back to a team a rule moved it out of.
            s.overdue = True
            s.rule_deadline = None
            s.timeline.append(TimelineStep(now, StepKind.RULE_OVERDUE, queue=s.queue, note=f"waited {rule.after:.0f}s"))
        self._commit(s, before)
        return 1

    def _fire_grace(self, deadline: float, rep_id: str) -> int:
        rep = self.reps.get(rep_id)
        if rep is None or rep.connected or rep.grace_until != deadline:
            return 0
        rep.grace_until = None
        personal = QueueRef.personal(rep.id)
        # Invitations to a rep who is gone are withdrawn.
        for inv in [i for i in self._invitations.values() if i.target == personal]:
            s = self._sessions[inv.session]
            before = self._begin(s)
            del s.invitations[inv.id]
            del self._invitations[inv.id]
            self._commit(s, before)
        for sid in sorted(self._involved[rep.id] | set(self._waiting.get(personal, ()))):
            s = self._sessions.get(sid)
            if s is None:
                continue
            if rep.id in s.participants:
                before = self._begin(s)
                del s.participants[rep.id]
                s.timeline.append(TimelineStep(self._clock(), StepKind.LEFT, by=rep.id, note="connection lost"))
                self._commit(s, before)
            else:
                self._fall_back(s, rep)
        self._emit_rep(rep)
        return 1

    def _fall_back(self, s: Session, lost: Rep) -> None:
        """Where a dropped rep's session goes, in BeyondTrust's documented order."""
        before = self._begin(s)
        now = self._clock()
        note = f"{lost.name} lost connection"
        # 1. The connected rep who has shared it longest takes it over.
        heir = next((r for r in s.participants if self.reps[r].connected), None)
        if heir is not None:
            del s.participants[heir]
            s.owner = heir
            s.state = SessionState.ACTIVE
            s.queue = None
            s.held = False
            s.timeline.append(TimelineStep(now, StepKind.CONNECTION_LOST, by=heir, note=f"{note}; {self.reps[heir].name} took over"))
            self._commit(s, before)
            self._chat(s, None, f"{note}. {self.reps[heir].name} is now the owner.", Visibility.ALL)
            return
        # 2. The last queue it was in, 3. the queue it first entered, 4. the
        # site's fallback queue: the first of them that someone can serve.
        candidates = [self._last_queue(s, excluding=lost.id), s.first_queue, self.site.fallback_queue]
        target = next((q for q in candidates if q is not None and self._can_serve(q, lost.id)), None)
        if target is None:
            # 5. Nowhere to go: end it, and tell the customer why.
            self._chat(s, None, "Your representative lost connection and no one else is available. Please try again.", Visibility.ALL)
            self._end(s, "representative lost connection", by=None)
            return
        s.owner = None
        s.held = False
        self._enqueue(s, target, StepKind.CONNECTION_LOST, note=note)
        self._commit(s, before)
        self._chat(s, None, "Your representative lost connection. You are back in the queue; the next available representative will help you.", Visibility.ALL)

    def _can_serve(self, q: QueueRef, lost: str) -> bool:
        if q.is_personal:
            return q.id != lost and q.id in self.reps and self.reps[q.id].connected
        team = self.teams.get(q.id)
        if team is None:
            return False
        # A persistent queue keeps sessions even with no member logged in.
        return team.persistent or any(self.reps[m].connected for m in team.members if m != lost)

    def _last_queue(self, s: Session, excluding: str | None = None) -> QueueRef | None:
        for step in reversed(s.timeline):
            q = step.queue
            if q is not None and step.kind is not StepKind.SHARED and not (q.is_personal and q.id == excluding):
                return q
        return None

    def _add_timer(self, deadline: float, kind: str, target: str) -> None:
        self._timer_order += 1
        heapq.heappush(self._timers, (deadline, self._timer_order, kind, target))

    def _forget_dead_keys(self, now: float) -> None:
        # Used and expired keys are kept for a day so that a late customer is
        # told "expired" or "used" rather than "unknown".
        expiry = self._key_expiry
        while expiry and expiry[0][0] < now - 86400.0:
            self._keys.pop(heapq.heappop(expiry)[1], None)

    def _members(self, q: QueueRef) -> frozenset[str]:
        """Who may take from queue ``q``.  Cached: audiences ask for it on every change."""
        if q.kind is QueueKind.PERSONAL:
            return self._only(q.id)
        team = self.teams.get(q.id)
        if team is None:
            return NO_REPS
        members = self._team_members.get(q.id)
        # Members only ever join (add_rep), so a size check keeps the cache true.
        if members is None or len(members) != len(team.members):
            members = self._team_members[q.id] = frozenset(team.members)
        return members

    def _ref(self, q: QueueRef) -> QueueRef:
        """The engine's one QueueRef for this queue (they are immutable).

        Sessions and their timelines point at it instead of each holding a
        copy: less memory per waiting session, fewer objects for the garbage
        collector to walk, and identity checks that usually settle equality.
        """
        return self._refs.setdefault(q, q)

    def _only(self, rep_id: str) -> frozenset[str]:
        """``frozenset({rep_id})``, made once per rep."""
        alone = self._alone.get(rep_id)
        if alone is None:
            alone = self._alone[rep_id] = frozenset((rep_id,))
        return alone

    def _queue_name(self, q: QueueRef) -> str:
        if q.is_personal:
            return self.reps[q.id].name
        return f"team {self.teams[q.id].name}"

    def _rep(self, rep_id: str) -> Rep:
        rep = self.reps.get(rep_id) if isinstance(rep_id, str) else None
        if rep is None:
            raise CommandError(Reason.UNKNOWN_REP, rep=rep_id)
        return rep

    def _team(self, team_id: str) -> Team:
        team = self.teams.get(team_id) if isinstance(team_id, str) else None
        if team is None:
            raise CommandError(Reason.UNKNOWN_TEAM, team=team_id)
        return team

    def _check_target(self, target: QueueRef) -> None:
        if not isinstance(target, QueueRef):
            raise CommandError(Reason.INVALID, "target must be a queue")
        if target.is_personal:
            self._rep(target.id)
        else:
            self._team(target.id)

    def _check_reachable(self, target: QueueRef) -> None:
        # A rep who is not connected would never see it, and no fallback ever
        # runs for them again: the customer would wait forever.  Same rule as
        # picking a rep on the public site.
        if target.is_personal and not self.reps[target.id].connected:
            raise CommandError(Reason.REP_OFFLINE, rep=target.id)

    def _check_capacity(self, rep: Rep) -> None:
        if self.load(rep.id) >= rep.max_sessions:
            raise CommandError(Reason.AT_CAPACITY, max_sessions=rep.max_sessions)

    def _live(self, session_id: str) -> Session:
        s = self.session(session_id)
        if s.state is SessionState.ENDED:
            raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
        return s

    def _owned(self, rep_id: str, session_id: str) -> Session:
        s = self._live(session_id)
        if rep_id != s.owner:
            if rep_id in s.participants:
                raise CommandError(Reason.NOT_OWNER, session_id=session_id)
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        return s

    @staticmethod
    def _text(text: str, *, allow_empty: bool = False) -> str:
        if not isinstance(text, str):
            raise CommandError(Reason.INVALID, "text must be a string")
        text = text.strip()
        if not text and not allow_empty:
            raise CommandError(Reason.INVALID, "empty message")
        if len(text) > CHAT_LIMIT:
            raise CommandError(Reason.INVALID, f"message longer than {CHAT_LIMIT} characters")
        return text
