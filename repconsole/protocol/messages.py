"""Every message on both endpoints, both ways, and how frames become messages.

One text frame carries one message: a JSON object whose ``type`` is the
tag of one Struct below.  docs/protocol.md is the human reference for what
each means; docs/protocol.schema.json is generated from this module.

**Rep endpoint** (``/rep``)

* console → server: :class:`Login`, :class:`Resume`, :class:`Command`, :class:`Logout`,
  :class:`Typing`
* server → console: :class:`Welcome`, :class:`Snapshot` (then its :class:`SnapshotPart` frames),
  :class:`Events`, :class:`Result`, :class:`Error`, :class:`CustomerIsTyping`

**Customer endpoint** (``/customer``)

* page → server: :class:`Start`, :class:`CustomerResume`, :class:`Say`, :class:`Leave`,
  :class:`CustomerTyping`
* server → page: :class:`Started`, :class:`Status`, :class:`Chat`, :class:`Result`, :class:`Error`,
  :class:`RepIsTyping`

The typing messages (issue 14) are transients: never answered, never
stored, never events (they take no ``seq``); see docs/protocol.md, Typing.

Parsing is sans-I/O: :func:`parse_rep` and :func:`parse_customer` turn a
received frame into a message or raise :class:`ProtocolError` with the
reason to answer with (and the request id, when one could be read), so that
a malformed frame is answered and never kills the connection.  The envelope
is lenient (fields a message does not define are ignored: a newer client
may send more); what goes to the engine is strict (a command's ``args`` and
a customer's ``intake`` refuse unknown fields).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from repconsole.protocol.cobrowse import (
    Attach,
    CobrowseChunk,
    CobrowseStatus,
    PageInfo,
    Record,
    RecorderReply,
    RecorderRequest,
    StopSharing,
)
from repconsole.protocol.events import Event
from repconsole.protocol.snippets import Snippets
from repconsole.protocol.views import CustomerLine, EstimateView, Intake, SessionView, SnapshotData
from repconsole.protocol.vocabulary import (
    ID_LIMIT,
    INT64_MAX,
    PAGE_HTML_LIMIT,
    PAGE_URL_LIMIT,
    CustomerState,
    ErrorReason,
    MessageType,
    Reason,
    RequestId,
    ResumeReason,
    Via,
)

__all__ = [
    "Chat",
    "Command",
    "CustomerIsTyping",
    "CustomerReply",
    "CustomerRequest",
    "CustomerResume",
    "CustomerTyping",
    "EmptyResult",
    "Error",
    "Events",
    "Leave",
    "Login",
    "Logout",
    "ProtocolError",
    "RepIsTyping",
    "RepReply",
    "RepRequest",
    "RequestId",
    "Result",
    "Resume",
    "Say",
    "SayResult",
    "Snapshot",
    "SnapshotJoiner",
    "SnapshotPart",
    "Start",
    "Started",
    "Status",
    "Typing",
    "Welcome",
    "decode",
    "encode",
    "events_frame",
    "invalid_field",
    "parse_customer",
    "parse_customer_reply",
    "parse_recorder",
    "parse_recorder_reply",
    "parse_rep",
    "parse_rep_reply",
    "request_key",
]

_Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Parts = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]
_Version = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]


_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
_Token = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_CommandName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# A page's random key for one start (at least 96 bits as base64url): see Start.retry_key.
_RetryKey = Annotated[str, msgspec.Meta(min_length=16, max_length=128, pattern="^[A-Za-z0-9_-]+$")]


# An error's reason: the engine's refusals and the protocol's own.  Typed as
# text (two string enums cannot share a field), listed in full in the schema.
_ErrorCode = Annotated[
    str, msgspec.Meta(extra_json_schema={"enum": sorted({*Reason, *ErrorReason})})
]


# ======================================================================
# rep endpoint: console -> server


class _Request(msgspec.Struct, frozen=True, tag_field="type"):
    id: RequestId


class Login(_Request, frozen=True, tag=MessageType.LOGIN.value):
    """Sign in.  The password is capped because it is hashed: an unbounded one burns CPU."""

    username: _Name
    password: _Password
    protocol: _Version = 1

    def __repr__(self) -> str:
        return f"Login(id={self.id!r}, username={self.username!r}, protocol={self.protocol})"


class Resume(_Request, frozen=True, tag=MessageType.RESUME.value):
    """Pick a login session up again on a new connection, from the last event seen."""

    token: _Token
    last_seq: _Count
    protocol: _Version = 1

    def __repr__(self) -> str:
        return f"Resume(id={self.id!r}, last_seq={self.last_seq}, protocol={self.protocol})"


class Command(_Request, frozen=True, tag=MessageType.COMMAND.value):
    """Run a rep command (:data:`repconsole.protocol.commands.COMMANDS`).  ``args`` may be left out."""

    name: _CommandName
    args: dict[str, Any] = {}


class Logout(_Request, frozen=True, tag=MessageType.LOGOUT.value):
    """End the login session; every connection of it closes with 4000."""


class Typing(_Request, frozen=True, tag=MessageType.TYPING.value):
    """The rep is typing in ``session``'s chat (throttled: at most one every 2 s).  Never answered.

    The server passes it on to the session's customer only if the rep takes
    part in the session; otherwise it is dropped, silently (a transient is
    not worth an error, and an error would tell what the rep may not see).
    """

    session: _Name


RepRequest = Login | Resume | Command | Logout | Typing


# ======================================================================
# rep endpoint: server -> console


class _Reply(msgspec.Struct, frozen=True, tag_field="type"):
    pass


class Welcome(_Reply, frozen=True, tag=MessageType.WELCOME.value):
    """The login or resume succeeded.  A snapshot follows, or (``resumed``) an events frame.

    ``reason`` says why a resume got a fresh snapshot instead of a replay.
    """

    id: RequestId
    rep: str
    token: str
    resumed: bool
    expires_at: float
    server_time: float
    resume_window: float
    protocol: int
    reason: ResumeReason | UnsetType = UNSET

    def __repr__(self) -> str:
        return f"Welcome(id={self.id!r}, rep={self.rep!r}, resumed={self.resumed}, reason={self.reason!r})"


class Snapshot(_Reply, frozen=True, tag=MessageType.SNAPSHOT.value):
    """Everything the rep may see, as of event ``seq`` (= ``data.seq``).

    A big snapshot is cut into ``parts`` frames: this one, whose
    ``data.sessions`` are the first sessions, then ``parts - 1``
    :class:`SnapshotPart` frames with the others, in order, with nothing else
    between them.  ``total`` is the number of sessions in all the parts (the
    server always says it; a snapshot made in-process may leave it unset).
    :class:`SnapshotJoiner` puts the parts together.
    """

    seq: int
    data: SnapshotData
    parts: _Parts = 1
    total: _Count | UnsetType = UNSET


class SnapshotPart(_Reply, frozen=True, tag=MessageType.SNAPSHOT_PART.value):
    """Part ``part`` (1 to ``parts - 1``) of the snapshot of event ``seq``: its next sessions."""

    seq: int
    part: _Parts
    sessions: list[SessionView]


class Events(_Reply, frozen=True, tag=MessageType.EVENTS.value):
    """Events after ``prev``, in order.  A console whose last event is not ``prev`` must resume."""

    prev: int
    events: list[Event]


class Result(_Reply, frozen=True, tag=MessageType.RESULT.value):
    """A request succeeded.  ``result`` is the command's result Struct (as JSON)."""

    id: RequestId
    result: msgspec.Raw


