"""Co-browsing: the customer's live page, relayed to the reps in the session.

The page is recorded by rrweb in the customer's browser (with every typed
value masked there), sent on its own endpoint, ``/cobrowse``, and relayed by
the server to the reps who watch it.  It is a side channel: not engine
state, never stored, no sequence numbers of the engine's feed.

**Recorder endpoint** (``/cobrowse``, the help-link snippet in the customer's page)

* page → server: :class:`Attach` (with the customer's session token),
  :class:`Record` (a chunk of a batch of rrweb events), :class:`PageInfo`,
  :class:`StopSharing`
* server → page: :class:`Attached`, :class:`SnapshotPlease`,
  :class:`Pointer`, :class:`Watching`, :class:`~repconsole.protocol.Error`

**On the rep endpoint** (``/rep``), beside the engine's feed

* commands ``cobrowse_watch``, ``cobrowse_unwatch``, ``cobrowse_point``,
  ``cobrowse_ticket`` (:data:`COBROWSE_COMMANDS`)
* server → console: :class:`CobrowseChunk` (rrweb events) and
  :class:`CobrowseStatus`

A batch of rrweb events travels as the text of a JSON array, cut into parts
of at most :data:`CHUNK_CHARS` characters (a full snapshot of a big page is
megabytes; a frame the server receives is at most 64 KiB).  The server
joins a batch's parts, checks that it is an array of rrweb events, and never
looks inside them beyond their ``type`` and ``timestamp``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
from msgspec import UNSET, UnsetType

from repconsole.protocol.commands import Args, CommandResult
from repconsole.protocol.vocabulary import INT64_MAX, PAGE_URL_LIMIT, MessageType, RequestId

__all__ = [
    "CHUNK_CHARS",
    "COBROWSE_COMMANDS",
    "Attach",
    "Attached",
    "CobrowseChunk",
    "CobrowseCommand",
    "CobrowseName",
    "CobrowseSpec",
    "CobrowseState",
    "CobrowseStatus",
    "NoResult",
    "PageInfo",
    "PointArgs",
    "Pointer",
    "Record",
    "RecorderReply",
    "RecorderRequest",
    "RrwebType",
    "SnapshotPlease",
    "StopSharing",
    "TicketResult",
    "WatchArgs",
    "WatchResult",
    "Watching",
]

# Characters of event JSON per part.  Well under the 64 KiB frame limit even
# when every character is a 3-byte UTF-8 sequence.
CHUNK_CHARS: Final = 20_000
_TITLE_LIMIT = 512
_Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Token = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Chunk = Annotated[str, msgspec.Meta(max_length=CHUNK_CHARS)]
_Url = Annotated[str, msgspec.Meta(max_length=PAGE_URL_LIMIT)]
_Title = Annotated[str, msgspec.Meta(max_length=_TITLE_LIMIT)]
_Coordinate = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]


class RrwebType(enum.IntEnum):
    """The rrweb event types the relay needs to tell apart (rrweb's ``EventType``)."""

    DOM_CONTENT_LOADED = 0
    LOAD = 1
    FULL_SNAPSHOT = 2
    INCREMENTAL_SNAPSHOT = 3
    META = 4
    CUSTOM = 5
    PLUGIN = 6


class CobrowseState(enum.StrEnum):
    """Where a session's co-browsing stands, as the rep's tab shows it."""

    WAITING = "waiting"  # no recorder attached yet (consent pending, or a page loading)
    LIVE = "live"  # the customer's page streams
    RESYNC = "resync"  # the stream overflowed; a fresh snapshot was asked for
    STOPPED = "stopped"  # the customer stopped sharing
    ENDED = "ended"  # the session is over


class CobrowseName(enum.StrEnum):
    """The co-browsing commands a rep sends on ``/rep`` (``{"type": "command", "name": ...}``)."""

    WATCH = "cobrowse_watch"
    UNWATCH = "cobrowse_unwatch"
    POINT = "cobrowse_point"
    TICKET = "cobrowse_ticket"


# ======================================================================
# recorder endpoint: page -> server


class _Request(msgspec.Struct, frozen=True, tag_field="type"):
    pass


class Attach(_Request, frozen=True, tag=MessageType.ATTACH.value):
    """This page records the session whose customer token it holds (after consent).

    A page that attaches replaces the session's previous recorder: the
    customer navigated, or reloaded.
    """

    id: RequestId
    token: _Token
    page_url: _Url = ""
    title: _Title = ""

    def __repr__(self) -> str:
        return f"Attach(id={self.id!r}, page_url={self.page_url!r})"


class Record(_Request, frozen=True, tag=MessageType.RECORD.value):
    """Part ``part`` of ``parts`` of batch ``batch``: the text of a JSON array of rrweb events."""

    batch: _Count
    part: _Count
    parts: Annotated[int, msgspec.Meta(ge=1, le=4096)]
    data: _Chunk


class PageInfo(_Request, frozen=True, tag=MessageType.PAGE.value):
    """The page's address or title changed (navigation within a single-page app)."""

    url: _Url
    title: _Title = ""


class StopSharing(_Request, frozen=True, tag=MessageType.STOP.value):
    """The customer pressed Stop: recording is over for this session; the chat goes on."""


RecorderRequest = Attach | Record | PageInfo | StopSharing


# ======================================================================
# recorder endpoint: server -> page


class _Reply(msgspec.Struct, frozen=True, tag_field="type"):
    pass


class Attached(_Reply, frozen=True, tag=MessageType.ATTACHED.value):
    """The page records session ``session``; ``watching`` reps watch it now."""

    id: RequestId
    session: str
    watching: list[str]  # the reps' names


class SnapshotPlease(_Reply, frozen=True, tag=MessageType.SNAPSHOT_PLEASE.value):
    """Send a fresh full snapshot: a rep joined without one, or the stream overflowed."""

    reason: str


class Pointer(_Reply, frozen=True, tag=MessageType.POINTER.value):
    """A rep points at (``x``, ``y``) of the page (CSS pixels from the document's top left)."""

    x: float
    y: float
    by: str  # the rep's name


class Watching(_Reply, frozen=True, tag=MessageType.WATCHING.value):
    """The reps who watch the page now (their names), so the customer knows who sees it."""

    reps: list[str]


RecorderReply = Attached | SnapshotPlease | Pointer | Watching


# ======================================================================
# rep endpoint: server -> console, beside the feed


class CobrowseChunk(msgspec.Struct, frozen=True, tag_field="type", tag=MessageType.COBROWSE.value, gc=False):
    """Part of a batch of the customer's page events, for a rep who watches session ``session``.

    ``at`` is when the server received the batch (server clock): a console
    shows the stream's delay from it.
    """

    session: str
    batch: int
    part: int
    parts: int
    data: str
    at: float


class CobrowseStatus(msgspec.Struct, frozen=True, tag_field="type", tag=MessageType.COBROWSE_STATE.value):
    """How a watched session's co-browsing stands: its state, the customer's page address and title."""

    session: str
    state: CobrowseState
    url: str
    title: str
    at: float
    detail: str | UnsetType = UNSET


# ======================================================================
# rep commands


class WatchArgs(Args, frozen=True):
    """``cobrowse_watch`` and ``cobrowse_unwatch``, ``cobrowse_ticket``: the session."""

    session: Annotated[str, msgspec.Meta(min_length=1)]


class PointArgs(Args, frozen=True):
    """``cobrowse_point``: where on the customer's page (CSS pixels from the document's top left)."""

    session: Annotated[str, msgspec.Meta(min_length=1)]
    x: _Coordinate
    y: _Coordinate


class WatchResult(CommandResult, frozen=True):
    """The stream's state now; its events follow as ``cobrowse`` messages (the buffered snapshot first)."""

    state: CobrowseState
    url: str
    title: str


class NoResult(CommandResult, frozen=True):
    """``{}``."""


class TicketResult(CommandResult, frozen=True):
    """A single-use address of the live view, for a browser: redeemed within ``expires_at``."""

    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class CobrowseSpec:
    """What one command answered beside the engine takes and gives: co-browsing's (the relay
    answers them) and the snippet book's (:data:`~repconsole.protocol.snippets.SNIPPET_COMMANDS`)."""

    name: enum.StrEnum
    args: type[Args]
    result: type[CommandResult]


COBROWSE_COMMANDS: Final[dict[str, CobrowseSpec]] = {
    spec.name.value: spec
    for spec in (
        CobrowseSpec(CobrowseName.WATCH, WatchArgs, WatchResult),
        CobrowseSpec(CobrowseName.UNWATCH, WatchArgs, NoResult),
        CobrowseSpec(CobrowseName.POINT, PointArgs, NoResult),
        CobrowseSpec(CobrowseName.TICKET, WatchArgs, TicketResult),
    )
}

CobrowseCommand = WatchArgs | PointArgs
