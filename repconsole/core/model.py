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

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChatLine",
    "Invitation",
    "Issue",
    "Origin",
    "Priority",
    "QueueKind",
    "QueueRef",
    "Rep",
    "RepStatus",
    "RuleAction",
    "Session",
    "SessionKey",
    "SessionState",
    "SiteConfig",
    "StepKind",
    "SupportButton",
    "BrowserLink",
    "Team",
    "TimelineStep",
    "WaitingRule",
    "Visibility",
]


class QueueKind(enum.StrEnum):
    PERSONAL = "rep"
    TEAM = "team"


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


class Origin(enum.StrEnum):
    """How a customer started their session.  Fixed for the session's life."""

    SESSION_KEY = "session_key"
    REP_PICKED = "rep_picked"  # picked the rep's name on the public site
    REP_BUTTON = "rep_button"  # a Support Button tied to a rep
    TEAM_BUTTON = "team_button"
    ISSUE_FORM = "issue_form"  # the issue submission form; the issue's team gets it
    BROWSER_REP = "browser_rep"  # a browser-sharing custom link aimed at a rep
    BROWSER_TEAM = "browser_team"

    @property
    def is_browser(self) -> bool:
        return self in (Origin.BROWSER_REP, Origin.BROWSER_TEAM)

    @property
    def label(self) -> str:
        return _ORIGIN_LABELS[self]


_ORIGIN_LABELS = {
    Origin.SESSION_KEY: "Session key",
    Origin.REP_PICKED: "Rep list",
    Origin.REP_BUTTON: "Support Button (rep)",
    Origin.TEAM_BUTTON: "Support Button (team)",
    Origin.ISSUE_FORM: "Issue form",
    Origin.BROWSER_REP: "Browser link (rep)",
    Origin.BROWSER_TEAM: "Browser link (team)",
}


class Priority(enum.IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4

    @property
    def label(self) -> str:
        return self.name.capitalize()


class SessionState(enum.StrEnum):
    WAITING = "waiting"  # in a queue, nobody owns it (or held: the owner parked it)
    ACTIVE = "active"  # a rep owns it
    ENDED = "ended"


class RepStatus(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"


class RuleAction(enum.StrEnum):
    MARK_OVERDUE = "mark_overdue"
    TRANSFER = "transfer"


class StepKind(enum.StrEnum):
    """What happened to a session, as shown in its timeline."""

    ARRIVED = "arrived"
    ACCEPTED = "accepted"
    TRANSFERRED = "transferred"
    RULE_OVERDUE = "rule_overdue"
    RULE_TRANSFERRED = "rule_transferred"
    CONNECTION_LOST = "connection_lost"  # fallback moved it after a rep dropped
    HELD = "held"
    SHARED = "shared"
    JOINED = "joined"
    LEFT = "left"
    ENDED = "ended"


class Visibility(enum.StrEnum):
    ALL = "all"  # the customer sees it too
    REPS = "reps"  # reps only


@dataclass(slots=True)
class WaitingRule:
    """A team's waiting-session rule: after ``after`` seconds unaccepted, act."""

    after: float
    action: RuleAction
    overflow_team: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"after": self.after, "action": self.action, "overflow_team": self.overflow_team}

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "members": sorted(self.members),
            "rule": self.rule.to_dict() if self.rule else None,
            "persistent": self.persistent,
        }


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "teams": sorted(self.teams),
            "status": self.status,
            "max_sessions": self.max_sessions,
            "connected": self.connected,
            "grace_until": self.grace_until,
        }


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
    """A browser-sharing custom link that routes to a chosen rep or team."""

    id: str
    name: str
    target: QueueRef


@dataclass(slots=True)
class SiteConfig:
    """Site-wide settings of the engine."""

    grace_period: float = 60.0
    fallback_queue: QueueRef | None = None
    key_length: int = 7
    key_failures_per_minute: int = 5
    max_sessions_default: int = 5


@dataclass(slots=True)
class SessionKey:
    key: str
    rep: str
    created_at: float
    expires_at: float
    used_by: str | None = None  # session id

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rep": self.rep,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "used_by": self.used_by,
        }


@dataclass(slots=True)
class TimelineStep:
    at: float
    kind: StepKind
    queue: QueueRef | None = None
    by: str | None = None  # rep id
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "queue": self.queue.serialize() if self.queue else None,
            "by": self.by,
            "note": self.note,
        }


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "at": self.at,
            "author": self.author,
            "text": self.text,
            "visibility": self.visibility,
        }


@dataclass(slots=True)
class Invitation:
    """An invitation to join a shared session, waiting in a rep's or team's queue."""

    id: str
    session: str
    target: QueueRef
    by: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "session": self.session, "target": self.target.serialize(), "by": self.by, "at": self.at}


CUSTOMER = "customer"


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
    # Timeline steps never change once appended, so their dicts are built
    # once; every event that carries the session reuses them.
    _timeline_dicts: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)
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

    def _timeline_snapshot(self) -> list[dict[str, Any]]:
        done = self._timeline_dicts
        if len(done) < len(self.timeline):
            done.extend(step.to_dict() for step in self.timeline[len(done):])
        return list(done)  # a new list per payload: earlier payloads must not grow

    def to_dict(self, *, chat: bool = False) -> dict[str, Any]:
        """The session as events and snapshots carry it.

        The chat is left out unless asked for: a queue of 100,000 waiting
        customers should not carry 100,000 chat logs to every console.
        """
        d: dict[str, Any] = {
            "id": self.id,
            "origin": self.origin,
            "browser": self.origin.is_browser,
            "created_at": self.created_at,
            "customer_name": self.customer_name,
            "company": self.company,
            "company_code": self.company_code,
            "issue_code": self.issue_code,
            "issue": self.issue,
            "category": self.category,
            "details": self.details,
            "platform": self.platform,
            "locale": self.locale,
            "external_key": self.external_key,
            "custom_fields": dict(self.custom_fields),
            "portal": self.portal,
            "session_key": self.session_key,
            "source": self.source,
            "page_url": self.page_url,
            "priority": int(self.priority),
            "state": self.state,
            "queue": self.queue.serialize() if self.queue else None,
            "queue_entered_at": self.queue_entered_at,
            "owner": self.owner,
            "participants": list(self.participants),
            "held": self.held,
            "overdue": self.overdue,
            "rule_deadline": self.rule_deadline,
            "transfer_note": self.transfer_note,
            "invitations": [inv.to_dict() for inv in self.invitations.values()],
            "timeline": self._timeline_snapshot(),
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
        }
        if chat:
            d["chat"] = [line.to_dict() for line in self.chat]
            d["page_html"] = self.page_html
        return d
