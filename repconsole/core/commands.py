"""Rep commands by name: the one table both backends dispatch through.

The protocol (:data:`repconsole.protocol.COMMANDS`) says what each command
takes and gives; this module says what each *does*, as engine calls.  The
simulator calls :func:`execute` in-process with keyword arguments; the queue
server calls it with the name and ``args`` it decoded from a frame.  Either
way the arguments are checked by the protocol's Struct before the engine sees
them, so a malformed request is refused with ``invalid`` (naming the field)
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from repconsole.core.engine import QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueRef
from repconsole.protocol import (
    COMMANDS,
    AcceptArgs,
    AcceptInvitationArgs,
    Args,
    CommandName,
    CommandResult,
    GenerateKeyArgs,
    InvitationResult,
    KeyResult,
    LastReadResult,
    LineResult,
    OfferArgs,
    OfferResult,
    PauseOffersArgs,
    RepResult,
    SayArgs,
    SessionArgs,
    SessionResult,
    SetExternalKeyArgs,
    SetStatusArgs,
    ShareArgs,
    TeamReadArgs,
    TeamSayArgs,
    TransferArgs,
    invalid_field,
)

__all__ = ["COMMANDS", "HANDLERS", "execute"]

Handler = Callable[[QueueEngine, str, Any], CommandResult]


def _target(text: str) -> QueueRef:
    try:
        return QueueRef.parse(text)
    except ValueError as exc:  # the protocol's pattern lets "rep:" through to here
        raise CommandError(Reason.INVALID, str(exc), field="target") from None


def _accept(e: QueueEngine, rep: str, a: AcceptArgs) -> SessionResult:
    return SessionResult(e.accept(rep, a.session).view(chat=True))


def _accept_invitation(e: QueueEngine, rep: str, a: AcceptInvitationArgs) -> SessionResult:
    return SessionResult(e.accept_invitation(rep, a.invitation).view(chat=True))


def _get_next(e: QueueEngine, rep: str, a: Args) -> SessionResult:
    return SessionResult(e.get_next(rep).view(chat=True))


def _transfer(e: QueueEngine, rep: str, a: TransferArgs) -> SessionResult:
    return SessionResult(e.transfer(rep, a.session, _target(a.target), a.note, stay=a.stay).view())


def _share(e: QueueEngine, rep: str, a: ShareArgs) -> InvitationResult:
    return InvitationResult(e.share(rep, a.session, _target(a.target)).view())


def _hold(e: QueueEngine, rep: str, a: SessionArgs) -> SessionResult:
    return SessionResult(e.hold(rep, a.session).view())


def _end(e: QueueEngine, rep: str, a: SessionArgs) -> SessionResult:
    return SessionResult(e.end(rep, a.session).view())


def _leave(e: QueueEngine, rep: str, a: SessionArgs) -> SessionResult:
    return SessionResult(e.leave(rep, a.session).view())


def _say(e: QueueEngine, rep: str, a: SayArgs) -> LineResult:
    return LineResult(e.say(rep, a.session, a.text, reps_only=a.reps_only).view())


def _set_external_key(e: QueueEngine, rep: str, a: SetExternalKeyArgs) -> SessionResult:
    return SessionResult(e.set_external_key(rep, a.session, a.external_key).view())


def _generate_key(e: QueueEngine, rep: str, a: GenerateKeyArgs) -> KeyResult:
    return KeyResult(e.generate_key(rep, a.valid_for).view())


def _set_status(e: QueueEngine, rep: str, a: SetStatusArgs) -> RepResult:
    return RepResult(e.set_status(rep, a.status).view())


def _team_say(e: QueueEngine, rep: str, a: TeamSayArgs) -> LineResult:
    return LineResult(e.team_say(rep, a.team, a.text).view())


def _team_read(e: QueueEngine, rep: str, a: TeamReadArgs) -> LastReadResult:
    return LastReadResult(e.team_read(rep, a.team, a.upto))


def _accept_offer(e: QueueEngine, rep: str, a: OfferArgs) -> SessionResult:
    return SessionResult(e.accept_offer(rep, a.session).view(chat=True))


def _decline_offer(e: QueueEngine, rep: str, a: OfferArgs) -> OfferResult:
    return OfferResult(e.decline_offer(rep, a.session).view())


def _pause_offers(e: QueueEngine, rep: str, a: PauseOffersArgs) -> RepResult:
    return RepResult(e.pause_offers(rep, a.minutes).view())


HANDLERS: Final[dict[CommandName, Handler]] = {
    CommandName.ACCEPT: _accept,
    CommandName.ACCEPT_INVITATION: _accept_invitation,
    CommandName.GET_NEXT: _get_next,
    CommandName.TRANSFER: _transfer,
    CommandName.SHARE: _share,
    CommandName.HOLD: _hold,
    CommandName.END: _end,
    CommandName.LEAVE: _leave,
    CommandName.SAY: _say,
    CommandName.SET_EXTERNAL_KEY: _set_external_key,
    CommandName.GENERATE_KEY: _generate_key,
    CommandName.SET_STATUS: _set_status,
    CommandName.TEAM_SAY: _team_say,
    CommandName.TEAM_READ: _team_read,
    CommandName.ACCEPT_OFFER: _accept_offer,
    CommandName.DECLINE_OFFER: _decline_offer,
    CommandName.PAUSE_OFFERS: _pause_offers,
}
assert HANDLERS.keys() == {spec.name for spec in COMMANDS.values()}, "every protocol command has a handler"


def execute(engine: QueueEngine, rep: str, name: object, args: dict[str, Any] | Args | None = None) -> CommandResult:
    """Run command ``name`` for ``rep``.  Raises CommandError; a refusal changes nothing."""
    # The name comes off the wire: it may be anything JSON can carry.
    spec = COMMANDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise CommandError(Reason.UNKNOWN_COMMAND, f"unknown command {name!r}", command=name)
    if args is None:
        args = {}
    if isinstance(args, dict):
        try:
            args = spec.convert_args(args)
        except msgspec.ValidationError as exc:
            field = invalid_field(exc)
            raise CommandError(Reason.INVALID, str(exc), command=name, **({"field": field} if field else {})) from None
    elif type(args) is not spec.args:
        raise CommandError(Reason.INVALID, f"{name} takes {spec.args.__name__}, not {type(args).__name__}", command=name)
    return HANDLERS[spec.name](engine, rep, args)
