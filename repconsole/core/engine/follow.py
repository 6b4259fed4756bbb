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

A step that changed the directory (a configuration reload: new teams and
reps, names, rules, routing, capacities, skills, issues, buttons, links,
the site's settings) carries it whole (:class:`DirectoryState`);
:func:`apply_directory` makes the copy's directory the leader's, fields as
the leader has them (the effective capacity and ``routed`` flag too: no
rule is worked out again here).  Nothing is removed: a reload cannot remove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import Event, EventBus
from repconsole.core.engine.queues import Queues
from repconsole.core.engine.saved import Counters, DirectoryState, EngineChanges, RepState
from repconsole.core.engine.sessions import SessionDesk
from repconsole.core.engine.starts import Starts
from repconsole.core.engine.teamchat import TEAM_CHAT_HISTORY, TeamChats
from repconsole.core.model import Rep, RepStatus, RoutingMode, Session, SessionState, WaitingRule
from repconsole.protocol.events import ChatData, KeyData, RepData, SessionData, TeamChatData, TeamReadData

__all__ = ["apply", "apply_directory", "changes_of"]


def changes_of(
    events: Iterable[Event], counters: Counters, *, queues: Queues, starts: Starts, team_chats: TeamChats, reps: dict[str, Rep],
    directory: DirectoryState | None = None,
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
        {r: RepState(reps[r].status, reps[r].connected, reps[r].grace_until, reps[r].paused_until) for r in sorted(rep_ids)},
        [starts.keys[k] for k in keys if k in starts.keys],
        {t: [line for line in team_chats.chats[t].lines if line.n in ns] for t, ns in team.items()},
        reads,
        directory,
    )


def apply_directory(
    d: DirectoryState,
    directory: Directory,
    add_team: Callable[[str, str], None],
    add_rep: Callable[[str], None],
    set_rule: Callable[[str, WaitingRule | None], None],
    routing_changed: Callable[[str], None],
) -> None:
    """Make ``directory`` what ``d`` says (see the module's docstring).  ``add_team`` and ``add_rep``
    set a new team or rep up in the engine's parts; ``routing_changed`` tells the router of a team
    whose routing changed (a copy has no offers to withdraw: it only learns which teams route)."""
    directory.site = d.site
    teams = directory.teams
    for t in d.teams:
        if t.id not in teams:
            add_team(t.id, t.name)
        team = teams[t.id]
        team.name, team.persistent, team.max_sessions, team.skills = t.name, t.persistent, t.max_sessions, dict(t.skills)
        if team.routing is not t.routing:
            team.routing = RoutingMode(t.routing)
            routing_changed(t.id)
    for t in d.teams:  # rules name other teams: all of them exist by now
        set_rule(t.id, t.rule)
    reps = directory.reps
    for r in d.reps:
        rep = reps.get(r.id)
        if rep is None:
            rep = directory.add_rep(r.id, r.name, r.teams, max_sessions=r.own_max_sessions, connected=False, skills=r.skills)
            add_rep(r.id)
        rep.name, rep.own_max_sessions, rep.max_sessions = r.name, r.own_max_sessions, r.max_sessions
        rep.skills, rep.routed = frozenset(r.skills), r.routed
        for team_id in set(r.teams) - rep.teams:  # members only join (a reload refuses leaving)
            rep.teams.add(team_id)
            teams[team_id].members.add(r.id)
    # In place (the engine's parts hold these dicts), in the leader's order; buttons and links may go.
    directory.issues.clear()
    directory.issues.update((i.code, i) for i in d.issues)
    directory.buttons.clear()
    directory.buttons.update((b.id, b) for b in d.buttons)
    directory.links.clear()
    directory.links.update((link.id, link) for link in d.links)


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
        rep.paused_until = r.paused_until
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
