"""The wire protocol, sans-I/O: frames in, typed messages out, and back.

Nothing here touches a socket or the engine.  :func:`parse_rep` and
:func:`parse_customer` turn one received frame into a message dataclass or
raise :class:`ProtocolError` with the reason to answer with (and the request
id, when one could be read), so that a malformed frame is answered and never
kills the connection.  Outgoing messages are dataclasses whose
``serialize()`` returns the UTF-8 JSON bytes of one text frame.

docs/protocol.md is the contract; docs/protocol.schema.json describes the
same messages for machines, and the tests check real traffic against it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from repconsole.core.errors import CommandError

__all__ = [
    "MAX_FRAME",
    "CloseCode",
    "Command",
    "CustomerChat",
    "CustomerMessage",
    "CustomerResume",
    "CustomerState",
    "Error",
    "ErrorReason",
    "Leave",
    "Login",
    "Logout",
    "ProtocolError",
    "RepMessage",
    "RequestId",
    "Result",
    "Resume",
    "ResumeReason",
    "Say",
    "Snapshot",
    "Start",
    "Started",
    "Status",
    "Via",
    "Welcome",
    "decode",
    "encode",
    "events_frame",
    "parse_customer",
    "parse_rep",
]

# Frames the server receives are at most this big (websockets' max_size);
# a larger one closes the connection with 1009.  Frames the server sends
# (a snapshot of a busy site) are not limited.
MAX_FRAME = 64 * 1024

RequestId = str | int
_ID_LIMIT = 128  # characters of a string request id
_INT64 = 2**63


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    MESSAGE_TOO_BIG = 1009
    SERVER_ERROR = 1011
    LOGGED_OUT = 4000
    NOT_AUTHENTICATED = 4401
    TOO_SLOW = 4408


class ErrorReason(enum.StrEnum):
    """The protocol's own error reasons; commands add :class:`~repconsole.core.errors.Reason`."""

    BAD_MESSAGE = "bad_message"  # not JSON, not an object, no or invalid type, id or field
    UNKNOWN_TYPE = "unknown_type"
    NOT_LOGGED_IN = "not_logged_in"
    ALREADY_LOGGED_IN = "already_logged_in"
    BAD_CREDENTIALS = "bad_credentials"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_UNKNOWN = "token_unknown"
    NOT_STARTED = "not_started"  # customer: say or leave before start/resume
    ALREADY_STARTED = "already_started"  # customer: a second start on one connection
    INTERNAL_ERROR = "internal_error"  # a bug in the server; nothing was confirmed


class ResumeReason(enum.StrEnum):
    OUTSIDE_RESUME_WINDOW = "outside_resume_window"


class ProtocolError(Exception):
    """A frame that cannot be served.  Answer with an error naming ``reason``."""

    def __init__(self, reason: ErrorReason, detail: str, request_id: RequestId | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.request_id = request_id

    def reply(self) -> Error:
        return Error(self.request_id, self.reason.value, self.detail)


# ------------------------------------------------------------------ JSON

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode(obj: Any) -> bytes:
    """JSON bytes.  Engine payloads carry StrEnums, which encode as their values."""
    return _encoder.encode(obj)


def decode(frame: str | bytes) -> Any:
    try:
        return _decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorReason.BAD_MESSAGE, f"not JSON: {exc}") from None
    except RecursionError:  # msgspec's own depth limit: valid JSON nested ~1000 deep
        raise ProtocolError(ErrorReason.BAD_MESSAGE, "not JSON: nested too deep") from None


def _object(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        raise ProtocolError(ErrorReason.BAD_MESSAGE, "messages are text frames")
    msg = decode(frame)
    if not isinstance(msg, dict):
        raise ProtocolError(ErrorReason.BAD_MESSAGE, "a message is a JSON object")
    return msg


def _request_id(msg: dict[str, Any]) -> RequestId:
    rid = msg.get("id")
    if isinstance(rid, str) and 0 < len(rid) <= _ID_LIMIT:
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool) and -_INT64 <= rid < _INT64:
        return rid
    raise ProtocolError(ErrorReason.BAD_MESSAGE, f"id must be an integer or a string of 1 to {_ID_LIMIT} characters")


def _envelope(frame: str | bytes, table: dict[str, type[_Incoming]]) -> _Incoming:
    msg = _object(frame)
    typ = msg.get("type")
    try:
        rid = _request_id(msg)
    except ProtocolError:
        if not isinstance(typ, str):
            raise ProtocolError(ErrorReason.BAD_MESSAGE, "type and id are required") from None
        raise
    if not isinstance(typ, str):
        raise ProtocolError(ErrorReason.BAD_MESSAGE, "type must be a string", rid)
    cls = table.get(typ)
    if cls is None:
        raise ProtocolError(ErrorReason.UNKNOWN_TYPE, f"unknown message type {typ[:64]!r}", rid)
    return cls.parse(msg, rid)


