"""Engine state to and from JSON-ready dicts.

The queue server keeps its truth in SQLite so that a restart, or a crash,
loses nothing a rep was told.  This module is the JSON codec of the
engine's public persistence API: :func:`dump` encodes
:meth:`~repconsole.core.engine.QueueEngine.export_state`, :func:`load`
decodes, repairs what no longer fits the directory, and hands the result to
:meth:`~repconsole.core.engine.QueueEngine.restore_state`.  It uses only
the engine's public names (``tests/test_architecture.py`` checks), so the engine
is free to change how it keeps its state.  One round-trip test (dump a busy
engine, load it into a fresh one, compare every rep's snapshot and what
happens next) keeps the two in step when the engine changes.

What is persisted is *runtime* state: sessions (live and ended, with chat,
timeline, invitations and rule history), session keys, team chat with read
markers, each rep's status and presence, and the counters that number
sessions, invitations and events.  The site's *directory* (teams, reps,
issues, buttons, links, rules) is configuration: the caller builds it on
the fresh engine before :func:`load`.  Derived state (the waiting indexes,
Get Next heaps, who-is-in-what, timers) is never stored; the engine
rebuilds it through its own index code, so it cannot disagree with what
the engine would have built itself.

Sessions and keys are dumped field by field from their dataclasses, so a
field added to :class:`~repconsole.core.model.Session` is persisted without
touching this module, as long as its value is JSON-ready (or has a codec
in ``_SESSION_CODECS``); the round-trip test fails loudly otherwise.

State format (``FORMAT`` 1)::

    {"format": 1,
     "counters": {"seq": int, "sessions": int, "invitations": int},
     "sessions": [session, ...],   # live, in arrival order
     "waiting": {queue: [session id, ...]},  # each queue's waiting sessions, in queue order
     "ended": [session, ...],
     "reps": {rep_id: {"status", "connected", "grace_until", "paused_until"}},
     "keys": [key, ...],
     "team_chat": {team_id: {"count", "lines": [line, ...], "last_read": {rep_id: n}}}}
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from repconsole.core.engine import Counters, DirectoryState, EngineChanges, EngineState, QueueEngine, RepState, TeamChat
from repconsole.core.model import (
    CUSTOMER,
    ChatLine,
    Invitation,
    Origin,
    Priority,
    QueueRef,
    RepStatus,
    Session,
    SessionKey,
    SessionState,
    StepKind,
    TimelineStep,
    Visibility,
)

__all__ = [
    "FORMAT",
    "counters",
    "dump",
    "dump_changes",
    "dump_key",
    "dump_line",
    "dump_rep",
    "dump_session",
    "load",
    "load_changes",
    "load_session",
    "waiting_order",
]

log = logging.getLogger(__name__)

FORMAT = 1

# ----------------------------------------------------------------- codecs


def _queue_out(q: QueueRef | None) -> str | None:
    return q.serialize() if q is not None else None


def _queue_in(text: str | None) -> QueueRef | None:
    return QueueRef.parse(text) if text is not None else None


def dump_line(line: ChatLine) -> dict[str, Any]:
    return line.to_dict()


def _line_in(d: dict[str, Any]) -> ChatLine:
    return ChatLine(int(d["n"]), float(d["at"]), d["author"], str(d["text"]), Visibility(d["visibility"]))


def _step_in(d: dict[str, Any]) -> TimelineStep:
    return TimelineStep(float(d["at"]), StepKind(d["kind"]), _queue_in(d["queue"]), d["by"], str(d["note"]))


def _invitation_in(d: dict[str, Any]) -> Invitation:
    return Invitation(str(d["id"]), str(d["session"]), QueueRef.parse(d["target"]), str(d["by"]), float(d["at"]))


# Session fields whose values are not JSON-ready as they are: (to JSON, from JSON).
# Participants keep their join times (the dict's order is join order, which
# decides who inherits a dropped owner's session), which to_dict() leaves out.
_SESSION_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "origin": (str, Origin),
    "state": (str, SessionState),
    "priority": (int, Priority),
    "queue": (_queue_out, _queue_in),
    "participants": (lambda p: [[rep, at] for rep, at in p.items()], lambda v: {str(r): float(at) for r, at in v}),
    "invitations": (lambda invs: [i.to_dict() for i in invs.values()], lambda v: {d["id"]: _invitation_in(d) for d in v}),
    "rule_visited": (sorted, set),
    "timeline": (lambda steps: [s.to_dict() for s in steps], lambda v: [_step_in(d) for d in v]),
    "chat": (lambda lines: [line.to_dict() for line in lines], lambda v: [_line_in(d) for d in v]),
    "custom_fields": (dict, dict),
}
# Private fields (caches) are derived, never stored.
_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(Session) if not f.name.startswith("_"))


def dump_session(s: Session, *, chat: bool = True) -> dict[str, Any]:
    """Every field of ``s``, JSON-ready.  ``chat=False`` leaves the chat out (stored line by line)."""
    d: dict[str, Any] = {}
    for name in _SESSION_FIELDS:
        if name == "chat" and not chat:
            continue
        value = getattr(s, name)
        codec = _SESSION_CODECS.get(name)
        d[name] = codec[0](value) if codec else value
    return d


def load_session(d: dict[str, Any]) -> Session:
    """The inverse of :func:`dump_session`.  Fields missing from ``d`` take their defaults."""
    kwargs: dict[str, Any] = {}
    for name in _SESSION_FIELDS:
        if name not in d:
            continue
        codec = _SESSION_CODECS.get(name)
        kwargs[name] = codec[1](d[name]) if codec else d[name]
    return Session(**kwargs)


def dump_key(k: SessionKey) -> dict[str, Any]:
    return k.to_dict()


def _key_in(d: dict[str, Any]) -> SessionKey:
    return SessionKey(str(d["key"]), str(d["rep"]), float(d["created_at"]), float(d["expires_at"]), d.get("used_by"))


def dump_rep(engine: QueueEngine, rep_id: str) -> dict[str, Any]:
    """A rep's runtime state; their name, teams and limits are configuration."""
    rep = engine.reps[rep_id]
    return _rep_out(RepState(rep.status, rep.connected, rep.grace_until, rep.paused_until))


