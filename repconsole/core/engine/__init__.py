"""The queue engine: the one place that knows the truth about sessions.

The engine is sans-I/O.  It never sleeps, never reads the time (it calls the
clock it was given), never touches a socket or Qt.  Backends drive it:

* customers and reps call its command methods; a refused command raises
  :class:`~repconsole.core.errors.CommandError` and changes nothing;
* time-based rules (waiting-session rules, a dropped rep's grace period,
  offer deadlines, the end of a rep's pause of offers) fire when the
  backend calls :meth:`QueueEngine.advance`, which it does at
  :meth:`QueueEngine.next_deadline`;
* every change is announced as an :class:`Event` with a strictly increasing
  ``seq`` and the set of reps allowed to see it.

:class:`QueueEngine` is the engine's whole public surface.  It owns a few
small parts, each with one responsibility, and forwards each command to the
part that does it (see ``docs/architecture.md`` for the map):

========================  ==================================================
``events.EventBus``       listeners and the ``seq`` numbering
``directory.Directory``   reps, teams, issues, buttons, links; audience sets
``queues.Queues``         the sessions, waiting indexes, positions, Get Next,
                          audiences; ``begin``/``commit`` keep them true
``sessions.SessionDesk``  arrive, accept, share, transfer, hold, end, chat
``starts.Starts``         session keys and every way a customer comes in
``rules.WaitingRules``    waiting-session rules
``presence.Presence``     status, connection, grace period and fallback
``teamchat.TeamChats``    team chat and read markers
``routing.Router``        auto-assignment: offers, capacity, wait estimates
``outlook.Outlook``       what wait estimates play forward from (session lengths)
``timers.Timers``         the deadlines :meth:`QueueEngine.advance` fires
``snapshots``             a rep's snapshot part by part, exact as of its seq
========================  ==================================================

Parts are collaborating objects, not mixins: each is given the few others
it uses, so what a part may touch is written in its constructor, and no
part can reach into another's state by sharing ``self``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Concatenate, ParamSpec, TypeVar

import msgspec

from repconsole.core.clock import Clock
from repconsole.core.engine import follow
from repconsole.core.engine.chat import CHAT_LIMIT
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import Event, EventBus
from repconsole.core.engine.presence import Presence
from repconsole.core.engine.queues import NOTHING, Queues
from repconsole.core.engine.routing import Offer, Router
from repconsole.core.engine.rules import WaitingRules
from repconsole.core.engine.saved import Counters, DirectoryState, EngineChanges, EngineState, RepState
from repconsole.core.engine.sessions import SessionDesk
from repconsole.core.engine.snapshots import SnapshotCursor
from repconsole.core.engine.starts import KEY_ALPHABET, MAX_KEY_VALIDITY, Starts
from repconsole.core.engine.teamchat import TEAM_CHAT_HISTORY, TeamChat, TeamChats
from repconsole.core.engine.timers import Timers
from repconsole.core.estimate import WaitEstimate
from repconsole.core.intake import Intake
from repconsole.core.model import (
    CUSTOMER,
    BrowserLink,
    ChatLine,
    Invitation,
    Issue,
    QueueRef,
    Rep,
    RepStatus,
    RoutingMode,
    Session,
    SessionKey,
    SessionState,
    SiteConfig,
    SupportButton,
    Team,
    WaitingRule,
)
from repconsole.protocol.views import SessionView, SiteView, SnapshotData, TeamChatView

__all__ = [
    "CHAT_LIMIT",
    "KEY_ALPHABET",
    "MAX_KEY_VALIDITY",
    "TEAM_CHAT_HISTORY",
    "Counters",
    "DirectoryState",
    "EngineChanges",
    "EngineState",
    "Event",
    "Offer",
    "QueueEngine",
    "RepState",
    "SnapshotCursor",
    "TeamChat",
    "WaitEstimate",
]

# Ended sessions kept whole; older ones are remembered by number only.
# Read when an engine is made (so a test may lower it first).
ENDED_KEPT = 5000

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _then_route(method: Callable[Concatenate[QueueEngine, _P], _R]) -> Callable[Concatenate[QueueEngine, _P], _R]:
    """Run the command, then auto-assignment for every team whose capacity or queue it changed.

    So an offer goes out in the same command that made room for it (a
    refused command changed nothing and routes nothing).
    """

    @functools.wraps(method)
    def command(self: QueueEngine, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        result = method(self, *args, **kwargs)
        self._router.settle()
        return result

    return command


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
        self._bus = EventBus(clock)
        self._directory = Directory(site or SiteConfig())
        self._timers = Timers()
        self._queues = Queues(clock, self._bus, self._directory, self._timers, ended_kept=ENDED_KEPT)
        self._desk = SessionDesk(clock, self._bus, self._directory, self._queues)
        self._starts = Starts(clock, self._rng, self._bus, self._directory, self._desk)
        self._rules = WaitingRules(clock, self._directory, self._queues)
        self._presence = Presence(clock, self._bus, self._directory, self._queues, self._desk, self._timers)
        self._team_chats = TeamChats(clock, self._bus, self._directory)
        self._router = Router(clock, self._bus, self._directory, self._queues, self._timers, self._presence)
        d = self._directory
        self.reps: dict[str, Rep] = d.reps
        self.teams: dict[str, Team] = d.teams
        self.issues: dict[str, Issue] = d.issues
        self.buttons: dict[str, SupportButton] = d.buttons
        self.links: dict[str, BrowserLink] = d.links

    @property
    def site(self) -> SiteConfig:
        return self._directory.site

    @site.setter
    def site(self, site: SiteConfig) -> None:
        self._directory.site = site
        self._directory.changed = True

    @property
    def directory_changed(self) -> bool:
        """Whether the directory changed since :meth:`changes_of` last carried it.

        Every setup call sets it; a caller that edits directory objects in
        place (a reload renaming a team or rep) sets it too, so that the
        step's changes carry the directory to a cluster's followers.  A
        caller that has just built the engine from the configuration every
        copy shares clears it (nothing to carry)."""
        return self._directory.changed

    @directory_changed.setter
    def directory_changed(self, changed: bool) -> None:
        self._directory.changed = changed

    @property
    def seq(self) -> int:
        return self._bus.seq

    # The parts' own containers, under the names tests have always inspected.
    @property
    def _ended(self) -> dict[str, Session]:
        return self._queues.ended

    @property
    def _keys(self) -> dict[str, SessionKey]:
        return self._starts.keys

    @property
    def _team_chat(self) -> dict[str, TeamChat]:
        return self._team_chats.chats

    # ------------------------------------------------------------------ setup

    def add_team(
        self, team_id: str, name: str, *, rule: WaitingRule | None = None, persistent: bool = False,
        routing: RoutingMode = RoutingMode.NONE, max_sessions: int | None = None, skills: dict[str, str] | None = None,
    ) -> Team:
        """Add a team.  ``routing``, ``max_sessions`` (its members' default capacity) and ``skills``: issue 14."""
        team = self._directory.add_team(team_id, name, rule=rule, persistent=persistent)
        team.routing = RoutingMode(routing)
        team.max_sessions = max_sessions
        team.skills = dict(skills or {})
        self._team_chats.add_team(team_id)
        self._queues.add_team(team_id)
        self._router.add_team(team_id)
        return team

    def add_rep(
        self, rep_id: str, name: str, teams: Iterable[str] = (), *, max_sessions: int | None = None, connected: bool = True,
        skills: Iterable[str] = (),
    ) -> Rep:
        """Add a rep.  ``max_sessions``: their own capacity (None: their teams', else the site's default)."""
        rep = self._directory.add_rep(rep_id, name, teams, max_sessions=max_sessions, connected=connected, skills=skills)
        self._queues.add_rep(rep_id)
        return rep

    def add_issue(self, code: str, name: str, category: str, team: str) -> Issue:
        return self._directory.add_issue(code, name, category, team)

    def add_button(self, button_id: str, description: str, target: QueueRef, *, expires_at: float | None = None) -> SupportButton:
        return self._directory.add_button(button_id, description, target, expires_at=expires_at)

    def add_link(
        self,
        link_id: str,
        name: str,
        target: QueueRef,
        *,
        issue: str | None = None,
        expires_at: float | None = None,
        revoked: bool = False,
        origins: tuple[str, ...] = (),
    ) -> BrowserLink:
        """Add a browser-sharing link, or replace the link of that id."""
        return self._directory.add_link(link_id, name, target, issue=issue, expires_at=expires_at, revoked=revoked, origins=origins)

    def set_rule(self, team_id: str, rule: WaitingRule | None) -> None:
        self._rules.set(team_id, rule)
        self._directory.changed = True

    # -------------------------------------------------- auto-assignment setup

    @_then_route
    def set_routing(self, team_id: str, mode: RoutingMode, skills: dict[str, str] | None = None) -> Team:
        """How a team's waiting sessions reach its members (and, for ``skills``, category -> skill).

        Turning routing off withdraws the team's open offers; reps whose
        view changed (a member of a routed team, or no longer) are announced.
        """
        for rep in self._directory.set_routing(team_id, mode, skills):
            self._presence.emit(rep)
        self._router.team_changed(team_id)
        return self.teams[team_id]

    @_then_route
    def set_capacity(self, rep_id: str, max_sessions: int | None) -> Rep:
        """A rep's own maximum of concurrent sessions (None: their teams' or the site's default)."""
        rep = self._directory.set_capacity(rep_id, max_sessions)
        self._router.mark_rep(rep)
        self._presence.emit(rep)
        return rep

    @_then_route
    def set_team_capacity(self, team_id: str, max_sessions: int | None) -> Team:
        """A team's default maximum for members without their own."""
        for rep in self._directory.set_team_capacity(team_id, max_sessions):
            self._router.mark_rep(rep)
            self._presence.emit(rep)
        return self.teams[team_id]

    @_then_route
    def set_skills(self, rep_id: str, skills: Iterable[str]) -> Rep:
        rep = self._directory.rep(rep_id)
        rep.skills = frozenset(skills)
        self._directory.changed = True
        self._router.mark_rep(rep)
        if rep.routed:
            self._presence.emit(rep)
        return rep

    # -------------------------------------------------------------- observing

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` with every event from now on.  Returns an unsubscribe function."""
        return self._bus.subscribe(listener)

    def now(self) -> float:
        return self._clock()

    def session(self, session_id: str) -> Session:
        """A live or recently ended session.

        Raises UNKNOWN_SESSION, or SESSION_ENDED for a session that ended
        so long ago that only its number is remembered.
        """
        return self._queues.session(session_id)

    def sessions(self) -> Iterator[Session]:
        """Every session that has not ended."""
        return iter(self._queues.live.values())

    def ended_sessions(self) -> Iterator[Session]:
        """The ended sessions still kept whole, oldest first."""
        return iter(self._queues.ended.values())

    def forget_ended(self, keep: int = 0) -> int:
        """Let go of the ended sessions still kept whole, all but the ``keep`` that ended last.

        The engine keeps the last ``ENDED_KEPT`` ended sessions by itself (an
        in-process console may look back at them).  A driver that records
        every change elsewhere, as the server does in its database, calls
        this once it has, so that a finished session leaves nothing behind
        in memory.  A forgotten session is still known to have been one:
        :meth:`session` and every command answer SESSION_ENDED for it.
        Returns how many were forgotten.
        """
        return self._queues.forget_ended(keep)

    def waiting_in(self, queue: QueueRef) -> list[Session]:
        live = self._queues.live
        return [live[sid] for sid in self._queues.waiting_ids(queue)]

    def waiting_order(self) -> dict[QueueRef, list[str]]:
        """Every non-empty queue's waiting session ids, in queue order (the order Get Next and the console show)."""
        return self._queues.waiting_order()

    def queue_count(self, queue: QueueRef) -> int:
        return self._queues.count(queue)

    def queue_position(self, session_id: str) -> int | None:
        """Where a waiting session stands in its queue: 1 + the sessions ahead of
        it that are not on hold.  None if it is not waiting.  O(log n)."""
        return self._queues.position(session_id)

    def waiting_total(self) -> int:
        """Sessions waiting in any queue, held ones included."""
        return self._queues.waiting_total()

    def involved(self, rep_id: str) -> set[str]:
        """Ids of the live sessions ``rep_id`` owns or takes part in."""
        return set(self._queues.involved(rep_id))

    def load(self, rep_id: str) -> int:
        """Sessions that count against a rep's maximum: every live one they own or take part in.

        Held sessions and sessions the rep stayed on after a transfer count
        too: someone else's action (the owner resuming, the receiver
        accepting) makes them active again without asking this rep, so their
        place must stay reserved or that action would push the rep over.
        """
        return self._queues.load(rep_id)

    def keys_of(self, rep_id: str) -> list[SessionKey]:
        return self._starts.keys_of(rep_id)

    def session_keys(self) -> Iterator[SessionKey]:
        """Every key still remembered: valid ones, and used or expired ones for a day after they expire."""
        return self._starts.all_keys()

    def team_chat(self, team_id: str) -> TeamChat:
        """A copy of a team's chat: its last lines, line count and read markers."""
        return self._team_chats.chats[team_id].copy()

    def counters(self) -> Counters:
        """The numbers that must never be handed out twice."""
        return Counters(self._bus.seq, self._queues.counter, self._desk.invitation_counter)

    def audience(self, s: Session) -> frozenset[str]:
        """The reps allowed to see session ``s`` right now.

        That is the members of the queue it waits in, its owner and
        participants, and the members of the queues its invitations wait in.
        Nobody else: not the members of a team it passed through earlier.
        """
        return self._queues.audience(s)

    def may_see(self, rep_id: str, s: Session) -> bool:
        return rep_id in self._queues.audience(s)

    def snapshot(self, rep_id: str) -> SnapshotData:
        """Everything ``rep_id`` may see, as of event ``seq``.

        A console starts from this and then applies every event after
        ``seq``.  Sessions the rep takes part in carry their chat.
        """
        with self.snapshot_cursor(rep_id) as cursor:
            return cursor.whole()

    def snapshot_cursor(self, rep_id: str) -> SnapshotCursor:
        """:meth:`snapshot`, to be built a part at a time, exact as of now (see :class:`SnapshotCursor`).

        What is built now costs little whatever the queues hold: the order
        of the sessions the rep may see, the views of those the rep takes
        part in (with their chat, which changes without :meth:`Queues.begin`),
        the directory, the rep's team chats and keys.  Close the cursor when done.
        """
        rep = self._directory.rep(rep_id)
        queues = self._queues
        live = queues.live
        # In the order the console lists them: each of the rep's queues in
        # queue order, then the sessions the rep is in, then invitations.
        listed = [QueueRef.personal(rep_id)] + [QueueRef.team(t) for t in sorted(rep.teams)]
        order: list[str] = []
        for q in listed:
            order.extend(queues.waiting_ids(q))  # a copy of pointers: cheap however long the queue
        ready: dict[str, SessionView] = {}
        extras: set[str] = set()  # listed, not waiting in the rep's queues
        for sid in queues.involved(rep_id):
            s = live[sid]
            if s.queue not in listed:
                order.append(sid)
            ready[sid] = s.view(chat=True)
        members = self._directory.members
        for inv in self._desk.invitations.values():
            sid = inv.session
            if sid not in ready and sid not in extras and live[sid].queue not in listed and rep_id in members(inv.target):
                order.append(sid)
                extras.add(sid)
        chats = self._team_chats.chats
        head = SnapshotData(
            seq=self.seq,
            at=self._clock(),
            you=rep.view(),
            site=SiteView(self.site.grace_period),
            reps=[r.view() for r in self.reps.values()],
            teams=[t.view() for t in self.teams.values()],
            sessions=[],
            team_chat={
                t: TeamChatView(
                    lines=[line.view() for line in chats[t].lines],
                    last_read=chats[t].last_read.get(rep_id, 0),
                    count=chats[t].count,
                )
                for t in sorted(rep.teams)
            },
            keys=[k.view() for k in self.keys_of(rep_id)],
            offers=[o.view() for o in offers] if (offers := self._router.offers_to(rep_id)) else msgspec.UNSET,
            # As the events up to seq told them (not estimated afresh: the next estimate event is
            # only sent when the range changes from the published one).
            estimates=estimates if (estimates := self._router.published(rep.teams)) else msgspec.UNSET,
        )
        return SnapshotCursor(
            head, order, frozenset(listed), extras, ready,
            live=live, last_ticket=queues.last_ticket, ticket=queues.ticket, watchers=queues.watchers,
        )  # fmt: skip

    # ------------------------------------------------------------- customers

    @_then_route
    def start_with_key(self, key: str, intake: Intake, *, source: str = "") -> Session:
        """A customer types a session key; they join the personal queue of the rep who made it.

        ``source`` identifies the caller (an address) for rate limiting:
        a 7-character key has little entropy, so wrong guesses are counted.
        """
        return self._starts.start_with_key(key, intake, source=source)

    @_then_route
    def start_with_rep(self, rep_id: str, intake: Intake) -> Session:
        """The customer picked a rep's name on the public support site."""
        return self._starts.start_with_rep(rep_id, intake)

    @_then_route
    def start_with_button(self, button_id: str, intake: Intake) -> Session:
        return self._starts.start_with_button(button_id, intake)

    @_then_route
    def start_with_issue(self, issue_code: str, intake: Intake) -> Session:
        """The issue submission form: the team that owns the issue gets the customer."""
        return self._starts.start_with_issue(issue_code, intake)

    @_then_route
    def start_browser(
        self, link_id: str, intake: Intake, *, page_url: str = "", page_html: str = "", issue: str | None = None
    ) -> Session:
        """A help link on the customer's web page: a browser-sharing session.

        ``issue``: the issue the customer picked, when the link names none.
        """
        return self._starts.start_browser(link_id, intake, page_url=page_url, page_html=page_html, issue=issue)

    def customer_say(self, session_id: str, text: str) -> ChatLine:
        return self._desk.customer_say(session_id, text)

    @_then_route
    def customer_leave(self, session_id: str, *, disconnected: bool = False) -> None:
        """The customer closed their window or gave up waiting (``disconnected``: did not come back in time)."""
        self._desk.customer_leave(session_id, disconnected=disconnected)

    # ------------------------------------------------------------------ reps

    @_then_route
    def accept(self, rep_id: str, session_id: str) -> Session:
        """Take a waiting session.  Exactly one rep wins; the rest learn who did."""
        return self._desk.accept(rep_id, session_id)

    @_then_route
    def accept_invitation(self, rep_id: str, invitation_id: str) -> Session:
        """Join a shared session as a participant."""
        return self._desk.accept_invitation(rep_id, invitation_id)

    @_then_route
    def get_next(self, rep_id: str) -> Session:
        """Accept the longest-waiting session across the rep's team queues."""
        return self._desk.get_next(rep_id)

    @_then_route
    def transfer(self, rep_id: str, session_id: str, target: QueueRef, note: str = "", *, stay: bool = False) -> Session:
        """Hand the session to a rep or a team, with a note pinned for the receiver."""
        return self._desk.transfer(rep_id, session_id, target, note, stay=stay)

    def share(self, rep_id: str, session_id: str, target: QueueRef) -> Invitation:
        """Invite a rep or a team to join.  The owner keeps ownership."""
        return self._desk.share(rep_id, session_id, target)

    @_then_route
    def hold(self, rep_id: str, session_id: str) -> Session:
        """Park the session in the owner's personal queue; participants stay."""
        return self._desk.hold(rep_id, session_id)

    @_then_route
    def end(self, rep_id: str, session_id: str) -> Session:
        """End the session for everyone (owner only)."""
        return self._desk.end(rep_id, session_id)

    @_then_route
    def leave(self, rep_id: str, session_id: str) -> Session:
        """A participant leaves; the session goes on without them."""
        return self._desk.leave(rep_id, session_id)

    def say(self, rep_id: str, session_id: str, text: str, *, reps_only: bool = False) -> ChatLine:
        return self._desk.say(rep_id, session_id, text, reps_only=reps_only)

    def set_external_key(self, rep_id: str, session_id: str, external_key: str) -> Session:
        return self._desk.set_external_key(rep_id, session_id, external_key)

    def generate_key(self, rep_id: str, valid_for: float) -> SessionKey:
        """A one-time session key that brings a customer to this rep's personal queue.

        ``valid_for`` limits when a session may *start* with the key, not
        how long that session may last.
        """
        return self._starts.generate_key(rep_id, valid_for)

    @_then_route
    def set_status(self, rep_id: str, status: RepStatus) -> Rep:
        rep = self._presence.set_status(rep_id, status)
        self._router.status_set(rep)
        return rep

    # ------------------------------------------------------- auto-assignment

    @_then_route
    def accept_offer(self, rep_id: str, session_id: str) -> Session:
        """Take the session offered to this rep: an :meth:`accept`, so exactly once whoever else reaches for it."""
        self._router.offer_of(rep_id, session_id)
        return self._desk.accept(rep_id, session_id)

    @_then_route
    def decline_offer(self, rep_id: str, session_id: str) -> Offer:
        """Decline an offer: the next eligible rep gets it, never this rep again (until it is transferred)."""
        return self._router.decline(rep_id, session_id)

    @_then_route
    def pause_offers(self, rep_id: str, minutes: float) -> Rep:
        """No offers to this rep for ``minutes`` (0: offers again now); they come back by themselves."""
        return self._router.pause(rep_id, minutes)

    def open_offers(self) -> list[Offer]:
        """Every open offer (copies' worth: the offers themselves, not to be changed)."""
        return list(self._router.offers.values())

    def offers_to(self, rep_id: str) -> list[Offer]:
        """The rep's open offers, oldest first."""
        return self._router.offers_to(rep_id)

    def estimate(self, team_id: str, position: int | None = None) -> WaitEstimate | None:
        """The wait of the customer at ``position`` in a team's queue (default: one arriving now); None: no data."""
        if position is None:
            position = self._queues.count(QueueRef.team(team_id)) + 1
        return self._router.estimate(team_id, position)

    def estimate_for(self, session_id: str, position: int | None = None) -> WaitEstimate | None:
        """A waiting customer's wait, from their place (``queue_position``'s, if known) in a team queue; None: no data, or not in one."""
        s = self._queues.live.get(session_id)
        position = self._queues.position(session_id) if position is None else position
        if s is None or s.queue is None or s.queue.is_personal or position is None:
            return None
        return self._router.estimate(s.queue.id, position, session_id)

    def publish_estimates(self) -> int:
        """Announce each team queue's estimate for a new arrival to its members where its range changed (an ``estimate``
        event), as often as the customers' positions are refreshed (within :meth:`estimating`).  Returns how many."""
        return self._router.publish_estimates()

    def estimating(self) -> AbstractContextManager[None]:
        """Estimates asked within (a refresh) share each team's inputs, worked out once per team (:meth:`Router.estimating`)."""
        return self._router.estimating()

    def team_say(self, rep_id: str, team_id: str, text: str) -> ChatLine:
        return self._team_chats.say(rep_id, team_id, text)

    def team_read(self, rep_id: str, team_id: str, upto: int | None = None) -> int:
        """Mark a team's chat read up to line ``upto`` (default: all of it)."""
        return self._team_chats.read(rep_id, team_id, upto)

    # ------------------------------------------------------------- presence

    @_then_route
    def rep_disconnected(self, rep_id: str, since: float | None = None) -> None:
        """The rep's console went silent (at ``since``, by default now).  Their sessions
        wait out the grace period, counted from ``since``; their open offers are withdrawn."""
        self._presence.disconnected(rep_id, since)
        self._router.mark_rep(self.reps[rep_id])

    @_then_route
    def rep_connected(self, rep_id: str) -> None:
        """The rep is back.  Within the grace period they keep everything."""
        self._presence.connected(rep_id)
        self._router.mark_rep(self.reps[rep_id])

    # ----------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When :meth:`advance` next has something to do, or None."""
        return self._timers.next_deadline()

    @_then_route
    def advance(self) -> int:
        """Fire every timer that is due at the clock's current time.  Returns how many fired."""
        now = self._clock()
        fired = 0
        # A timer that firing adds and is already due fires too.
        while (timer := self._timers.pop_due(now)) is not None:
            deadline, kind, target = timer
            if kind == "rule":
                fired += self._rules.fire(deadline, target)
            elif kind == "grace":
                fired += self._presence.grace_over(deadline, target)
            elif kind == "offer":
                fired += self._router.expire(deadline, target)
            else:
                fired += self._router.resume(deadline, target)
        return fired

    # ---------------------------------------------------------- persistence

    def export_state(self) -> EngineState:
        """The runtime state, for :meth:`restore_state` on a fresh engine with the same directory."""
        return EngineState(
            counters=self.counters(),
            sessions=list(self._queues.live.values()),
            waiting=self._queues.waiting_order(),
            ended=list(self._queues.ended.values()),
            reps={rep_id: RepState(rep.status, rep.connected, rep.grace_until, rep.paused_until) for rep_id, rep in self.reps.items()},
            keys=list(self._starts.all_keys()),
            team_chat={team_id: chat.copy() for team_id, chat in self._team_chats.chats.items()},
        )

    def restore_state(self, state: EngineState) -> None:
        """Continue from ``state`` (see :meth:`export_state`).

        This engine must be fresh (its directory built, no event yet), and
        ``state`` must fit the directory: it names only configured reps and
        teams (:func:`repconsole.core.persist.load` repairs a state that no
        longer does).  Every index and timer is rebuilt by the code commands
        use.  Rule deadlines and grace periods are absolute engine times:
        one that passed in the meantime fires at the next :meth:`advance`.
        Listeners hear nothing: restoring is not a change.

        Raises ValueError, changing nothing, if the engine is not fresh or
        the state does not fit.
        """
        queues = self._queues
        if self.seq or queues.live or queues.ended:
            raise ValueError("restore_state() needs a fresh engine: this one already has runtime state")
        self._check_fits(state)
        for rep_id, r in state.reps.items():
            rep = self.reps[rep_id]
            rep.status = RepStatus(r.status)
            rep.connected = r.connected
            rep.grace_until = None if r.connected else r.grace_until
            rep.paused_until = r.paused_until
        # Dict order is arrival order, which sessions() and the snapshot
        # follow; indexing goes queue by queue in the stored order (a session
        # with no stored place goes last).
        queues.adopt(state.sessions, state.ended)
        rank = {sid: i for i, sid in enumerate(sid for sids in state.waiting.values() for sid in sids)}
        listeners = self._bus.listeners
        silenced = listeners[:]
        listeners.clear()
        try:
            for s in sorted(state.sessions, key=lambda s: rank.get(s.id, len(rank))):
                for inv in s.invitations.values():
                    self._desk.invitations[inv.id] = inv
                queues.commit(s, NOTHING)
                if s.rule_deadline is not None:
                    self._timers.add(s.rule_deadline, "rule", s.id)
        finally:
            listeners[:] = silenced
        for rep in self.reps.values():
            if not rep.connected and rep.grace_until is not None:
                self._timers.add(rep.grace_until, "grace", rep.id)
            if rep.paused_until is not None:  # offers come back by themselves, after a restart or takeover too
                self._timers.add(rep.paused_until, "resume", rep.id)
        for key in state.keys:
            self._starts.restore_key(key)
        for team_id, chat in state.team_chat.items():
            self._team_chats.restore(team_id, chat)
        # Offers are not kept: the next command or advance() offers afresh.
        self._router.mark_all()
        # Never hand out a number twice, even if the counters were stored behind the sessions.
        c = state.counters
        numbers = [int(s.id[1:]) for s in (*state.sessions, *state.ended) if s.id[1:].isdigit()]
        queues.counter = max([c.sessions, *numbers])
        invitations = [int(i[1:]) for i in self._desk.invitations if i[1:].isdigit()]
        self._desk.invitation_counter = max([c.invitations, *invitations])
        self._bus.seq = c.seq

    def changes_of(self, events: Iterable[Event]) -> EngineChanges:
        """What the step that just emitted ``events`` changed, for another engine's :meth:`apply_changes`.

        Call it right after the step, before the engine's next command.  If
        the directory changed since the last call (:attr:`directory_changed`),
        the changes carry it whole, and the flag is cleared.
        """
        d = self._directory
        directory = None
        if d.changed:
            d.changed = False
            directory = DirectoryState(d.site, list(d.teams.values()), list(d.reps.values()), list(d.issues.values()),
                                       list(d.buttons.values()), list(d.links.values()))  # fmt: skip
        parts = self._queues, self._starts, self._team_chats
        return follow.changes_of(
            events, self.counters(), queues=parts[0], starts=parts[1], team_chats=parts[2], reps=self.reps, directory=directory
        )

    def apply_changes(self, changes: EngineChanges) -> None:
        """Take what a step of another engine with the same directory changed (a cluster follower's copy).

        Listeners hear nothing.  Offers and timers are not copied (see
        :mod:`repconsole.core.engine.follow`): an engine that applies changes
        must not run commands; to lead, restore a fresh engine from its state.
        """
        if changes.directory is not None:
            # The directory first: the step's sessions and reps may name a new team or rep.
            changed = self._directory.changed
            follow.apply_directory(changes.directory, self._directory, self._join_team, self._queues.add_rep, self._rules.set, self._router.team_changed)
            self._directory.changed = changed
        follow.apply(changes, queues=self._queues, desk=self._desk, starts=self._starts, team_chats=self._team_chats, bus=self._bus, reps=self.reps)

    def _join_team(self, team_id: str, name: str) -> None:
        """A team another engine added (apply_changes): the parts' own setup, as add_team does."""
        self._directory.add_team(team_id, name)
        self._team_chats.add_team(team_id)
        self._queues.add_team(team_id)
        self._router.add_team(team_id)

    def lead(self) -> None:
        """A follower's copy (built by :meth:`apply_changes`) starts running commands: the timers
        and offers it never kept are rebuilt as :meth:`restore_state` builds them (rule deadlines,
        grace periods, every queue marked for routing at the next command or :meth:`advance`)."""
        for s in self._queues.live.values():
            if s.rule_deadline is not None:
                self._timers.add(s.rule_deadline, "rule", s.id)
        for rep in self.reps.values():
            if not rep.connected and rep.grace_until is not None:
                self._timers.add(rep.grace_until, "grace", rep.id)
            if rep.paused_until is not None:  # offers come back by themselves, after a restart or takeover too
                self._timers.add(rep.paused_until, "resume", rep.id)
        self._router.mark_all()

    def _check_fits(self, state: EngineState) -> None:
        """Raise ValueError unless ``state`` names only configured reps and teams."""
        d = self._directory
        problems = [f"rep {r!r}" for r in state.reps if r not in self.reps]
        problems += [f"team chat of team {t!r}" for t in state.team_chat if t not in self.teams]
        problems += [f"key {k.key} of rep {k.rep!r}" for k in state.keys if k.rep not in self.reps]
        problems += [f"queue {q}" for q in state.waiting if not d.knows(q)]
        for s in state.sessions:
            if s.state is SessionState.ENDED:
                problems.append(f"{s.id}: ended, among the live sessions")
            if (s.owner is not None and s.owner not in self.reps) or any(r not in self.reps for r in s.participants):
                problems.append(f"{s.id}: its owner or a participant")
            if s.queue is not None and not d.knows(s.queue):
                problems.append(f"{s.id}: its queue {s.queue}")
            for inv in s.invitations.values():
                if not d.knows(inv.target) or (inv.by not in self.reps and inv.by != CUSTOMER):
                    problems.append(f"{s.id}: invitation {inv.id}")
        if problems:
            raise ValueError("the state does not fit this engine's directory: " + "; ".join(problems[:10]))
