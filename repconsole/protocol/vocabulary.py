"""The words of the protocol: every enum and limit a message may carry.

These are the values that travel on the wire and are stored on disk, so a
value, once released, is never renamed.  The engine (:mod:`repconsole.core`)
uses the same enums for its own state: there is one ``Origin``, one
``SessionState``, one ``Reason``, and the wire cannot drift from the engine.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

__all__ = [
    "CUSTOMER",
    "CUSTOM_FIELDS_LIMIT",
    "DETAILS_LIMIT",
    "ID_LIMIT",
    "INT64_MAX",
    "MAX_FRAME",
    "MIN_PROTOCOL_VERSION",
    "NAME_LIMIT",
    "PAGE_HTML_LIMIT",
    "PAGE_URL_LIMIT",
    "PROTOCOL_VERSION",
    "CloseCode",
    "CommandName",
    "CustomerState",
    "ErrorReason",
    "EventKind",
    "GoneReason",
    "MessageType",
    "OfferOutcome",
    "Origin",
    "Priority",
    "QueueKind",
    "Reason",
    "RepStatus",
    "RequestId",
    "ResumeReason",
    "RoutingMode",
    "RuleAction",
    "SessionState",
    "StepKind",
    "Via",
    "Visibility",
]

# The version this code speaks, and the oldest it still serves.  A client
# says which version it speaks in ``login``/``resume`` (absent means 1); a
# server that no longer speaks it answers ``unsupported_protocol`` and closes
# with 4426, so an old console tells its rep to update instead of failing
# on a message it cannot read.  Bump it when a message changes shape.
# 2: a big snapshot comes in parts (``snapshot_part``), and a session and its
# timeline steps leave out the fields that hold their default.
# 3: auto-assignment and wait estimates (issue 14): the events ``offer``,
# ``offer_ended`` and ``estimate``.  A version 2 console is still served on a
# site where no team routes, and never gets those events (docs/protocol.md, Versions).
# 4: canned messages (issue 14): the ``snippets`` message and the commands
# ``snippet_add``, ``snippet_edit`` and ``snippet_delete``.  A version 3 (or 2)
# console is served as before and gets no ``snippets``.
PROTOCOL_VERSION = 4
MIN_PROTOCOL_VERSION = 2

# Frames the server receives are at most this big (websockets' max_size); a
# larger one closes the connection with 1009.  Frames the server sends (a
# snapshot of a busy site) are not limited.
MAX_FRAME = 64 * 1024

ID_LIMIT = 128  # characters of a string request id
INT64_MAX = 2**63 - 1

# A request id: chosen by the client, echoed in the reply.  1 and "1" differ.
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_LIMIT)] | Annotated[
    int, msgspec.Meta(ge=-INT64_MAX - 1, le=INT64_MAX)
]

# Intake limits, as the leading consoles' intake forms and start APIs accept
# them: 100 characters for a name, about a kilobyte of details, 10 KB of
# custom fields in all.  Anything larger is refused, never cut.
NAME_LIMIT = 100
DETAILS_LIMIT = 1024
CUSTOM_FIELDS_LIMIT = 10 * 1024
PAGE_URL_LIMIT = 2048
PAGE_HTML_LIMIT = MAX_FRAME

# The author of a chat line written by the customer (a rep's line names the rep's id).
CUSTOMER = "customer"


class MessageType(enum.StrEnum):
    """The ``type`` of every message, on both endpoints, both ways."""

    # console -> server (/rep)
    LOGIN = "login"
    RESUME = "resume"
    COMMAND = "command"
    LOGOUT = "logout"
    # server -> console
    WELCOME = "welcome"
    SNAPSHOT = "snapshot"
    SNAPSHOT_PART = "snapshot_part"
    EVENTS = "events"
    # both endpoints, server -> client
    RESULT = "result"
    ERROR = "error"
    # customer page -> server (/customer); "resume" is shared with the console
    START = "start"
    SAY = "say"
    LEAVE = "leave"
    # server -> customer page
    STARTED = "started"
    STATUS = "status"
    CHAT = "chat"
    # recorder (the help-link snippet) -> server (/cobrowse)
    ATTACH = "attach"
    RECORD = "record"
    PAGE = "page"
    STOP = "stop"
    # server -> recorder
    ATTACHED = "attached"
    SNAPSHOT_PLEASE = "snapshot_please"
    POINTER = "pointer"
    WATCHING = "watching"
    # server -> console, beside the feed
    COBROWSE = "cobrowse"
    COBROWSE_STATE = "cobrowse_state"
    # both endpoints, both ways, beside the feed (issue 14): someone is typing
    TYPING = "typing"
    # server -> console, beside the feed (issue 14): the rep's team snippets, whole
    SNIPPETS = "snippets"


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses, and what a client should do about each."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down: reconnect with backoff and resume
    PROTOCOL_ERROR = 1002  # the client broke the WebSocket protocol
    INVALID_DATA = 1007  # a text frame that is not UTF-8
    MESSAGE_TOO_BIG = 1009
    SERVER_ERROR = 1011
    LOGGED_OUT = 4000
    NOT_AUTHENTICATED = 4401
    TOO_SLOW = 4408
    UNSUPPORTED_PROTOCOL = 4426  # the client speaks a protocol version this server no longer serves


class EventKind(enum.StrEnum):
    """What an event in an ``events`` frame is about."""

    SESSION = "session"
    SESSION_GONE = "session_gone"
    CHAT = "chat"
    TEAM_CHAT = "team_chat"
    TEAM_READ = "team_read"
    REP = "rep"
    KEY = "key"
    # issue 14: auto-assignment (only where a team's routing is not "none")
    OFFER = "offer"
    OFFER_ENDED = "offer_ended"
    ESTIMATE = "estimate"


class GoneReason(enum.StrEnum):
    """Why a rep lost sight of a session.

    Where it went is told only to the rep who sent it there (``transferred``).
    """

    TAKEN = "taken"
    MOVED = "moved"
    ENDED = "ended"
    TRANSFERRED = "transferred"  # its owner transferred it (to ``to``), and does not stay
    LEFT = "left"  # a participant left it


class CommandName(enum.StrEnum):
    """Every rep command (``{"type": "command", "name": ...}``)."""

    ACCEPT = "accept"
    ACCEPT_INVITATION = "accept_invitation"
    GET_NEXT = "get_next"
    TRANSFER = "transfer"
    SHARE = "share"
    HOLD = "hold"
    END = "end"
    LEAVE = "leave"
    SAY = "say"
    SET_EXTERNAL_KEY = "set_external_key"
    GENERATE_KEY = "generate_key"
    SET_STATUS = "set_status"
    TEAM_SAY = "team_say"
    TEAM_READ = "team_read"
    # issue 14: auto-assignment
    ACCEPT_OFFER = "accept_offer"
    DECLINE_OFFER = "decline_offer"
    PAUSE_OFFERS = "pause_offers"


class ErrorReason(enum.StrEnum):
    """The protocol's own error reasons; commands add :class:`Reason`."""

    BAD_MESSAGE = "bad_message"  # not JSON, not an object, no or invalid type, id or field
    UNKNOWN_TYPE = "unknown_type"
    NOT_LOGGED_IN = "not_logged_in"
    ALREADY_LOGGED_IN = "already_logged_in"
    BAD_CREDENTIALS = "bad_credentials"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_UNKNOWN = "token_unknown"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    NOT_STARTED = "not_started"  # customer: say or leave before start/resume
    ALREADY_STARTED = "already_started"  # customer: a second start on one connection
    ID_REUSED = "id_reused"  # a request id already answered for another command (name or args)
    INTERNAL_ERROR = "internal_error"  # a bug in the server; nothing was confirmed