class Error(_Reply, frozen=True, tag=MessageType.ERROR.value, kw_only=True):
    """A request was refused (``reason``: a :class:`Reason` or an :class:`ErrorReason`).

    ``detail`` is a sentence for people; ``data`` holds facts (``{"by":
    "priya"}`` for already_taken, ``{"field": "text"}`` for invalid).  ``id``
    is absent when the request's id could not be read.
    """

    id: RequestId | UnsetType = UNSET
    reason: _ErrorCode
    detail: str
    data: dict[str, Any]


class CustomerIsTyping(_Reply, frozen=True, tag=MessageType.TYPING.value):
    """The customer of ``session`` is typing (issue 14; sent only to consoles of version 3 on).

    A transient beside the feed: not an event, no ``seq``, not replayed.  The
    console shows it until the customer's line arrives or 5 s pass without another.
    """

    session: str


RepReply = Welcome | Snapshot | SnapshotPart | Events | Result | Error | CobrowseChunk | CobrowseStatus | CustomerIsTyping | Snippets


class SnapshotJoiner:
    """Puts a snapshot that came in parts back together: :meth:`add` each frame, in order.

    ``add`` returns the whole :class:`Snapshot` (``parts`` 1, every session in
    ``data.sessions``) once its last part is in, else None; a part that is not
    the next one of the snapshot being joined raises :class:`ProtocolError`.

    Attributes:
        received: sessions received so far of the snapshot being joined.
        total: the number of sessions it has in all (0 when nothing is being joined).
    """

    def __init__(self) -> None:
        self._head: Snapshot | None = None
        self._sessions: list[SessionView] = []
        self._next = 0

    @property
    def joining(self) -> bool:
        return self._head is not None

    @property
    def received(self) -> int:
        return len(self._sessions)

    @property
    def total(self) -> int:
        head = self._head
        if head is None:
            return 0
        return head.total if isinstance(head.total, int) else len(self._sessions)

    def add(self, message: Snapshot | SnapshotPart) -> Snapshot | None:
        if isinstance(message, Snapshot):
            if message.parts == 1:
                self.forget()
                return message
            self._head, self._sessions, self._next = message, list(message.data.sessions), 1
            return None
        head = self._head
        if head is None or message.seq != head.seq or message.part != self._next:
            expected = "no part" if head is None else f"part {self._next} of the snapshot of event {head.seq}"
            self.forget()
            raise ProtocolError(ErrorReason.BAD_MESSAGE, f"snapshot part {message.part} of event {message.seq} came, {expected} was due")
        self._sessions.extend(message.sessions)
        self._next += 1
        if self._next < head.parts:
            return None
        sessions = self._sessions
        self.forget()
        if isinstance(head.total, int) and head.total != len(sessions):
            raise ProtocolError(ErrorReason.BAD_MESSAGE, f"the snapshot of event {head.seq} said {head.total} sessions and had {len(sessions)}")
        return Snapshot(head.seq, msgspec.structs.replace(head.data, sessions=sessions), 1, len(sessions))

    def forget(self) -> None:
        """Drop a snapshot half joined (the connection it came on is gone)."""
        self._head, self._sessions, self._next = None, [], 0