def _str(msg: dict[str, Any], name: str, rid: RequestId, *, limit: int, default: str | None = None, empty: bool = False) -> str:
    value = msg.get(name, default)
    if not isinstance(value, str) or (not value and not empty) or len(value) > limit:
        raise ProtocolError(ErrorReason.BAD_MESSAGE, f"{name} must be a {'' if empty else 'non-empty '}string of at most {limit} characters", rid)
    return value


def _count(msg: dict[str, Any], name: str, rid: RequestId, *, default: int | None = None) -> int:
    value = msg.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _INT64:
        raise ProtocolError(ErrorReason.BAD_MESSAGE, f"{name} must be a whole number, 0 or more", rid)
    return value


class _Incoming:
    TYPE: ClassVar[str]

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Any:
        raise NotImplementedError


# --------------------------------------------------------- rep: incoming


@dataclass(frozen=True, slots=True)
class Login(_Incoming):
    TYPE: ClassVar[str] = "login"
    id: RequestId
    username: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Login:
        # The password's length is capped because it is hashed: an unbounded
        # one would be a way to burn the server's CPU.
        return cls(rid, _str(msg, "username", rid, limit=128), _str(msg, "password", rid, limit=1024))


@dataclass(frozen=True, slots=True)
class Resume(_Incoming):
    TYPE: ClassVar[str] = "resume"
    id: RequestId
    token: str = field(repr=False)
    last_seq: int

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Resume:
        return cls(rid, _str(msg, "token", rid, limit=256), _count(msg, "last_seq", rid))


@dataclass(frozen=True, slots=True)
class Command(_Incoming):
    TYPE: ClassVar[str] = "command"
    id: RequestId
    name: str
    args: dict[str, Any]

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Command:
        args = msg.get("args", {})
        if not isinstance(args, dict):
            raise ProtocolError(ErrorReason.BAD_MESSAGE, "args must be an object", rid)
        return cls(rid, _str(msg, "name", rid, limit=64), args)


@dataclass(frozen=True, slots=True)
class Logout(_Incoming):
    TYPE: ClassVar[str] = "logout"
    id: RequestId

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Logout:
        return cls(rid)


RepMessage = Login | Resume | Command | Logout
_REP: dict[str, type[_Incoming]] = {c.TYPE: c for c in (Login, Resume, Command, Logout)}


def parse_rep(frame: str | bytes) -> RepMessage:
    """One frame from a console.  Raises ProtocolError."""
    return _envelope(frame, _REP)  # type: ignore[return-value]


# ---------------------------------------------------- customer: incoming


class Via(enum.StrEnum):
    """How a customer starts: the field named like the value says with what."""

    ISSUE = "issue"
    KEY = "key"
    REP = "rep"
    BUTTON = "button"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class Start(_Incoming):
    TYPE: ClassVar[str] = "start"
    id: RequestId
    via: Via
    target: str  # the issue code, key, rep id, button id or link id
    intake: dict[str, Any]
    page_url: str = ""
    page_html: str = field(default="", repr=False)

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Start:
        try:
            via = Via(str(msg.get("via")))
        except ValueError:
            raise ProtocolError(ErrorReason.BAD_MESSAGE, f"via must be one of {', '.join(Via)}", rid) from None
        intake = msg.get("intake")
        if not isinstance(intake, dict):
            raise ProtocolError(ErrorReason.BAD_MESSAGE, "intake must be an object", rid)
        page_url = _str(msg, "page_url", rid, limit=2048, default="", empty=True)
        page_html = _str(msg, "page_html", rid, limit=MAX_FRAME, default="", empty=True)
        if (page_url or page_html) and via is not Via.LINK:
            raise ProtocolError(ErrorReason.BAD_MESSAGE, "page_url and page_html come only with via 'link'", rid)
        return cls(rid, via, _str(msg, via.value, rid, limit=128), intake, page_url, page_html)


@dataclass(frozen=True, slots=True)
class CustomerResume(_Incoming):
    TYPE: ClassVar[str] = "resume"
    id: RequestId
    token: str = field(repr=False)
    last_line: int = 0  # chat lines up to this number were already seen

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> CustomerResume:
        return cls(rid, _str(msg, "token", rid, limit=256), _count(msg, "last_line", rid, default=0))


