"""The engine's runtime state as plain objects: what :meth:`QueueEngine.export_state` returns.

:mod:`repconsole.core.persist` turns it into JSON and back; the server's
store writes it to SQLite.  Configuration (teams, reps, issues, buttons,
links, rules) is not part of it: the caller builds the directory on a fresh
engine before :meth:`QueueEngine.restore_state`.  Derived state (waiting
indexes, Get Next heaps, who-is-in-what, timers) is not part of it either:
restoring rebuilds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repconsole.core.engine.teamchat import TeamChat
from repconsole.core.model import BrowserLink, ChatLine, Issue, QueueRef, Rep, RepStatus, Session, SessionKey, SiteConfig, SupportButton, Team

__all__ = ["Counters", "DirectoryState", "EngineChanges", "EngineState", "RepState"]


@dataclass(frozen=True, slots=True)
class Counters:
    """The numbers that must never be handed out twice.

    Attributes:
        seq: the last event's sequence number.
        sessions: the last session number (``S<n>``).
        invitations: the last invitation number (``I<n>``).
    """

    seq: int
    sessions: int
    invitations: int


@dataclass(frozen=True, slots=True)
class RepState:
    """A rep's runtime state; their name, teams and limits are configuration."""

    status: RepStatus
    connected: bool
    grace_until: float | None
    paused_until: float | None = None  # offers paused until then (a "resume" timer); None: not paused


@dataclass(slots=True)
class EngineState:
    """Everything :meth:`QueueEngine.restore_state` needs to continue where an engine stopped.

    Exported sessions and keys are the engine's own objects, not copies:
    encode them before the engine's next command, and do not change them.
    A state given to ``restore_state`` becomes the engine's.

    Attributes:
        counters: see :class:`Counters`.
        sessions: live sessions, in arrival order.
        waiting: each queue's waiting session ids, in queue order.
        ended: ended sessions kept whole, oldest first.
        reps: runtime state of each rep, by id.
        keys: session keys still remembered.
        team_chat: each team's chat, by team id.
    """

    counters: Counters
    sessions: list[Session]
    waiting: dict[QueueRef, list[str]]
    ended: list[Session]
    reps: dict[str, RepState]
    keys: list[SessionKey]
    team_chat: dict[str, TeamChat]


@dataclass(slots=True)
class DirectoryState:
    """The site's directory as an engine has it after a step that changed it (a configuration
    reload), for another engine's :meth:`QueueEngine.apply_changes`.

    The engine's own objects (encode them before its next command).  Of each
    rep, only the directory's part is taken (name, teams, own and effective
    capacity, skills, ``routed``); their runtime state comes with the step's
    ``reps``.  Team members follow from the reps' teams.
    """

    site: SiteConfig
    teams: list[Team]
    reps: list[Rep]
    issues: list[Issue]
    buttons: list[SupportButton]
    links: list[BrowserLink]


@dataclass(slots=True)
class EngineChanges:
    """What one step of another engine changed, for :meth:`QueueEngine.apply_changes`.

    A cluster's followers keep a copy of the leader's engine by applying its
    steps (repconsole/server/cluster/entry.py).  Objects given become the
    engine's, as with :class:`EngineState`.

    Attributes:
        counters: the leader's counters after the step.
        sessions: each session the step changed, as it is after the step, in
            the order of the step's last event about it.  Their ``chat`` is
            not taken: a session's chat grows by ``chat`` lines only.
        chat: new chat lines, by session id.
        reps: runtime state of each rep the step changed.
        keys: session keys the step made or used.
        team_lines: new team chat lines, by team id.
        team_read: read markers the step moved: team id -> rep id -> line number.
        directory: the whole directory, if the step changed it (None: it did not).
    """

    counters: Counters
    sessions: list[Session] = field(default_factory=list)
    chat: dict[str, list[ChatLine]] = field(default_factory=dict)
    reps: dict[str, RepState] = field(default_factory=dict)
    keys: list[SessionKey] = field(default_factory=list)
    team_lines: dict[str, list[ChatLine]] = field(default_factory=dict)
    team_read: dict[str, dict[str, int]] = field(default_factory=dict)
    directory: DirectoryState | None = None