# ======================================================================
# customer endpoint: page -> server


class Start(_Request, frozen=True, tag=MessageType.START.value):
    """Start a session ``via`` one of the ways in; the field named like ``via`` says with what.

    ``page_url`` and ``page_html`` come only with ``via`` link (browser sharing).

    ``retry_key``: a random key the page makes once per start and sends with every attempt of it.  A start
    with the key and the content (``via``, its target, ``issue``, ``intake``) of one the server started
    within ten minutes is that start again, not a new session:
    its answer is ``started`` with the same session (and a new token for it).  Why: a cluster's
    follower may answer a start "retryable" when the leader did start it (its reply was late or lost);
    without the key the page's retry made a second session, the first orphaned in the queue.
    """

    via: Via
    intake: Intake
    issue: _Name | UnsetType = UNSET
    key: _Name | UnsetType = UNSET
    rep: _Name | UnsetType = UNSET
    button: _Name | UnsetType = UNSET
    link: _Name | UnsetType = UNSET
    page_url: Annotated[str, msgspec.Meta(max_length=PAGE_URL_LIMIT)] = ""
    page_html: Annotated[str, msgspec.Meta(max_length=PAGE_HTML_LIMIT)] = ""
    retry_key: _RetryKey | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(getattr(self, self.via.value), str):
            raise ValueError(f"via {self.via.value!r} needs the field {self.via.value!r}")
        if (self.page_url or self.page_html) and self.via is not Via.LINK:
            raise ValueError("page_url and page_html come only with via 'link'")

    @property
    def target(self) -> str:
        """The issue code, key, rep id, button id or link id the customer chose."""
        value = getattr(self, self.via.value)
        assert isinstance(value, str)
        return value


