"""The nouns of the queue engine: queues, sessions, reps, teams and the site.

Everything here is plain data.  The rules that change it live in
:mod:`repconsole.core.engine`; this module only knows how to describe a
thing and how to turn it into (and back from) the JSON-ready dicts that
travel in events, snapshots and, later, over the wire.

Times are floats in seconds on the engine's clock.  They mean nothing to
the wall clock unless the clock says so, which is what lets tests run a
whole day of waiting-session rules in a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from repconsole.protocol.views import (
    InvitationView,
    KeyView,
    LineView,
    RepView,
    RoutingView,
    RuleView,
    SessionView,
    StepView,
    TeamView,
)
from repconsole.protocol.vocabulary import (
    CUSTOMER,
    Origin,
    Priority,
    QueueKind,
    RepStatus,
    RoutingMode,
    RuleAction,
    SessionState,
    StepKind,
    Visibility,
)

__all__ = [
    "CUSTOMER",
    "BrowserLink",
    "ChatLine",
    "Invitation",
    "Issue",
    "Origin",
    "Priority",
    "QueueKind",
    "QueueRef",
    "Rep",
    "RepStatus",
    "RoutingMode",
    "RuleAction",
    "Session",
    "SessionKey",
    "SessionState",
    "SiteConfig",
    "StepKind",
    "SupportButton",
    "Team",
    "TimelineStep",
    "Visibility",
    "WaitingRule",
]


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A queue: the personal queue of a rep, or the queue of a team.

    Serialized as ``"rep:<id>"`` or ``"team:<id>"`` so that a queue can be a
    dict key and a JSON string at the same time.
    """

    kind: QueueKind
    id: str

    @classmethod
    def personal(cls, rep_id: str) -> QueueRef:
        return cls(QueueKind.PERSONAL, rep_id)

    @classmethod
    def team(cls, team_id: str) -> QueueRef:
        return cls(QueueKind.TEAM, team_id)

    @classmethod
    def parse(cls, text: str) -> QueueRef:
        kind, sep, ident = text.partition(":")
        if not sep or not ident:
            raise ValueError(f"not a queue reference: {text!r} (expected 'rep:ID' or 'team:ID')")
        try:
            return cls(QueueKind(kind), ident)
        except ValueError:
            raise ValueError(f"unknown queue kind {kind!r} in {text!r}") from None

    def serialize(self) -> str:
        return f"{self.kind}:{self.id}"

    def __str__(self) -> str:
        return self.serialize()

    @property
    def is_personal(self) -> bool:
        return self.kind is QueueKind.PERSONAL


@dataclass(slots=True)
class WaitingRule:
    """A team's waiting-session rule: after ``after`` seconds unaccepted, act."""

    after: float
    action: RuleAction
    overflow_team: str | None = None

    def view(self) -> RuleView:
        return RuleView(self.after, self.action, self.overflow_team)

    def to_dict(self) -> dict[str, Any]:
        return _builtins(self.view())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WaitingRule:
        return cls(float(d["after"]), RuleAction(d["action"]), d.get("overflow_team"))


@dataclass(slots=True)
class Team:
    id: str
    name: str
    members: set[str] = field(default_factory=set)
    rule: WaitingRule | None = None
    # A persistent queue keeps its sessions when the rep who dropped them
    # cannot be reached: fallback never moves a session out of it.
    persistent: bool = False
    # Auto-assignment (issue 14): how waiting sessions reach members, the
    # members' capacity unless a rep has their own (None: the site's
    # default), and for "skills" routing, issue category -> required skill.
    routing: RoutingMode = RoutingMode.NONE
    max_sessions: int | None = None
    skills: dict[str, str] = field(default_factory=dict)

    def view(self) -> TeamView:
        routing = self.routing if self.routing is not RoutingMode.NONE else msgspec.UNSET
        return TeamView(self.id, self.name, sorted(self.members), self.rule.view() if self.rule else None, self.persistent, routing)