@dataclass(frozen=True, slots=True)
class Say(_Incoming):
    TYPE: ClassVar[str] = "say"
    id: RequestId
    text: str

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Say:
        # The engine checks the text itself (empty, too long) and says why.
        text = msg.get("text")
        if not isinstance(text, str):
            raise ProtocolError(ErrorReason.BAD_MESSAGE, "text must be a string", rid)
        return cls(rid, text)


@dataclass(frozen=True, slots=True)
class Leave(_Incoming):
    TYPE: ClassVar[str] = "leave"
    id: RequestId

    @classmethod
    def parse(cls, msg: dict[str, Any], rid: RequestId) -> Leave:
        return cls(rid)


CustomerMessage = Start | CustomerResume | Say | Leave
_CUSTOMER: dict[str, type[_Incoming]] = {c.TYPE: c for c in (Start, CustomerResume, Say, Leave)}


def parse_customer(frame: str | bytes) -> CustomerMessage:
    """One frame from a customer page.  Raises ProtocolError."""
    return _envelope(frame, _CUSTOMER)  # type: ignore[return-value]


# -------------------------------------------------------------- outgoing


def _with_id(d: dict[str, Any], rid: RequestId | None) -> dict[str, Any]:
    if rid is not None:
        d["id"] = rid
    return d


@dataclass(frozen=True, slots=True)
class Welcome:
    id: RequestId
    rep: str
    token: str = field(repr=False)
    resumed: bool
    expires_at: float
    server_time: float
    resume_window: float
    reason: ResumeReason | None = None  # why a resume was not possible

    def serialize(self) -> bytes:
        d: dict[str, Any] = {
            "type": "welcome",
            "id": self.id,
            "rep": self.rep,
            "token": self.token,
            "resumed": self.resumed,
            "expires_at": self.expires_at,
            "server_time": self.server_time,
            "resume_window": self.resume_window,
        }
        if self.reason is not None:
            d["reason"] = self.reason.value
        return encode(d)


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    data: dict[str, Any]

    def serialize(self) -> bytes:
        return encode({"type": "snapshot", "seq": self.seq, "data": self.data})


@dataclass(frozen=True, slots=True)
class Result:
    id: RequestId
    result: dict[str, Any]

    def serialize(self) -> bytes:
        return encode({"type": "result", "id": self.id, "result": self.result})


@dataclass(frozen=True, slots=True)
class Error:
    id: RequestId | None
    reason: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, rid: RequestId | None, exc: CommandError) -> Error:
        return cls(rid, exc.reason.value, exc.detail, dict(exc.data))

    @classmethod
    def protocol(cls, rid: RequestId | None, reason: ErrorReason, detail: str = "") -> Error:
        return cls(rid, reason.value, detail or reason.value.replace("_", " "))

    def serialize(self) -> bytes:
        d = _with_id({"type": "error"}, self.id)
        d |= {"reason": self.reason, "detail": self.detail, "data": self.data}
        return encode(d)


_EVENTS_HEAD = b'{"type":"events","prev":'


def events_frame(prev: int, items: list[bytes]) -> bytes:
    """An events frame from events encoded once, each ``{"seq","kind","data"}``: no re-encoding."""
    return b"".join((_EVENTS_HEAD, str(prev).encode(), b',"events":[', b",".join(items), b"]}"))


class CustomerState(enum.StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Started:
    id: RequestId
    session: str
    token: str = field(repr=False)
    resumed: bool = False

    def serialize(self) -> bytes:
        return encode({"type": "started", "id": self.id, "session": self.session, "token": self.token, "resumed": self.resumed})


@dataclass(frozen=True, slots=True)
class Status:
    """What the customer's page shows: waiting (at a position, or on hold), with a rep, or ended."""

    state: CustomerState
    position: int | None = None
    held: bool = False
    rep_name: str | None = None
    detail: str | None = None  # why it ended

    def serialize(self) -> bytes:
        d: dict[str, Any] = {"type": "status", "state": self.state.value}
        if self.position is not None:
            d["position"] = self.position
        if self.held:
            d["held"] = True
        if self.rep_name is not None:
            d["rep_name"] = self.rep_name
        if self.detail is not None:
            d["detail"] = self.detail
        return encode(d)


@dataclass(frozen=True, slots=True)
class CustomerChat:
    """A chat line as the customer sees it: who wrote it by role and name, never a rep's id."""

    n: int
    at: float
    author: str | None  # "customer", "rep" or None for an event line
    author_name: str | None
    text: str

    def serialize(self) -> bytes:
        line = {"n": self.n, "at": self.at, "author": self.author, "author_name": self.author_name, "text": self.text}
        return encode({"type": "chat", "line": line})
