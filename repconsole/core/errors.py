"""Why the engine refused a command.

A refused command changes nothing.  The reason is an enum, not a sentence,
so that the console can decide how to show it and the wire protocol can
carry it as a stable code.
"""

from __future__ import annotations

from typing import Any

from repconsole.protocol.messages import Error, RequestId
from repconsole.protocol.vocabulary import Reason

__all__ = ["CommandError", "Reason"]


_MESSAGES: dict[Reason, str] = {
    Reason.UNKNOWN_SESSION: "There is no such session.",
    Reason.UNKNOWN_INVITATION: "That invitation no longer exists.",
    Reason.UNKNOWN_REP: "There is no such representative.",
    Reason.UNKNOWN_TEAM: "There is no such team.",
    Reason.UNKNOWN_ISSUE: "There is no such issue.",
    Reason.UNKNOWN_BUTTON: "There is no such Support Button.",
    Reason.UNKNOWN_LINK: "There is no such browser-sharing link.",
    Reason.UNKNOWN_COMMAND: "Unknown command.",
    Reason.NOT_MEMBER: "You are not a member of that queue.",
    Reason.NOT_OWNER: "Only the session owner can do that.",
    Reason.NOT_PARTICIPANT: "You are not in that session.",
    Reason.NOT_WAITING: "That session is not waiting in a queue.",
    Reason.SESSION_ENDED: "That session has ended.",
    Reason.ALREADY_TAKEN: "Already taken.",
    Reason.ALREADY_IN_SESSION: "That representative is already in the session.",
    Reason.AT_CAPACITY: "You are at your maximum number of sessions.",
    Reason.NOTHING_WAITING: "Nobody is waiting in your team queues.",
    Reason.KEY_UNKNOWN: "That session key is not valid.",
    Reason.KEY_EXPIRED: "That session key has expired.",
    Reason.KEY_USED: "That session key has already been used.",
    Reason.KEY_RATE_LIMITED: "Too many wrong keys; wait a minute and try again.",
    Reason.BUTTON_EXPIRED: "That Support Button has expired.",
    Reason.LINK_EXPIRED: "That help link has expired.",
    Reason.LINK_REVOKED: "That help link was withdrawn.",
    Reason.NOT_BROWSER: "That session does not share the customer's browser.",
    Reason.REP_OFFLINE: "That representative is not connected.",
    Reason.NO_OFFER: "That offer is no longer open.",
    Reason.NOT_LEAD: "Only a lead of that team can change its snippets.",
    Reason.UNKNOWN_SNIPPET: "There is no such snippet (it may have been deleted), or it is set in the site's configuration.",
    Reason.INVALID: "Invalid request.",
}


class CommandError(Exception):
    """A command the engine refused.  Nothing changed.

    Attributes:
        reason: the machine-readable reason.
        detail: the human-readable sentence, specific to this refusal.
        data: extra facts, e.g. ``{"by": "alice"}`` for ALREADY_TAKEN.
    """

    def __init__(self, reason: Reason, detail: str | None = None, **data: Any) -> None:
        self.reason = reason
        self.detail = detail or _MESSAGES[reason]
        self.data = data
        super().__init__(f"{reason.value}: {self.detail}")

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "detail": self.detail, **self.data}

    def error(self, rid: RequestId) -> Error:
        """The ``error`` message that answers request ``rid`` with this refusal."""
        return Error(id=rid, reason=self.reason, detail=self.detail, data=dict(self.data))
