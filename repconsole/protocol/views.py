"""The nouns as the wire carries them: sessions, chat lines, reps, teams, keys.

The engine builds these (``Session.view()``, ``Rep.view()``...) once per
change; the server encodes them, the console decodes them, and the console's
state keeps them as they came.  They are the console's *typed session view*:
``session.customer_name``, never ``session["customer_name"]``.

Every view is a frozen msgspec Struct that the garbage collector does not
track (``gc=False``): a console holding 100,000 waiting sessions keeps
100,000 of them for the whole shift, and none can be part of a reference
cycle (they only hold strings, numbers, lists and other views).  Frozen,
because the simulator hands the engine's own views to the console: neither
side may change what the other sees.

Fields that are sometimes left out are typed ``X | UnsetType`` with the
default ``UNSET``: absent on the wire, ``UNSET`` in Python.  Everything else
has a value (``None`` when empty), so that a missing value sorts and shows
as a gap rather than as a made-up value.  A session and its timeline steps
leave out every field that holds its default (``omit_defaults``: ``""``,
``None``, ``False``, ``[]``, ``{}``, priority normal, state waiting): a
waiting customer's row is mostly empty fields, and a queue of 100,000 sends
each of them 100,000 times.  A decoder fills the default back in, so in
Python the field is there, with that value.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from repconsole.protocol.vocabulary import (
    CUSTOM_FIELDS_LIMIT,
    DETAILS_LIMIT,
    NAME_LIMIT,
    Origin,
    Priority,
    RepStatus,
    RoutingMode,
    RuleAction,
    SessionState,
    StepKind,
    Visibility,
)

__all__ = [
    "BROWSER_PREFIX",
    "CustomerLine",
    "EstimateView",
    "Intake",
    "InvitationView",
    "KeyView",
    "LineView",
    "OfferView",
    "QueueName",
    "RepView",
    "RoutingView",
    "RuleView",
    "SessionView",
    "SiteView",
    "SnapshotData",
    "StepView",
    "TeamChatView",
    "TeamView",
    "Time",
]

# The queue shows a browser-sharing session's customer with this before the name.
BROWSER_PREFIX = "[Browser] "

Time = Annotated[float, msgspec.Meta(description="seconds since the Unix epoch, on the server's clock")]
QueueName = Annotated[
    str,
    msgspec.Meta(pattern=r"^(rep|team):.+$", description="a queue: 'rep:<rep id>' (personal) or 'team:<team id>'"),
]
_Short = Annotated[str, msgspec.Meta(max_length=NAME_LIMIT)]


class _View(msgspec.Struct, frozen=True, gc=False):
    """What every view shares: immutable, untracked by the collector."""


class LineView(_View, frozen=True):
    """One line of a session chat or a team chat.

    ``author`` is a rep id, ``"customer"``, or None for an event line
    ("Alex accepted the session."), which the console shows in grey.
    ``n`` numbers the lines of one chat from 1.
    """

    n: int
    at: Time
    author: str | None
    text: str
    visibility: Visibility = Visibility.ALL


class StepView(_View, frozen=True, omit_defaults=True):
    """One step of a session's timeline (arrived, accepted, transferred...).  Defaults are left off the wire."""

    at: Time
    kind: StepKind
    queue: QueueName | None = None
    by: str | None = None
    note: str = ""


class InvitationView(_View, frozen=True):
    """An invitation to join a shared session, waiting in ``target``."""

    id: str
    session: str
    target: QueueName
    by: str
    at: Time


class SessionView(_View, frozen=True, omit_defaults=True):
    """A customer's support session, as the reps who may see it see it.

    Intake fields a session's origin did not provide are ``""`` (the issue:
    None).  ``chat`` and ``page_html`` come only where the rep takes part in
    the session (the snapshot, the result of accept): a queue of 100,000
    waiting customers does not carry 100,000 chat logs.

    The fields every session has come first; every other field has a
    default, and a field that holds its default is left off the wire (the
    decoder puts it back).  Build it positionally, in this order (a keyword
    call costs five times as much, and a snapshot builds one per session).
    """

    id: str
    origin: Origin
    created_at: Time
    customer_name: str
    queue_entered_at: Time
    timeline: list[StepView]
    browser: bool = False
    company: str = ""
    company_code: str = ""
    issue_code: str | None = None
    issue: str = ""
    category: str = ""
    details: str = ""
    platform: str = ""
    locale: str = ""
    external_key: str = ""
    custom_fields: dict[str, str] = {}
    portal: str = ""
    session_key: str = ""
    source: str = ""  # what started it: the button, the link or the issue code
    page_url: str = ""
    priority: Priority = Priority.NORMAL
    state: SessionState = SessionState.WAITING
    queue: QueueName | None = None
    owner: str | None = None
    participants: list[str] = []  # in the order they joined
    held: bool = False
    overdue: bool = False
    rule_deadline: Time | None = None
    transfer_note: str = ""
    invitations: list[InvitationView] = []
    ended_at: Time | None = None
    end_reason: str = ""
    chat: list[LineView] | UnsetType = UNSET
    page_html: str | UnsetType = UNSET

    @property
    def title(self) -> str:
        """The customer's name as a queue or a tab shows it: ``[Browser] Ann`` for browser sharing."""
        return BROWSER_PREFIX + self.customer_name if self.browser else self.customer_name

    def involves(self, rep: str) -> bool:
        """``rep`` owns this session or takes part in it."""
        return self.owner == rep or rep in self.participants