class CustomerResume(_Request, frozen=True, tag=MessageType.RESUME.value):
    """A page that reloaded picks its session up again; lines after ``last_line`` follow."""

    token: _Token
    last_line: _Count = 0

    def __repr__(self) -> str:
        return f"CustomerResume(id={self.id!r}, last_line={self.last_line})"


class Say(_Request, frozen=True, tag=MessageType.SAY.value):
    """A chat line from the customer (the engine checks its text)."""

    text: str


class Leave(_Request, frozen=True, tag=MessageType.LEAVE.value):
    """The customer ends the session."""


class CustomerTyping(_Request, frozen=True, tag=MessageType.TYPING.value):
    """The customer is typing (throttled: at most one every 2 s).  Never answered once the session started."""


CustomerRequest = Start | CustomerResume | Say | Leave | CustomerTyping


# ======================================================================
# customer endpoint: server -> page


class Started(_Reply, frozen=True, tag=MessageType.STARTED.value):
    """The session is this page's; ``token`` is the only key to it."""

    id: RequestId
    session: str
    token: str
    resumed: bool

    def __repr__(self) -> str:
        return f"Started(id={self.id!r}, session={self.session!r}, resumed={self.resumed})"


class Status(_Reply, frozen=True, tag=MessageType.STATUS.value):
    """What the page shows: waiting (at a ``position``, or ``held``), with a rep, or ended (``detail``: why).

    ``estimate`` (issue 14, waiting only): the estimated wait, or None for
    "no data" (the page says "we are busier than usual").
    """

    state: CustomerState
    position: int | UnsetType = UNSET
    held: bool | UnsetType = UNSET  # only ever true
    rep_name: str | UnsetType = UNSET
    detail: str | UnsetType = UNSET
    estimate: EstimateView | UnsetType | None = UNSET


class Chat(_Reply, frozen=True, tag=MessageType.CHAT.value):
    """A chat line the customer may see."""

    line: CustomerLine


class SayResult(msgspec.Struct, frozen=True):
    """The result of the customer's ``say``: their line as the chat shows it."""

    line: CustomerLine


class EmptyResult(msgspec.Struct, frozen=True):
    """The result of ``leave``: ``{}``."""


class RepIsTyping(_Reply, frozen=True, tag=MessageType.TYPING.value):
    """A rep of the session is typing; ``name`` is the rep's display name (never the rep's id)."""

    name: str


CustomerReply = Started | Status | Chat | Result | Error | RepIsTyping


# ======================================================================
# frames <-> messages


class ProtocolError(Exception):
    """A frame that cannot be served.  Answer with :meth:`reply`.

    ``reason`` is :attr:`ErrorReason.BAD_MESSAGE` for a malformed envelope,
    or :attr:`Reason.INVALID` (with ``data["field"]``) for a malformed
    customer intake, which the engine would refuse the same way.
    """

    def __init__(
        self, reason: ErrorReason | Reason, detail: str, request_id: Any = None, **data: Any
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.request_id = request_id
        self.data = data

    def reply(self) -> Error:
        rid = UNSET if self.request_id is None else self.request_id
        return Error(id=rid, reason=self.reason.value, detail=self.detail, data=self.data)


_encoder = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    """UTF-8 JSON bytes of a message (or of any view)."""
    return _encoder.encode(message)


def decode(frame: str | bytes) -> Any:
    """A frame as plain JSON values; raises ProtocolError.  For tests and tools, not the hot path."""
    try:
        return msgspec.json.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorReason.BAD_MESSAGE, f"not JSON: {exc}") from None


