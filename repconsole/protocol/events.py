"""Events: what changed, as a console receives it.

An ``events`` frame carries a list of events, each ``{"seq", "kind",
"data"}``.  ``kind`` is the tag: each kind is its own Struct with its own
``data``, so a console decodes a frame straight into typed events and a
``match`` on the class replaces string comparisons.

``seq`` is the engine's global sequence number.  A rep sees only the events
it may see, so the numbers a console gets skip; the frame's ``prev`` says
which number came before, and that is how a console tells "an event for
someone else" from "an event I lost".
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from repconsole.protocol.views import EstimateView, KeyView, LineView, OfferView, QueueName, RepView, SessionView
from repconsole.protocol.vocabulary import EventKind, GoneReason, OfferOutcome

__all__ = [
    "EVENT_TYPES",
    "ChatData",
    "ChatEvent",
    "EstimateData",
    "EstimateEvent",
    "Event",
    "EventData",
    "KeyData",
    "KeyEvent",
    "OfferData",
    "OfferEndedData",
    "OfferEndedEvent",
    "OfferEvent",
    "RepData",
    "RepEvent",
    "SessionData",
    "SessionEvent",
    "SessionGoneData",
    "SessionGoneEvent",
    "TeamChatData",
    "TeamChatEvent",
    "TeamReadData",
    "TeamReadEvent",
    "make_event",
]


class _Data(msgspec.Struct, frozen=True, gc=False):
    """An event's payload: built once by the engine for every receiver."""


class SessionData(_Data, frozen=True):
    """A session changed (without its chat): to every rep who may see it now."""

    session: SessionView


class SessionGoneData(_Data, frozen=True):
    """A session left the rep's sight: to the reps who could see it before and cannot now.

    ``by`` names the rep who took it (``reason`` taken), who transferred it
    (transferred) or who left it (left); ``detail`` says why it ended
    (``reason`` ended).  ``to`` says where a transferred session went: only
    the rep who transferred it loses sight of it then, and they chose where.
    Otherwise it never says where the session went.
    """

    id: str
    reason: GoneReason
    by: str | UnsetType = UNSET
    detail: str | UnsetType = UNSET
    to: QueueName | UnsetType = UNSET


class ChatData(_Data, frozen=True):
    """A session chat line (``reps``-only lines included): to its owner and participants."""

    session: str
    line: LineView


class TeamChatData(_Data, frozen=True):
    """A team chat line: to every member of the team, the author included."""

    team: str
    line: LineView


class TeamReadData(_Data, frozen=True):
    """The rep read a team's chat up to ``last_read``: to all of that rep's consoles."""

    team: str
    last_read: int


class RepData(_Data, frozen=True):
    """A rep's directory entry changed (status, presence): to every rep."""

    rep: RepView


class KeyData(_Data, frozen=True):
    """A session key was generated or used: to its rep."""

    key: KeyView


class OfferData(_Data, frozen=True):
    """A waiting session is offered to the rep until the offer's deadline (issue 14): to that rep."""

    offer: OfferView


class OfferEndedData(_Data, frozen=True):
    """An offer ended (issue 14): to the rep it was made to.

    ``away``: this was the rep's second missed offer in a row, so the engine
    set them away; ``detail`` says so in words for the rep.
    """

    session: str
    rep: str
    outcome: OfferOutcome
    away: bool = False
    detail: str | UnsetType = UNSET


class EstimateData(_Data, frozen=True):
    """A team queue's estimated wait for a customer who arrives now changed (issue 14): to the team's members.

    ``estimate`` None: no data (too few customers served lately, or nobody
    to serve them): the customer page says "we are busier than usual".
    """

    team: str
    estimate: EstimateView | None


EventData = (
    SessionData | SessionGoneData | ChatData | TeamChatData | TeamReadData | RepData | KeyData
    | OfferData | OfferEndedData | EstimateData
)  # fmt: skip


class _Event(msgspec.Struct, frozen=True, gc=False, tag_field="kind"):
    seq: int


class SessionEvent(_Event, frozen=True, tag=EventKind.SESSION.value):
    data: SessionData


class SessionGoneEvent(_Event, frozen=True, tag=EventKind.SESSION_GONE.value):
    data: SessionGoneData


class ChatEvent(_Event, frozen=True, tag=EventKind.CHAT.value):
    data: ChatData


class TeamChatEvent(_Event, frozen=True, tag=EventKind.TEAM_CHAT.value):
    data: TeamChatData


class TeamReadEvent(_Event, frozen=True, tag=EventKind.TEAM_READ.value):
    data: TeamReadData


class RepEvent(_Event, frozen=True, tag=EventKind.REP.value):
    data: RepData


class KeyEvent(_Event, frozen=True, tag=EventKind.KEY.value):
    data: KeyData


class OfferEvent(_Event, frozen=True, tag=EventKind.OFFER.value):
    data: OfferData


class OfferEndedEvent(_Event, frozen=True, tag=EventKind.OFFER_ENDED.value):
    data: OfferEndedData


class EstimateEvent(_Event, frozen=True, tag=EventKind.ESTIMATE.value):
    data: EstimateData


Event = (
    SessionEvent | SessionGoneEvent | ChatEvent | TeamChatEvent | TeamReadEvent | RepEvent | KeyEvent
    | OfferEvent | OfferEndedEvent | EstimateEvent
)  # fmt: skip

EVENT_TYPES: Final[dict[EventKind, type[Event]]] = {
    EventKind.SESSION: SessionEvent,
    EventKind.SESSION_GONE: SessionGoneEvent,
    EventKind.CHAT: ChatEvent,
    EventKind.TEAM_CHAT: TeamChatEvent,
    EventKind.TEAM_READ: TeamReadEvent,
    EventKind.REP: RepEvent,
    EventKind.KEY: KeyEvent,
    EventKind.OFFER: OfferEvent,
    EventKind.OFFER_ENDED: OfferEndedEvent,
    EventKind.ESTIMATE: EstimateEvent,
}
_DATA_KINDS: Final[dict[type[_Data], EventKind]] = {
    SessionData: EventKind.SESSION,
    SessionGoneData: EventKind.SESSION_GONE,
    ChatData: EventKind.CHAT,
    TeamChatData: EventKind.TEAM_CHAT,
    TeamReadData: EventKind.TEAM_READ,
    RepData: EventKind.REP,
    KeyData: EventKind.KEY,
    OfferData: EventKind.OFFER,
    OfferEndedData: EventKind.OFFER_ENDED,
    EstimateData: EventKind.ESTIMATE,
}


def kind_of(data: EventData) -> EventKind:
    """The kind of event that carries ``data``."""
    return _DATA_KINDS[type(data)]


def make_event(seq: int, data: EventData) -> Event:
    """The wire event numbered ``seq`` that carries ``data``."""
    return EVENT_TYPES[_DATA_KINDS[type(data)]](seq, data)  # type: ignore[arg-type]