@dataclass(slots=True)
class Rep:
    id: str
    name: str
    teams: set[str] = field(default_factory=set)
    status: RepStatus = RepStatus.AVAILABLE
    max_sessions: int = 5
    connected: bool = True
    # Engine time at which a dropped rep's sessions fall back; None while connected.
    grace_until: float | None = None
    # Auto-assignment (issue 14).  ``max_sessions`` above is the capacity in
    # force; ``own_max_sessions`` the rep's own setting (None: their teams'
    # or the site's default, see Directory.capacity_of).  ``routed``: a
    # member of a team whose routing is not "none" (the directory keeps it).
    own_max_sessions: int | None = None
    skills: frozenset[str] = frozenset()
    paused_until: float | None = None
    routed: bool = False

    def view(self) -> RepView:
        routing = RoutingView(self.paused_until, sorted(self.skills)) if self.routed else msgspec.UNSET
        return RepView(self.id, self.name, sorted(self.teams), self.status, self.max_sessions, self.connected, self.grace_until, routing)


@dataclass(slots=True)
class Issue:
    code: str
    name: str
    category: str
    team: str


@dataclass(slots=True)
class SupportButton:
    id: str
    description: str
    target: QueueRef
    expires_at: float | None = None  # after this it starts no session


@dataclass(slots=True)
class BrowserLink:
    """A browser-sharing custom link that routes to a chosen rep or team.

    Attributes:
        issue: an issue code: its name and category label the sessions the
            link starts (None: the customer may pick one, or none).
        expires_at: after this it starts no session (None: never).
        revoked: an administrator withdrew it: it starts no session.
        origins: the web pages (``scheme://host[:port]``) that may use it,
            besides the support site's own; the server's Origin check reads them.
    """

    id: str
    name: str
    target: QueueRef
    issue: str | None = None
    expires_at: float | None = None
    revoked: bool = False
    origins: tuple[str, ...] = ()


@dataclass(slots=True)
class SiteConfig:
    """Site-wide settings of the engine."""

    grace_period: float = 60.0
    fallback_queue: QueueRef | None = None
    key_length: int = 7
    key_failures_per_minute: int = 5
    max_sessions_default: int = 5
    # A customer waiting this long (s) in a rep's personal queue is marked
    # overdue, as a team's "mark overdue" rule does; None: never.  Marking
    # only: the customer chose this rep, so moving them is not the site's call.
    personal_overdue_after: float | None = None
    # Auto-assignment (issue 14): how long a rep has to answer an offer, and
    # how many missed (expired) offers in a row set them away.
    offer_timeout: float = 20.0
    misses_before_away: int = 2


@dataclass(slots=True)
class SessionKey:
    key: str
    rep: str
    created_at: float
    expires_at: float
    used_by: str | None = None  # session id

    def view(self) -> KeyView:
        return KeyView(self.key, self.rep, self.created_at, self.expires_at, self.used_by)

    def to_dict(self) -> dict[str, Any]:
        return _builtins(self.view())


@dataclass(slots=True)
class TimelineStep:
    at: float
    kind: StepKind
    queue: QueueRef | None = None
    by: str | None = None  # rep id
    note: str = ""

    def view(self) -> StepView:
        return StepView(self.at, self.kind, self.queue.serialize() if self.queue else None, self.by, self.note)

    def to_dict(self) -> dict[str, Any]:
        # Every field, defaults included (the view leaves them off the wire; the store keeps them).
        return {"at": self.at, "kind": self.kind.value, "queue": self.queue.serialize() if self.queue else None, "by": self.by, "note": self.note}


@dataclass(slots=True)
class ChatLine:
    """One line of a session chat or a team chat.

    ``author`` is a rep id, ``"customer"`` or ``None`` for an event line
    (joined, transferred, held...), which the console shows in grey.
    """

    n: int  # position in its chat, from 1
    at: float
    author: str | None
    text: str
    visibility: Visibility = Visibility.ALL

    def view(self) -> LineView:
        return LineView(self.n, self.at, self.author, self.text, self.visibility)

    def to_dict(self) -> dict[str, Any]:
        return _builtins(self.view())


@dataclass(slots=True)
class Invitation:
    """An invitation to join a shared session, waiting in a rep's or team's queue."""

    id: str
    session: str
    target: QueueRef
    by: str
    at: float

    def view(self) -> InvitationView:
        return InvitationView(self.id, self.session, self.target.serialize(), self.by, self.at)

    def to_dict(self) -> dict[str, Any]:
        return _builtins(self.view())