def request_key(rid: str | int) -> str:
    """Request ids 1 and "1" are different ids: key them by their JSON."""
    return encode(rid).decode()


_EVENTS_HEAD: Final = b'{"type":"' + MessageType.EVENTS.value.encode() + b'","prev":'


def events_frame(prev: int, items: Sequence[bytes]) -> bytes:
    """An :class:`Events` frame from events encoded once each (``encode(event)``), without re-encoding.

    The server encodes an event once and sends it to hundreds of consoles;
    tests check that this equals ``encode(Events(prev, events))``.
    """
    return b"".join((_EVENTS_HEAD, str(prev).encode(), b',"events":[', b",".join(items), b"]}"))


class _StartEnvelope(Start, frozen=True, tag=MessageType.START.value):
    """A start with its intake unread: to tell a malformed start from a malformed intake."""

    intake: dict[str, Any]  # type: ignore[assignment]


class _Envelope(msgspec.Struct):
    """The least a message must have; read only to explain why a frame was refused."""

    type: Any = None
    id: Any = None


class _Decoders:
    """The decoders, each built at its first frame.

    Building one resolves the annotations of every Struct it can meet (about
    5 ms in all); a console on the simulator never decodes a frame, so its
    start does not pay for them.
    """

    @functools.cached_property
    def request_id(self) -> msgspec.json.Decoder[RequestId]:
        return msgspec.json.Decoder(RequestId)

    @functools.cached_property
    def rep(self) -> msgspec.json.Decoder[RepRequest]:
        return msgspec.json.Decoder(RepRequest)

    @functools.cached_property
    def customer(self) -> msgspec.json.Decoder[CustomerRequest]:
        return msgspec.json.Decoder(CustomerRequest)

    @functools.cached_property
    def recorder(self) -> msgspec.json.Decoder[RecorderRequest]:
        return msgspec.json.Decoder(RecorderRequest)

    @functools.cached_property
    def rep_reply(self) -> msgspec.json.Decoder[RepReply]:
        return msgspec.json.Decoder(RepReply)

    @functools.cached_property
    def customer_reply(self) -> msgspec.json.Decoder[CustomerReply]:
        return msgspec.json.Decoder(CustomerReply)

    @functools.cached_property
    def recorder_reply(self) -> msgspec.json.Decoder[RecorderReply | Error]:
        return msgspec.json.Decoder(RecorderReply | Error)


_decoders = _Decoders()
_REP_TYPES: Final = frozenset(t.__struct_config__.tag for t in (Login, Resume, Command, Logout, Typing))
_CUSTOMER_TYPES: Final = frozenset(t.__struct_config__.tag for t in (Start, CustomerResume, Say, Leave, CustomerTyping))
_RECORDER_TYPES: Final = frozenset(t.__struct_config__.tag for t in (Attach, Record, PageInfo, StopSharing))

_M = TypeVar("_M")


def parse_rep(frame: str | bytes) -> RepRequest:
    """One frame from a console.  Raises ProtocolError."""
    return _parse(frame, _decoders.rep, _REP_TYPES)


def parse_customer(frame: str | bytes) -> CustomerRequest:
    """One frame from a customer page.  Raises ProtocolError."""
    return _parse(frame, _decoders.customer, _CUSTOMER_TYPES)


def parse_recorder(frame: str | bytes) -> RecorderRequest:
    """One frame from a customer page's recorder (``/cobrowse``).  Raises ProtocolError."""
    return _parse(frame, _decoders.recorder, _RECORDER_TYPES)


def parse_recorder_reply(frame: str | bytes) -> RecorderReply | Error:
    """One frame from the server to a recorder (test clients, tools).  Raises ProtocolError."""
    return _parse_reply(frame, _decoders.recorder_reply)


def parse_rep_reply(frame: str | bytes) -> RepReply:
    """One frame from the server to a console.  Raises ProtocolError (the server is at fault)."""
    return _parse_reply(frame, _decoders.rep_reply)


def parse_customer_reply(frame: str | bytes) -> CustomerReply:
    """One frame from the server to a customer page (test clients, tools).  Raises ProtocolError."""
    return _parse_reply(frame, _decoders.customer_reply)


