"""Rep commands by name: the one table both backends dispatch through.

The simulator calls :func:`execute` in-process; the queue server calls it
with the name and arguments it decoded from a WebSocket frame.  Arguments
are checked here, before the engine sees them, so that a malformed request
is refused with ``invalid`` and a reason, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repconsole.core.engine import QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueRef, RepStatus

__all__ = ["COMMANDS", "execute"]

Handler = Callable[[QueueEngine, str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Spec:
    handler: Handler
    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _str(args: dict[str, Any], name: str) -> str:
    value = args[name]
    if not isinstance(value, str) or not value:
        raise CommandError(Reason.INVALID, f"{name} must be a non-empty string", field=name)
    return value


def _queue(args: dict[str, Any], name: str) -> QueueRef:
    try:
        return QueueRef.parse(_str(args, name))
    except ValueError as exc:
        raise CommandError(Reason.INVALID, str(exc), field=name) from None


def _bool(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise CommandError(Reason.INVALID, f"{name} must be true or false", field=name)
    return value


def _number(args: dict[str, Any], name: str) -> float:
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(Reason.INVALID, f"{name} must be a number", field=name)
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float (JSON integers have no limit)
        raise CommandError(Reason.INVALID, f"{name} is out of range", field=name) from None


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name, "")
    if not isinstance(value, str):
        raise CommandError(Reason.INVALID, f"{name} must be a string", field=name)
    return value


def _with_chat(s: Any) -> dict[str, Any]:
    return {"session": s.to_dict(chat=True)}


def _accept(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return _with_chat(e.accept(rep, _str(a, "session")))


def _accept_invitation(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return _with_chat(e.accept_invitation(rep, _str(a, "invitation")))


def _get_next(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return _with_chat(e.get_next(rep))


def _transfer(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    s = e.transfer(rep, _str(a, "session"), _queue(a, "target"), _text(a, "note"), stay=_bool(a, "stay"))
    return {"session": s.to_dict()}


def _share(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"invitation": e.share(rep, _str(a, "session"), _queue(a, "target")).to_dict()}


def _hold(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"session": e.hold(rep, _str(a, "session")).to_dict()}


def _end(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"session": e.end(rep, _str(a, "session")).to_dict()}


def _leave(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"session": e.leave(rep, _str(a, "session")).to_dict()}


def _say(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    line = e.say(rep, _str(a, "session"), _text(a, "text"), reps_only=_bool(a, "reps_only"))
    return {"line": line.to_dict()}


def _set_external_key(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"session": e.set_external_key(rep, _str(a, "session"), _text(a, "external_key")).to_dict()}


def _generate_key(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"key": e.generate_key(rep, _number(a, "valid_for")).to_dict()}


def _set_status(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    status = _str(a, "status")
    if status not in RepStatus.__members__.values():
        raise CommandError(Reason.INVALID, f"unknown status {status!r}", field="status")
    return {"rep": e.set_status(rep, RepStatus(status)).to_dict()}


def _team_say(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    return {"line": e.team_say(rep, _str(a, "team"), _text(a, "text")).to_dict()}


def _team_read(e: QueueEngine, rep: str, a: dict[str, Any]) -> dict[str, Any]:
    upto = a.get("upto")
    if upto is not None and (isinstance(upto, bool) or not isinstance(upto, int)):
        raise CommandError(Reason.INVALID, "upto must be a whole number", field="upto")
    return {"last_read": e.team_read(rep, _str(a, "team"), upto)}


COMMANDS: dict[str, _Spec] = {
    "accept": _Spec(_accept, frozenset({"session"})),
    "accept_invitation": _Spec(_accept_invitation, frozenset({"invitation"})),
    "get_next": _Spec(_get_next, frozenset()),
    "transfer": _Spec(_transfer, frozenset({"session", "target"}), frozenset({"note", "stay"})),
    "share": _Spec(_share, frozenset({"session", "target"})),
    "hold": _Spec(_hold, frozenset({"session"})),
    "end": _Spec(_end, frozenset({"session"})),
    "leave": _Spec(_leave, frozenset({"session"})),
    "say": _Spec(_say, frozenset({"session", "text"}), frozenset({"reps_only"})),
    "set_external_key": _Spec(_set_external_key, frozenset({"session", "external_key"})),
    "generate_key": _Spec(_generate_key, frozenset({"valid_for"})),
    "set_status": _Spec(_set_status, frozenset({"status"})),
    "team_say": _Spec(_team_say, frozenset({"team", "text"})),
    "team_read": _Spec(_team_read, frozenset({"team"}), frozenset({"upto"})),
}


def execute(engine: QueueEngine, rep: str, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run command ``name`` for ``rep``.  Raises CommandError; a refusal changes nothing."""
    # The name comes off the wire: it may be anything JSON can carry.
    spec = COMMANDS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise CommandError(Reason.UNKNOWN_COMMAND, f"unknown command {name!r}", command=name)
    args = {} if args is None else args
    if not isinstance(args, dict):
        raise CommandError(Reason.INVALID, "arguments must be an object")
    missing = spec.required - args.keys()
    if missing:
        raise CommandError(Reason.INVALID, f"missing: {', '.join(sorted(missing))}", command=name)
    unknown = args.keys() - spec.required - spec.optional
    if unknown:
        raise CommandError(Reason.INVALID, f"unexpected: {', '.join(sorted(unknown))}", command=name)
    return spec.handler(engine, rep, args)
