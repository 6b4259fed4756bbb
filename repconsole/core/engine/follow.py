"""A follower's copy of another engine: apply what each of its steps changed.

In a cluster (repconsole/server/cluster/) one process leads an organisation
and runs the commands; every other process keeps a copy of its engine, so
that it can serve snapshots to its own consoles.  The leader logs, per step,
the state the step changed (:class:`~repconsole.core.engine.saved.EngineChanges`);
:func:`apply` takes it here.

Sessions are indexed through ``Queues.replace`` (``begin``/``commit``, as a
command would), so every derived index (the waiting order, who is in what)
is built by the same code as on the leader.  Listeners hear nothing: the
follower publishes the leader's logged events, not events of its own.
Not copied: offers and timers (a follower neither routes nor advances
time; a follower that takes over rebuilds with ``restore_state``).
"""

from __future__ import annotations

from collections.abc import Iterable

from repconsole.core.engine.events import Event, EventBus
from repconsole.core.engine.queues import Queues
from repconsole.core.engine.saved import Counters, EngineChanges, RepState
from repconsole.core.engine.sessions import SessionDesk
from repconsole.core.engine.starts import Starts
from repconsole.core.engine.teamchat import TEAM_CHAT_HISTORY, TeamChats
from repconsole.core.model import Rep, RepStatus, Session, SessionState
from repconsole.protocol.events import ChatData, KeyData, RepData, SessionData, TeamChatData, TeamReadData

__all__ = ["apply", "changes_of"]


def changes_of(
    events: Iterable[Event], counters: Counters, *, queues: Queues, starts: Starts, team_chats: TeamChats, reps: dict[str, Rep]
) -> EngineChanges:
    """What the step that emitted ``events`` changed, read from the engine right after it
    (the same reading of events as the server's store: repconsole/server/store.py)."""
    sessions: dict[str, Session] = {}
    chat: dict[str, set[int]] = {}
    team: dict[str, set[int]] = {}
    reads: dict[str, dict[str, int]] = {}
    rep_ids: set[str] = set()
    keys: dict[str, None] = {}
    for e in events:
        match e.data:
            case SessionData(session=view):
                sessions.pop(view.id, None)  # in the order of its last change
                sessions[view.id] = queues.live.get(view.id) or queues.ended[view.id]
            case ChatData(session=sid, line=line):
                chat.setdefault(sid, set()).add(line.n)
            case TeamChatData(team=team_id, line=line):
                team.setdefault(team_id, set()).add(line.n)
                if line.author is not None:
                    reads.setdefault(team_id, {})[line.author] = line.n  # the author has read their own line
            case TeamReadData(team=team_id, last_read=last_read):
                for rep_id in e.audience:  # the one rep who read
                    reads.setdefault(team_id, {})[rep_id] = last_read
            case RepData(rep=view):
                rep_ids.add(view.id)
            case KeyData(key=key):
                keys[key.key] = None
    lines = {}
    for sid, ns in chat.items():
        s = queues.live.get(sid) or queues.ended.get(sid)
        if s is not None:
            lines[sid] = [line for line in s.chat if line.n in ns]
    return EngineChanges(
        counters,
        list(sessions.values()),
        lines,
        {r: RepState(reps[r].status, reps[r].connected, reps[r].grace_until) for r in sorted(rep_ids)},
        [starts.keys[k] for k in keys if k in starts.keys],
        {t: [line for line in team_chats.chats[t].lines if line.n in ns] for t, ns in team.items()},
        reads,
    )


def apply(
    changes: EngineChanges, *, queues: Queues, desk: SessionDesk, starts: Starts, team_chats: TeamChats, bus: EventBus, reps: dict[str, Rep]
) -> None:
    listeners = bus.listeners
    silenced = listeners[:]
    listeners.clear()
    try:
        for s in changes.sessions:
            old = queues.live.get(s.id) or queues.ended.get(s.id)
            s.chat = old.chat if old is not None else []
            # In place, so the desk's invitations keep the order the leader's have (a snapshot lists them so).
            live_invitations = s.invitations if s.state is not SessionState.ENDED else {}
            for inv_id in old.invitations if old is not None else ():
                if inv_id not in live_invitations:
                    desk.invitations.pop(inv_id, None)
            desk.invitations.update(live_invitations)
            queues.replace(s)
    finally:
        listeners[:] = silenced
    for sid, lines in changes.chat.items():
        held = queues.live.get(sid) or queues.ended.get(sid)
        if held is None:
            continue  # an ended session the copy let go of: its chat is history (the store has it)
        last = held.chat[-1].n if held.chat else 0
        held.chat.extend(line for line in lines if line.n > last)
    for rep_id, r in changes.reps.items():
        rep = reps[rep_id]
        rep.status = RepStatus(r.status)
        rep.connected = r.connected
        rep.grace_until = r.grace_until
    for key in changes.keys:
        starts.restore_key(key)
    for team_id, lines in changes.team_lines.items():
        chat = team_chats.chats[team_id]
        chat.lines.extend(line for line in lines if line.n > chat.count)
        del chat.lines[:-TEAM_CHAT_HISTORY]
        chat.count = max(chat.count, *(line.n for line in lines))
    for team_id, marks in changes.team_read.items():
        team_chats.chats[team_id].last_read.update(marks)
    c = changes.counters
    queues.counter = max(queues.counter, c.sessions)
    desk.invitation_counter = max(desk.invitation_counter, c.invitations)
    bus.seq = c.seq