def _parse(frame: str | bytes, decoder: msgspec.json.Decoder[_M], types: frozenset[Any]) -> _M:
    if isinstance(frame, bytes):
        raise ProtocolError(ErrorReason.BAD_MESSAGE, "messages are text frames")
    try:
        return decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise _refusal(frame, exc, types) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorReason.BAD_MESSAGE, f"not JSON: {exc}") from None
    except RecursionError:  # msgspec's own depth limit: valid JSON nested ~1000 deep
        raise ProtocolError(ErrorReason.BAD_MESSAGE, "not JSON: nested too deep") from None


def _parse_reply(frame: str | bytes, decoder: msgspec.json.Decoder[_M]) -> _M:
    try:
        return decoder.decode(frame)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(ErrorReason.BAD_MESSAGE, f"the server sent a malformed message: {exc}") from None


_PATH = re.compile(r" - at `\$((?:\.\w+)*)")
_NAMED = re.compile(r"missing required field `(\w+)`")


def invalid_field(exc: msgspec.ValidationError) -> str | None:
    """The field a validation error is about: the last name of its path, or the missing field.

    ``Expected `str`, got `int` - at `$.intake.company``` -> ``company``;
    ``Object missing required field `session``` -> ``session``.  None for an
    unknown field (it is not one of ours) or an error about the whole object.
    """
    text = str(exc)
    named = _NAMED.search(text)
    if named is not None:
        return named.group(1)
    if "unknown field" in text:
        return None
    path = _PATH.search(text)
    if path is None or not path.group(1):
        return None
    return path.group(1).rsplit(".", 1)[-1]


def _refusal(frame: str, exc: msgspec.ValidationError, types: frozenset[Any]) -> ProtocolError:
    """Why a frame that is JSON did not decode, as the error to answer with."""
    try:
        msgspec.json.decode(frame)
    except msgspec.DecodeError as invalid:  # also a number no double holds (1e999), and trailing characters
        return ProtocolError(ErrorReason.BAD_MESSAGE, f"not JSON: {invalid}")
    except RecursionError:
        return ProtocolError(ErrorReason.BAD_MESSAGE, "not JSON: nested too deep")
    try:
        envelope = msgspec.json.decode(frame, type=_Envelope)
    except msgspec.ValidationError:
        return ProtocolError(ErrorReason.BAD_MESSAGE, "a message is a JSON object")
    try:
        rid: Any = _decoders.request_id.decode(encode(envelope.id))
    except msgspec.ValidationError:
        rid = None
    if rid is None:
        if not isinstance(envelope.type, str):
            return ProtocolError(ErrorReason.BAD_MESSAGE, "type and id are required")
        return ProtocolError(ErrorReason.BAD_MESSAGE, f"id must be an integer or a string of 1 to {ID_LIMIT} characters")
    if not isinstance(envelope.type, str):
        return ProtocolError(ErrorReason.BAD_MESSAGE, "type must be a string", rid)
    if envelope.type not in types:
        return ProtocolError(ErrorReason.UNKNOWN_TYPE, f"unknown message type {envelope.type[:64]!r}", rid)
    text = str(exc)
    path = _PATH.search(text)
    if path is not None and path.group(1).startswith(".intake") and not (path.group(1) == ".intake" and "Expected `object`" in text):
        # The engine refuses a bad intake field with "invalid" and names the
        # field; a page must get the same answer whichever layer noticed.
        # The rest of the start is checked first: a malformed envelope is bad_message.
        try:
            msgspec.json.decode(frame, type=_StartEnvelope)
        except msgspec.ValidationError as envelope_error:
            return ProtocolError(ErrorReason.BAD_MESSAGE, str(envelope_error), rid)
        field = invalid_field(exc)
        data = {"field": field} if field and field != "intake" else {}
        return ProtocolError(Reason.INVALID, f"intake: {text}", rid, **data)
    return ProtocolError(ErrorReason.BAD_MESSAGE, text, rid)