class Reason(enum.StrEnum):
    """Why the engine refused a command or a customer's start.  Nothing changed."""

    UNKNOWN_SESSION = "unknown_session"
    UNKNOWN_INVITATION = "unknown_invitation"
    UNKNOWN_REP = "unknown_rep"
    UNKNOWN_TEAM = "unknown_team"
    UNKNOWN_ISSUE = "unknown_issue"
    UNKNOWN_BUTTON = "unknown_button"
    UNKNOWN_LINK = "unknown_link"
    UNKNOWN_COMMAND = "unknown_command"
    NOT_MEMBER = "not_member"  # the rep may not act on that queue
    NOT_OWNER = "not_owner"
    NOT_PARTICIPANT = "not_participant"
    NOT_WAITING = "not_waiting"
    SESSION_ENDED = "session_ended"
    ALREADY_TAKEN = "already_taken"
    ALREADY_IN_SESSION = "already_in_session"
    AT_CAPACITY = "at_capacity"
    NOTHING_WAITING = "nothing_waiting"
    KEY_UNKNOWN = "key_unknown"
    KEY_EXPIRED = "key_expired"
    KEY_USED = "key_used"
    KEY_RATE_LIMITED = "key_rate_limited"
    BUTTON_EXPIRED = "button_expired"
    LINK_EXPIRED = "link_expired"
    LINK_REVOKED = "link_revoked"
    NOT_BROWSER = "not_browser"  # co-browsing a session that did not start from a browser-sharing link
    REP_OFFLINE = "rep_offline"
    NO_OFFER = "no_offer"  # accept_offer/decline_offer: no open offer of that session to this rep (any more)
    NOT_LEAD = "not_lead"  # snippet_add/edit/delete: only a lead of the team may change its snippets
    UNKNOWN_SNIPPET = "unknown_snippet"  # snippet_edit/delete: no such snippet (deleted meanwhile), or one of the site file
    INVALID = "invalid"  # a malformed argument


class ResumeReason(enum.StrEnum):
    """Why a ``resume`` was answered with a fresh snapshot instead of a replay."""

    OUTSIDE_RESUME_WINDOW = "outside_resume_window"


class QueueKind(enum.StrEnum):
    """The prefix of a queue reference: ``rep:<id>`` or ``team:<id>``."""

    PERSONAL = "rep"
    TEAM = "team"


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


class RoutingMode(enum.StrEnum):
    """How a team's waiting sessions reach its reps (issue 14).

    ``none``: reps pull (accept, Get Next), the only way before issue 14.
    ``least_busy``: each waiting session is offered to the available member
    with the most free capacity (fewest sessions, then longest since their
    last offer).  ``skills``: the session's issue category names a required
    skill (the team's ``skills`` map); only members with it are offered it,
    least busy first.  Pull works alongside both.
    """

    NONE = "none"
    LEAST_BUSY = "least_busy"
    SKILLS = "skills"


class OfferOutcome(enum.StrEnum):
    """How an offer of a session to one rep ended (``offer_ended``)."""

    ACCEPTED = "accepted"  # the rep took it (accept_offer, or a pull of the same session)
    DECLINED = "declined"  # the rep declined: never offered to them again (until it is transferred)
    EXPIRED = "expired"  # nobody answered by the deadline: a missed offer, never offered to them again
    WITHDRAWN = "withdrawn"  # the session went (another rep took it, it ended, moved) or the rep stopped taking offers


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


class CustomerState(enum.StrEnum):
    """What the customer's page shows: waiting, with a rep, or ended."""

    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


class Via(enum.StrEnum):
    """How a customer starts: the field of ``start`` named like the value says with what."""

    ISSUE = "issue"
    KEY = "key"
    REP = "rep"
    BUTTON = "button"
    LINK = "link"