@dataclass(slots=True, eq=False)
class Session:
    """A customer's support session.

    Intake fields are whatever the session's origin provided; a field the
    origin does not provide is ``""`` (or ``None`` for the issue), never a
    made-up value, so the console can sort the gaps last.
    """

    id: str
    origin: Origin
    created_at: float
    customer_name: str
    company: str = ""
    company_code: str = ""
    issue_code: str | None = None
    issue: str = ""
    category: str = ""
    details: str = ""
    platform: str = ""
    locale: str = ""
    external_key: str = ""
    custom_fields: dict[str, str] = field(default_factory=dict)
    portal: str = ""
    session_key: str = ""
    source: str = ""  # what started it: the button, the link or the issue code
    page_url: str = ""  # browser sharing: the customer's page
    page_html: str = ""
    priority: Priority = Priority.NORMAL

    state: SessionState = SessionState.WAITING
    queue: QueueRef | None = None
    queue_entered_at: float = 0.0
    owner: str | None = None
    # rep id -> engine time they joined; insertion order is join order.
    participants: dict[str, float] = field(default_factory=dict)
    held: bool = False
    overdue: bool = False
    rule_deadline: float | None = None
    transfer_note: str = ""
    # Open invitations to join this session, by invitation id.
    invitations: dict[str, Invitation] = field(default_factory=dict)
    # Teams whose waiting rule already transferred this session away: a rule
    # never sends it back to one of them (the ping-pong guard).
    rule_visited: set[str] = field(default_factory=set)
    timeline: list[TimelineStep] = field(default_factory=list)
    chat: list[ChatLine] = field(default_factory=list)
    # Timeline steps never change once appended, so their views are built
    # once; every event that carries the session reuses them.
    _timeline_views: list[StepView] = field(default_factory=list, repr=False, compare=False)
    ended_at: float | None = None
    end_reason: str = ""

    @property
    def browser(self) -> bool:
        return self.origin.is_browser

    @property
    def first_queue(self) -> QueueRef | None:
        for step in self.timeline:
            if step.queue is not None:
                return step.queue
        return None

    def _timeline_snapshot(self) -> list[StepView]:
        done = self._timeline_views
        if len(done) < len(self.timeline):
            done.extend(step.view() for step in self.timeline[len(done):])
        return list(done)  # a new list per payload: earlier payloads must not grow

    def view(self, *, chat: bool = False) -> SessionView:
        """The session as events and snapshots carry it.

        The chat is left out unless asked for: a queue of 100,000 waiting
        customers should not carry 100,000 chat logs to every console.
        """
        # Positional, in SessionView's field order: a keyword call costs five
        # times as much, and a snapshot builds one view per visible session.
        # custom_fields is shared, not copied: the engine never changes it
        # after arrival, and views are never changed by anyone.
        return SessionView(
            self.id,
            self.origin,
            self.created_at,
            self.customer_name,
            self.queue_entered_at,
            self._timeline_snapshot(),
            self.origin.is_browser,
            self.company,
            self.company_code,
            self.issue_code,
            self.issue,
            self.category,
            self.details,
            self.platform,
            self.locale,
            self.external_key,
            self.custom_fields,
            self.portal,
            self.session_key,
            self.source,
            self.page_url,
            self.priority,
            self.state,
            self.queue.serialize() if self.queue else None,
            self.owner,
            list(self.participants),
            self.held,
            self.overdue,
            self.rule_deadline,
            self.transfer_note,
            [inv.view() for inv in self.invitations.values()] if self.invitations else [],
            self.ended_at,
            self.end_reason,
            [line.view() for line in self.chat] if chat else msgspec.UNSET,
            self.page_html if chat else msgspec.UNSET,
        )

    def to_dict(self, *, chat: bool = False) -> dict[str, Any]:
        """:meth:`view` as plain JSON values, every field (the wire leaves out those at their default)."""
        d: dict[str, Any] = _plain(self.view(chat=chat))
        return d


def _builtins(view: msgspec.Struct) -> dict[str, Any]:
    d: dict[str, Any] = msgspec.to_builtins(view)
    return d


def _plain(value: Any) -> Any:
    """``value`` as plain JSON values, every field of every Struct in it (``to_builtins`` leaves out defaults
    where a Struct omits them)."""
    if isinstance(value, msgspec.Struct):
        return {name: _plain(v) for name in value.__struct_fields__ if (v := getattr(value, name)) is not msgspec.UNSET}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return msgspec.to_builtins(value)
