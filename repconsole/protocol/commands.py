"""Rep commands: each name with its arguments and the result it answers with.

A ``command`` message carries ``name`` and ``args``; :data:`COMMANDS` says,
per name, the Struct its ``args`` must decode into and the Struct its
``result`` is.  Arguments are strict where the message envelope is lenient:
an argument a command does not have is refused (``invalid``), because a
misspelt ``stay`` silently ignored would transfer a session the rep meant
to stay on.

The engine's handlers (:mod:`repconsole.core.commands`) take these
arguments and return these results, in the simulator and in the server
alike; the console's WebSocket client decodes each result by its command's
result type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec

from repconsole.protocol.views import InvitationView, KeyView, LineView, OfferView, QueueName, RepView, SessionView
from repconsole.protocol.vocabulary import CommandName, RepStatus

__all__ = [
    "COMMANDS",
    "AcceptArgs",
    "AcceptInvitationArgs",
    "Args",
    "CommandResult",
    "CommandSpec",
    "GenerateKeyArgs",
    "InvitationResult",
    "KeyResult",
    "LastReadResult",
    "LineResult",
    "NoArgs",
    "OfferArgs",
    "OfferResult",
    "PauseOffersArgs",
    "RepResult",
    "SayArgs",
    "SessionArgs",
    "SessionResult",
    "SetExternalKeyArgs",
    "SetStatusArgs",
    "ShareArgs",
    "TeamReadArgs",
    "TeamSayArgs",
    "TransferArgs",
]

_Id = Annotated[str, msgspec.Meta(min_length=1)]


class Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A command's arguments.  Unknown ones are refused."""


class NoArgs(Args, frozen=True):
    """``get_next``: no arguments (``args`` may be left out)."""


class SessionArgs(Args, frozen=True):
    """``hold``, ``end`` and ``leave``: the session."""

    session: _Id


class AcceptArgs(Args, frozen=True):
    session: _Id


class AcceptInvitationArgs(Args, frozen=True):
    invitation: _Id


class TransferArgs(Args, frozen=True):
    """Hand the session to a rep or a team, with a note pinned for the receiver.

    ``stay``: the owner stays on as a participant.
    """

    session: _Id
    target: QueueName
    note: str = ""
    stay: bool = False


class ShareArgs(Args, frozen=True):
    """Invite a rep or a team to join; the owner keeps ownership."""

    session: _Id
    target: QueueName


class SayArgs(Args, frozen=True):
    session: _Id
    text: str
    reps_only: bool = False


class SetExternalKeyArgs(Args, frozen=True):
    session: _Id
    external_key: str


class GenerateKeyArgs(Args, frozen=True):
    """``valid_for``: seconds during which a session may *start* with the key."""

    valid_for: float


class SetStatusArgs(Args, frozen=True):
    status: RepStatus


class TeamSayArgs(Args, frozen=True):
    team: _Id
    text: str


class TeamReadArgs(Args, frozen=True):
    """Mark a team's chat read up to line ``upto`` (default: all of it)."""

    team: _Id
    upto: int | None = None


class OfferArgs(Args, frozen=True):
    """``accept_offer`` and ``decline_offer``: the offered session."""

    session: _Id


class PauseOffersArgs(Args, frozen=True):
    """Take no offers for ``minutes`` (at most a day); 0 takes them again at once."""

    minutes: Annotated[float, msgspec.Meta(ge=0, le=24 * 60)]


class CommandResult(msgspec.Struct, frozen=True, gc=False):
    """A command's result."""


class SessionResult(CommandResult, frozen=True):
    """The session after the command; accepting or joining returns it with its chat."""

    session: SessionView


class InvitationResult(CommandResult, frozen=True):
    invitation: InvitationView


class LineResult(CommandResult, frozen=True):
    line: LineView


class KeyResult(CommandResult, frozen=True):
    key: KeyView


class RepResult(CommandResult, frozen=True):
    rep: RepView


class LastReadResult(CommandResult, frozen=True):
    last_read: int


class OfferResult(CommandResult, frozen=True):
    """``decline_offer``: the offer that was declined."""

    offer: OfferView


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What one command takes and gives."""

    name: CommandName
    args: type[Args]
    result: type[CommandResult]

    @property
    def required(self) -> frozenset[str]:
        """The argument names the command cannot do without."""
        return frozenset(f.name for f in msgspec.structs.fields(self.args) if f.required)

    @property
    def optional(self) -> frozenset[str]:
        return frozenset(f.name for f in msgspec.structs.fields(self.args) if not f.required)

    def decode_args(self, raw: bytes | msgspec.Raw) -> Args:
        """Arguments as JSON (from the wire).  Raises msgspec.ValidationError or DecodeError."""
        return msgspec.json.decode(raw, type=self.args)

    def convert_args(self, args: dict[str, Any]) -> Args:
        """Arguments as Python values (in-process).  Raises msgspec.ValidationError."""
        return msgspec.convert(args, type=self.args, strict=True)


COMMANDS: Final[dict[str, CommandSpec]] = {
    spec.name.value: spec
    for spec in (
        CommandSpec(CommandName.ACCEPT, AcceptArgs, SessionResult),
        CommandSpec(CommandName.ACCEPT_INVITATION, AcceptInvitationArgs, SessionResult),
        CommandSpec(CommandName.GET_NEXT, NoArgs, SessionResult),
        CommandSpec(CommandName.TRANSFER, TransferArgs, SessionResult),
        CommandSpec(CommandName.SHARE, ShareArgs, InvitationResult),
        CommandSpec(CommandName.HOLD, SessionArgs, SessionResult),
        CommandSpec(CommandName.END, SessionArgs, SessionResult),
        CommandSpec(CommandName.LEAVE, SessionArgs, SessionResult),
        CommandSpec(CommandName.SAY, SayArgs, LineResult),
        CommandSpec(CommandName.SET_EXTERNAL_KEY, SetExternalKeyArgs, SessionResult),
        CommandSpec(CommandName.GENERATE_KEY, GenerateKeyArgs, KeyResult),
        CommandSpec(CommandName.SET_STATUS, SetStatusArgs, RepResult),
        CommandSpec(CommandName.TEAM_SAY, TeamSayArgs, LineResult),
        CommandSpec(CommandName.TEAM_READ, TeamReadArgs, LastReadResult),
        CommandSpec(CommandName.ACCEPT_OFFER, OfferArgs, SessionResult),
        CommandSpec(CommandName.DECLINE_OFFER, OfferArgs, OfferResult),
        CommandSpec(CommandName.PAUSE_OFFERS, PauseOffersArgs, RepResult),
    )
}
