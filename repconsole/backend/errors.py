"""What signing in to a queue server, and its commands, fail with.

Each exception's ``str()`` is a sentence for the rep.  The WebSocket backend
(:mod:`repconsole.backend.websocket`) raises them, and re-exports them.
"""

from __future__ import annotations

from typing import Any

from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import Error, ErrorReason

__all__ = [
    "IncompatibleServer",
    "LoginError",
    "NotConnectedError",
    "ProtocolCommandError",
    "ServerProtocolError",
    "ServerUnreachable",
    "SignInError",
    "command_error",
]

_LOGIN_MESSAGES: dict[str, str] = {
    ErrorReason.BAD_CREDENTIALS: "Wrong username or password.",
    ErrorReason.RATE_LIMITED: "Too many failed sign-ins. Wait a minute and try again.",
    ErrorReason.TOKEN_EXPIRED: "Your sign-in has expired. Sign in again.",
    ErrorReason.TOKEN_UNKNOWN: "Your sign-in is no longer valid. Sign in again.",
}

_PROTOCOL_MESSAGES: dict[str, str] = {
    ErrorReason.BAD_MESSAGE: "The server could not read the request.",
    ErrorReason.UNKNOWN_TYPE: "The server does not know that kind of request.",
    ErrorReason.NOT_LOGGED_IN: "Not signed in to the server.",
    ErrorReason.ALREADY_LOGGED_IN: "This connection is already signed in.",
    ErrorReason.INTERNAL_ERROR: "The server failed while handling the request; nothing was confirmed.",
}


class SignInError(Exception):
    """Signing in failed.  ``str(exc)`` is a sentence for the rep."""


class LoginError(SignInError):
    """The server refused the credentials or the token.

    Attributes:
        reason: the protocol's reason: ``bad_credentials``, ``rate_limited``,
            ``token_expired``, ``token_unknown`` (or whatever else it sent).
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        self.reason = reason
        super().__init__(_LOGIN_MESSAGES.get(reason) or detail or f"The server refused the sign-in ({reason}).")


class ServerUnreachable(SignInError):
    """The server could not be reached, or did not answer in time."""


class ServerProtocolError(SignInError):
    """The server answered something the protocol does not allow here."""


class IncompatibleServer(SignInError):
    """The server does not speak this console's protocol version: one of them needs an update."""


class ProtocolCommandError(CommandError):
    """A command refused for a protocol reason rather than an engine one.

    Its :attr:`reason` is :attr:`Reason.INVALID` (nothing changed; the
    window shows :attr:`detail`), and :attr:`code` is the protocol's own
    reason, e.g. ``bad_message``, ``not_logged_in`` or ``not_connected``.

    Attributes:
        code: the protocol reason string.
        server_detail: the server's own wording, if it sent one.
    """

    def __init__(self, code: str, detail: str | None = None, **data: Any) -> None:
        self.code = code
        super().__init__(Reason.INVALID, _PROTOCOL_MESSAGES.get(code) or detail or f"The server refused the request ({code}).", **data)
        self.server_detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.code}


class NotConnectedError(ProtocolCommandError):
    """The command could not be sent: the console is not connected."""

    def __init__(self, detail: str = "Not connected to the server.") -> None:
        super().__init__("not_connected", detail)


def command_error(error: Error) -> CommandError:
    """The exception for a wire ``error`` reply to a command."""
    detail = error.detail or None
    data = {k: v for k, v in error.data.items() if k not in ("reason", "detail")}
    try:
        reason = Reason(error.reason)
    except ValueError:
        return ProtocolCommandError(error.reason, detail, **data)
    return CommandError(reason, detail, **data)