def _rep_out(r: RepState) -> dict[str, Any]:
    return {"status": str(r.status), "connected": r.connected, "grace_until": r.grace_until, "paused_until": r.paused_until}


def dump_team_chat(engine: QueueEngine, team_id: str) -> dict[str, Any]:
    return _team_chat_out(engine.team_chat(team_id))


def _team_chat_out(chat: TeamChat) -> dict[str, Any]:
    return {"count": chat.count, "lines": [dump_line(line) for line in chat.lines], "last_read": dict(chat.last_read)}


def counters(engine: QueueEngine) -> dict[str, int]:
    """The numbers that must never be handed out twice."""
    return _counters_out(engine.counters())


def _counters_out(c: Counters) -> dict[str, int]:
    return {"seq": c.seq, "sessions": c.sessions, "invitations": c.invitations}


def waiting_order(engine: QueueEngine) -> dict[str, list[str]]:
    """Each queue's waiting sessions, in queue order (the order Get Next and the console show)."""
    return {q.serialize(): sids for q, sids in engine.waiting_order().items()}


# ------------------------------------------------------------------- dump


def dump(engine: QueueEngine) -> dict[str, Any]:
    """The engine's runtime state, JSON-ready (see the module docstring for the format)."""
    state = engine.export_state()
    return {
        "format": FORMAT,
        "counters": _counters_out(state.counters),
        "sessions": [dump_session(s) for s in state.sessions],
        "waiting": {q.serialize(): sids for q, sids in state.waiting.items()},
        "ended": [dump_session(s) for s in state.ended],
        "reps": {rep_id: _rep_out(r) for rep_id, r in state.reps.items()},
        "keys": [dump_key(k) for k in state.keys],
        "team_chat": {t: _team_chat_out(chat) for t, chat in state.team_chat.items()},
    }


def dump_changes(changes: EngineChanges) -> dict[str, Any]:
    """What one engine step changed (:meth:`QueueEngine.changes_of`), JSON-ready: a cluster's log entry
    (repconsole/server/cluster/entry.py).  Sessions leave their chat out: new lines come by themselves."""
    return {
        "counters": _counters_out(changes.counters),
        "sessions": [dump_session(s, chat=False) for s in changes.sessions],
        "chat": {sid: [dump_line(line) for line in lines] for sid, lines in changes.chat.items()},
        "reps": {rep_id: _rep_out(r) for rep_id, r in changes.reps.items()},
        "keys": [dump_key(k) for k in changes.keys],
        "team_lines": {t: [dump_line(line) for line in lines] for t, lines in changes.team_lines.items()},
        "team_read": changes.team_read,
        **({"directory": _directory_out(changes.directory)} if changes.directory is not None else {}),
    }


def _directory_out(d: DirectoryState) -> dict[str, Any]:
    # Field by field from the model's dataclasses (a new field travels by itself); of each rep, the
    # directory's part only (apply_changes takes no more of it).
    out: dict[str, Any] = msgspec.to_builtins(d, order="deterministic")
    for rep in out["reps"]:
        for runtime in ("status", "connected", "grace_until", "paused_until"):
            rep.pop(runtime, None)
    return out


def load_changes(d: dict[str, Any]) -> EngineChanges:
    """The inverse of :func:`dump_changes` (no repairs: a leader and its followers share one directory)."""
    c = d["counters"]
    return EngineChanges(
        Counters(int(c["seq"]), int(c["sessions"]), int(c["invitations"])),
        [load_session(s) for s in d["sessions"]],
        {sid: [_line_in(line) for line in lines] for sid, lines in d["chat"].items()},
        {rep_id: RepState(RepStatus(r["status"]), bool(r["connected"]), r["grace_until"], r.get("paused_until")) for rep_id, r in d["reps"].items()},
        [_key_in(k) for k in d["keys"]],
        {t: [_line_in(line) for line in lines] for t, lines in d["team_lines"].items()},
        {t: {r: int(n) for r, n in marks.items()} for t, marks in d["team_read"].items()},
        msgspec.convert(d["directory"], DirectoryState) if "directory" in d else None,
    )