class RoutingView(_View, frozen=True):
    """A rep's part in auto-assignment (issue 14): present only for a member of a routed team.

    ``paused_until``: the rep paused offers until then (None: offers on).
    ``skills``: what the ``skills`` routing matches issue categories against.
    The rep's capacity is :attr:`RepView.max_sessions`; the sessions that
    count against it are the ones the rep owns or takes part in, plus open offers.
    """

    paused_until: Time | None
    skills: list[str] = []


class RepView(_View, frozen=True):
    """A rep in the site's directory: what the transfer and share pickers list.

    ``max_sessions`` is the rep's capacity (their own, else their teams',
    else the site's default).  ``routing`` is left off unless the rep is a
    member of a team whose routing is not ``none``.
    """

    id: str
    name: str
    teams: list[str]
    status: RepStatus
    max_sessions: int
    connected: bool
    grace_until: Time | None  # when a dropped rep's sessions fall back
    routing: RoutingView | UnsetType = UNSET


class OfferView(_View, frozen=True):
    """A waiting session offered to one rep until ``deadline`` (issue 14).

    The rep sees the session itself in their team queue already; the offer
    names it.
    """

    session: str
    rep: str
    queue: QueueName
    at: Time
    deadline: Time


class EstimateView(_View, frozen=True):
    """A customer's estimated wait (issue 14): "about 2–4 minutes".

    ``low``/``high``: the range in whole minutes (``high`` 1 and ``low`` 0:
    "less than a minute"); ``seconds``: the point estimate.  The model is
    in docs/architecture.md ("Wait estimates").
    """

    low: int
    high: int
    seconds: float


class RuleView(_View, frozen=True):
    """A team's waiting-session rule: after ``after`` seconds unaccepted, act."""

    after: float
    action: RuleAction
    overflow_team: str | None


class TeamView(_View, frozen=True):
    """A team.  ``routing`` is left off for ``none`` (pull only, the default)."""

    id: str
    name: str
    members: list[str]
    rule: RuleView | None
    persistent: bool  # keeps its sessions when nobody of the team is connected
    routing: RoutingMode | UnsetType = UNSET


class KeyView(_View, frozen=True):
    """A one-time session key a rep generated; ``used_by`` is the session it started."""

    key: str
    rep: str
    created_at: Time
    expires_at: Time
    used_by: str | None


class TeamChatView(_View, frozen=True):
    """A team's chat as the snapshot carries it: the last lines, the count, the rep's read marker."""

    lines: list[LineView]
    last_read: int
    count: int


class SiteView(_View, frozen=True):
    grace_period: float


class SnapshotData(_View, frozen=True):
    """Everything one rep may see, as of event ``seq``.

    Sessions the rep takes part in carry their ``chat`` and ``page_html``.
    ``offers`` (issue 14): the rep's open offers, left off when there are none.
    ``estimates`` (issue 14): per team of the rep, its wait estimate as the
    last ``estimate`` event told (None: no data), so that a console shows it
    at once, not when it next changes; a team not estimated yet is left out,
    and the field when none is.
    """

    seq: int
    at: Time
    you: RepView
    site: SiteView
    reps: list[RepView]
    teams: list[TeamView]
    sessions: list[SessionView]
    team_chat: dict[str, TeamChatView]
    keys: list[KeyView]
    offers: list[OfferView] | UnsetType = UNSET
    estimates: dict[str, EstimateView | None] | UnsetType = UNSET


class CustomerLine(_View, frozen=True):
    """A chat line as the customer sees it: who wrote it by role and name, never a rep's id."""

    n: int
    at: Time
    author: Literal["customer", "rep"] | None  # None: an event line
    author_name: str | None
    text: str


class Intake(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a customer tells us when they start a session (``start``'s ``intake``).

    The engine checks the rest: a name that is only blanks, custom fields
    over the total limit.
    """

    customer_name: _Short
    company: _Short = ""
    company_code: _Short = ""
    details: Annotated[str, msgspec.Meta(max_length=DETAILS_LIMIT)] = ""
    platform: _Short = ""
    locale: _Short = ""
    external_key: _Short = ""
    portal: _Short = ""
    custom_fields: Annotated[
        dict[str, str], msgspec.Meta(description=f"text to text, at most {CUSTOM_FIELDS_LIMIT} characters in all")
    ] = msgspec.field(default_factory=dict)
    priority: Priority = Priority.NORMAL