# ------------------------------------------------------------------- load


def load(engine: QueueEngine, state: dict[str, Any]) -> list[str]:
    """Load ``state`` into ``engine``, which has its directory built and no runtime state yet.

    Rebuilds every index and timer.  Rule deadlines and grace periods are
    absolute engine times: one that passed while the state was stored fires
    at the next :meth:`~QueueEngine.advance`.

    The directory may have changed since the state was dumped (the site's
    configuration was edited).  What no longer fits is repaired, never
    silently kept: a participant or invitation naming an unknown rep or
    team is dropped; a session owned by, or waiting in the queue of, an
    unknown rep or team moves to the site's fallback queue, or ends.  Keys,
    read markers and team chats of unknown reps or teams are dropped.

    Returns a sentence per repair, for the log.  Listeners subscribed before
    the call hear nothing: loading is not a change.
    """
    if engine.seq or next(engine.sessions(), None) is not None or next(engine.ended_sessions(), None) is not None:
        raise ValueError("load() needs a fresh engine: this one already has runtime state")
    if state.get("format") != FORMAT:
        raise ValueError(f"unknown state format {state.get('format')!r} (this version reads {FORMAT})")
    repairs: list[str] = []
    c = state["counters"]

    reps: dict[str, RepState] = {}
    for rep_id, r in state["reps"].items():
        if rep_id not in engine.reps:
            repairs.append(f"rep {rep_id!r} is no longer configured")
            continue
        reps[rep_id] = RepState(RepStatus(r["status"]), bool(r["connected"]), r["grace_until"], r.get("paused_until"))

    ended = [load_session(d) for d in state["ended"]]
    live: list[Session] = []
    for d in state["sessions"]:
        s = load_session(d)
        repairs += _reconcile(engine, s)
        (ended if s.state is SessionState.ENDED else live).append(s)
    # A session whose queue was repaired has no stored place: the engine puts it last.
    waiting = {QueueRef.parse(q): list(sids) for q, sids in state["waiting"].items()}
    waiting = {q: sids for q, sids in waiting.items() if (q.id in engine.reps if q.is_personal else q.id in engine.teams)}

    keys: list[SessionKey] = []
    for d in state["keys"]:
        key = _key_in(d)
        if key.rep not in engine.reps:
            repairs.append(f"session key {key.key} of unknown rep {key.rep!r} dropped")
            continue
        keys.append(key)

    team_chat: dict[str, TeamChat] = {}
    for team_id, tc in state["team_chat"].items():
        if team_id not in engine.teams:
            if tc["count"]:
                repairs.append(f"team chat of unknown team {team_id!r} dropped")
            continue
        last_read = {r: int(n) for r, n in tc["last_read"].items() if r in engine.reps}
        team_chat[team_id] = TeamChat([_line_in(d) for d in tc["lines"]], int(tc["count"]), last_read)

    counts = Counters(int(c["seq"]), int(c["sessions"]), int(c["invitations"]))
    engine.restore_state(EngineState(counts, live, waiting, ended, reps, keys, team_chat))
    for line in repairs:
        log.warning("loading stored state: %s", line)
    return repairs


def _reconcile(engine: QueueEngine, s: Session) -> list[str]:
    """Make a stored session fit the current directory.  Returns what was repaired."""
    if s.state is SessionState.ENDED:
        return []
    repairs = []

    def known(q: QueueRef | None) -> bool:
        return q is None or (q.id in engine.reps if q.is_personal else q.id in engine.teams)

    for rep_id in [r for r in s.participants if r not in engine.reps]:
        del s.participants[rep_id]
        repairs.append(f"{s.id}: participant {rep_id!r} is no longer configured")
    for inv_id, inv in list(s.invitations.items()):
        if not known(inv.target) or (inv.by not in engine.reps and inv.by != CUSTOMER):
            del s.invitations[inv_id]
            repairs.append(f"{s.id}: invitation {inv_id} to {inv.target} dropped")
    owner_gone = s.owner is not None and s.owner not in engine.reps
    if not owner_gone and known(s.queue):
        return repairs
    now = engine.now()
    fallback = engine.site.fallback_queue
    s.owner = None
    s.held = False
    s.overdue = False
    s.rule_deadline = None
    if fallback is not None and known(fallback):
        s.state = SessionState.WAITING
        s.queue = fallback
        s.queue_entered_at = now
        s.timeline.append(TimelineStep(now, StepKind.CONNECTION_LOST, queue=fallback, note="configuration changed"))
        repairs.append(f"{s.id}: its rep or queue is no longer configured; moved to {fallback}")
    else:
        s.state = SessionState.ENDED
        s.queue = None
        s.invitations.clear()
        s.ended_at = now
        s.end_reason = "configuration changed"
        s.timeline.append(TimelineStep(now, StepKind.ENDED, note="configuration changed"))
        repairs.append(f"{s.id}: its rep or queue is no longer configured and there is no fallback queue; ended")
    return repairs
