"""What one console knows, kept current from its feed.

:class:`ConsoleState` starts from a snapshot and applies feed events in
order.  It is Qt-free so that both backends and the tests can use it, and
so that the window only ever draws from it.

It also keeps the console's *rows*: which entries each queue shows.  A row
is a waiting session, an invitation to join a shared session, or (in the
Personal queue) a session the rep is working.  Every :meth:`apply` reports
exactly which rows of which queue appeared, changed or left, so that a view
can update just those.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from repconsole.core.feed import SESSION_GONE, SNAPSHOT, FeedEvent

__all__ = ["ConsoleState", "Changes", "GapError", "Row", "RowKind", "QueueDelta", "TeamChatState"]


class GapError(Exception):
    """An event arrived out of order: the console must resynchronise."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"feed gap: expected event {expected}, got {got}")
        self.expected = expected
        self.got = got


class RowKind(enum.StrEnum):
    WAITING = "waiting"
    INVITATION = "invitation"
    MINE = "mine"  # a session the rep owns or takes part in


class Row:
    """One entry of a queue table.

    A plain slotted class rather than a dataclass: the table keeps 100,000
    of them and reads ``session`` on every paint.

    Attributes:
        id: session id, or invitation id for an invitation.
        kind: waiting, invitation or mine.
        queue: the queue key this row belongs to (``rep:me``, ``team:x``).
        session: the session dict, as the engine serializes it.
        invitation: the invitation dict, for invitation rows.
    """

    __slots__ = ("id", "kind", "queue", "session", "invitation")

    def __init__(self, id: str, kind: RowKind, queue: str, session: dict[str, Any], invitation: dict[str, Any] | None = None) -> None:
        self.id = id
        self.kind = kind
        self.queue = queue
        self.session = session
        self.invitation = invitation

    def __repr__(self) -> str:
        return f"Row({self.id!r}, {self.kind.value}, {self.queue!r})"


@dataclass(slots=True)
class QueueDelta:
    """What changed in one queue's rows.  Ids are row ids."""

    added: dict[str, Row] = field(default_factory=dict)
    changed: dict[str, Row] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    def add(self, row: Row) -> None:
        if row.id in self.removed:
            # Left and came back within one batch: for a view, it changed.
            self.removed.discard(row.id)
            self.changed[row.id] = row
        elif row.id in self.added:
            self.added[row.id] = row
        else:
            self.added[row.id] = row

    def change(self, row: Row) -> None:
        if row.id in self.added:
            self.added[row.id] = row
        else:
            self.changed[row.id] = row

    def remove(self, row_id: str) -> None:
        if self.added.pop(row_id, None) is not None:
            return
        self.changed.pop(row_id, None)
        self.removed.add(row_id)


@dataclass(slots=True)
class Changes:
    """The result of applying one batch of feed events.

    Attributes:
        reset: a snapshot replaced everything; views rebuild from scratch.
        queues: per queue key, the rows that appeared, changed or left.
        arrived: sessions that entered the rep's personal queue or invited
            the rep or one of the rep's teams in this batch (for alerts),
            as ``(reason, session dict)``; reason is ``new``, ``transfer``
            or ``invitation``.
        gone: sessions the rep lost sight of, with the gone payload.
        chat: new session chat lines, as ``(session id, line)``.
        team_chat: new team chat lines, as ``(team id, line)``.
        teams_read: teams whose read marker moved.
        reps: rep ids whose directory entry changed.
        keys: session keys the rep generated or that were used.
        sessions: ids of sessions whose dict changed.
    """

    reset: bool = False
    queues: dict[str, QueueDelta] = field(default_factory=dict)
    arrived: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    gone: dict[str, dict[str, Any]] = field(default_factory=dict)
    chat: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    team_chat: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    teams_read: set[str] = field(default_factory=set)
    reps: set[str] = field(default_factory=set)
    keys: list[dict[str, Any]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)

    def delta(self, queue: str) -> QueueDelta:
        d = self.queues.get(queue)
        if d is None:
            d = self.queues[queue] = QueueDelta()
        return d


@dataclass(slots=True)
class TeamChatState:
    lines: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    last_read: int = 0

    @property
    def unread(self) -> int:
        return max(0, self.count - self.last_read)


class ConsoleState:
    """The console's mirror of what its rep may see.

    Attributes:
        seq: the last feed event applied (-1 before the first snapshot).
        me: the rep's own directory entry.
        reps: every rep on the site, by id.
        teams: every team on the site, by id.
        my_teams: the ids of the rep's teams, in display order.
        sessions: every session the rep may see, by id.
        chats: chat lines of the sessions the rep is in, by session id.
        team_chat: per team of the rep, its chat and read marker.
        keys: the rep's live session keys, by key.
        rows: per queue key, that queue's rows by row id.
    """

    def __init__(self) -> None:
        self.seq = -1
        self.at = 0.0
        self.grace_period = 0.0
        self.me: dict[str, Any] = {}
        self.reps: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.my_teams: list[str] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.chats: dict[str, list[dict[str, Any]]] = {}
        self.team_chat: dict[str, TeamChatState] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.rows: dict[str, dict[str, Row]] = {}
        # session id -> {(queue key, row id)}: where that session shows.
        self._placed: dict[str, set[tuple[str, str]]] = {}

    # ----------------------------------------------------------------- reads

    @property
    def rep_id(self) -> str:
        return str(self.me.get("id", ""))

    @property
    def personal_queue(self) -> str:
        return f"rep:{self.rep_id}"

    def queue_keys(self) -> list[str]:
        """Personal first, then the rep's teams."""
        return [self.personal_queue] + [f"team:{t}" for t in self.my_teams]

    def waiting_count(self, queue: str) -> int:
        """Entries waiting to be taken: waiting sessions and invitations, not the rep's own sessions."""
        rows = self.rows.get(queue, {})
        if queue != self.personal_queue:
            return len(rows)  # only the personal queue holds the rep's own sessions
        return sum(1 for r in rows.values() if r.kind is not RowKind.MINE)

    def my_sessions(self) -> list[dict[str, Any]]:
        """Sessions the rep owns (active or on hold) or takes part in."""
        me = self.rep_id
        return [s for s in self.sessions.values() if s["owner"] == me or me in s["participants"]]

    def in_progress(self) -> int:
        me = self.rep_id
        return sum(1 for s in self.sessions.values() if s["state"] == "active" and (s["owner"] == me or me in s["participants"]))

    def queue_name(self, queue: str) -> str:
        kind, _, ident = queue.partition(":")
        if kind == "rep":
            return "Personal" if ident == self.rep_id else self.reps.get(ident, {}).get("name", ident)
        return self.teams.get(ident, {}).get("name", ident)

    def rep_name(self, rep_id: str | None) -> str:
        if rep_id is None:
            return ""
        return str(self.reps.get(rep_id, {}).get("name", rep_id))

    def all_rows(self) -> Iterable[Row]:
        for rows in self.rows.values():
            yield from rows.values()

    # ---------------------------------------------------------------- writes

    def apply(self, events: Iterable[FeedEvent], *, prev: int | None = None) -> Changes:
        """Apply a batch in order.  Raises GapError on a missing or repeated event.

        Two numberings are understood.  Without ``prev`` (the simulator's
        per-rep feed) events are numbered 1, 2, 3... and each must be the
        last plus one.  With ``prev`` (the server's global numbering, where a
        rep sees only some numbers) the batch says which event preceded it;
        that must be the last one applied, and numbers must then increase.

        Events before the gap are applied and kept; the caller resyncs from a
        fresh snapshot, which replaces everything.
        """
        changes = Changes()
        if prev is not None and prev != self.seq:
            raise GapError(prev, self.seq)
        for event in events:
            if event.kind == SNAPSHOT:
                self._load(event.data)
                self.seq = int(event.data.get("feed_seq", event.seq))
                changes = Changes(reset=True)
                continue
            if prev is None and event.seq != self.seq + 1 or event.seq <= self.seq:
                raise GapError(self.seq + 1, event.seq)
            self.seq = event.seq
            handler = _HANDLERS.get(event.kind)
            if handler is not None:
                handler(self, event.data, changes)
        return changes

    def _load(self, snap: dict[str, Any]) -> None:
        self.at = float(snap.get("at", 0.0))
        self.grace_period = float(snap.get("site", {}).get("grace_period", 0.0))
        self.me = dict(snap["you"])
        self.reps = {r["id"]: r for r in snap["reps"]}
        self.reps[self.me["id"]] = self.me
        self.teams = {t["id"]: t for t in snap["teams"]}
        self.my_teams = sorted(self.me.get("teams", []), key=lambda t: self.teams.get(t, {}).get("name", t).lower())
        self.sessions = {}
        self.chats = {}
        self.rows = {q: {} for q in self.queue_keys()}
        self._placed = {}
        for s in snap["sessions"]:
            chat = s.pop("chat", None)
            if chat is not None:
                self.chats[s["id"]] = chat
            self.sessions[s["id"]] = s
            self._place(s, None)
        self.team_chat = {
            t: TeamChatState(list(c["lines"]), int(c["count"]), int(c["last_read"])) for t, c in snap["team_chat"].items()
        }
        self.keys = {k["key"]: k for k in snap.get("keys", [])}

    def _on_session(self, data: dict[str, Any], changes: Changes) -> None:
        s = dict(data["session"])
        old = self.sessions.get(s["id"])
        if old is not None and "page_html" in old and "page_html" not in s:
            s["page_html"] = old["page_html"]
        self.sessions[s["id"]] = s
        changes.sessions.add(s["id"])
        self._place(s, changes)
        me = self.rep_id
        personal = self.personal_queue
        if s["queue"] == personal and s["state"] == "waiting" and not s["held"]:
            if old is None or old["queue"] != personal:
                last = s["timeline"][-1] if s["timeline"] else {}
                changes.arrived.append(("transfer" if last.get("kind") == "transferred" else "new", s))
        old_invites = {i["id"] for i in old["invitations"]} if old else set()
        mine = set(self.queue_keys())
        for inv in s["invitations"]:
            if inv["id"] not in old_invites and inv["target"] in mine and inv["by"] != me:
                changes.arrived.append(("invitation", s))
        if s["state"] == "ended":
            self._forget(s["id"], changes)

    def _on_session_gone(self, data: dict[str, Any], changes: Changes) -> None:
        changes.gone[data["id"]] = data
        self._forget(data["id"], changes)

    def _forget(self, sid: str, changes: Changes) -> None:
        self.sessions.pop(sid, None)
        self.chats.pop(sid, None)
        for queue, row_id in self._placed.pop(sid, set()):
            self.rows.get(queue, {}).pop(row_id, None)
            changes.delta(queue).remove(row_id)

    def _place(self, s: dict[str, Any], changes: Changes | None) -> None:
        """Recompute where session ``s`` shows and report the difference."""
        me = self.rep_id
        personal = self.personal_queue
        placements: dict[tuple[str, str], Row] = {}
        if s["state"] != "ended":
            queue = s["queue"]
            if queue is not None and queue in self.rows:
                placements[(queue, s["id"])] = Row(s["id"], RowKind.WAITING, queue, s)
            elif s["owner"] == me or me in s["participants"]:
                placements[(personal, s["id"])] = Row(s["id"], RowKind.MINE, personal, s)
            for inv in s["invitations"]:
                if inv["target"] in self.rows:
                    placements[(inv["target"], inv["id"])] = Row(inv["id"], RowKind.INVITATION, inv["target"], s, inv)
        old = self._placed.get(s["id"], set())
        for key in old - placements.keys():
            self.rows[key[0]].pop(key[1], None)
            if changes is not None:
                changes.delta(key[0]).remove(key[1])
        for key, row in placements.items():
            self.rows[key[0]][key[1]] = row
            if changes is not None:
                if key in old:
                    changes.delta(key[0]).change(row)
                else:
                    changes.delta(key[0]).add(row)
        if placements:
            self._placed[s["id"]] = set(placements)
        else:
            self._placed.pop(s["id"], None)

    def _on_chat(self, data: dict[str, Any], changes: Changes) -> None:
        sid = data["session"]
        lines = self.chats.setdefault(sid, [])
        line = data["line"]
        if not lines or lines[-1]["n"] < line["n"]:
            lines.append(line)
            changes.chat.append((sid, line))

    def _on_team_chat(self, data: dict[str, Any], changes: Changes) -> None:
        chat = self.team_chat.setdefault(data["team"], TeamChatState())
        line = data["line"]
        chat.lines.append(line)
        chat.count = max(chat.count, int(line["n"]))
        if line["author"] == self.rep_id:
            chat.last_read = chat.count
        changes.team_chat.append((data["team"], line))

    def _on_team_read(self, data: dict[str, Any], changes: Changes) -> None:
        chat = self.team_chat.setdefault(data["team"], TeamChatState())
        chat.last_read = max(chat.last_read, int(data["last_read"]))
        changes.teams_read.add(data["team"])

    def _on_rep(self, data: dict[str, Any], changes: Changes) -> None:
        rep = data["rep"]
        self.reps[rep["id"]] = rep
        if rep["id"] == self.rep_id:
            self.me = rep
        changes.reps.add(rep["id"])

    def _on_key(self, data: dict[str, Any], changes: Changes) -> None:
        key = data["key"]
        if key["used_by"] is None:
            self.keys[key["key"]] = key
        else:
            self.keys.pop(key["key"], None)
        changes.keys.append(key)


_HANDLERS = {
    "session": ConsoleState._on_session,
    SESSION_GONE: ConsoleState._on_session_gone,
    "chat": ConsoleState._on_chat,
    "team_chat": ConsoleState._on_team_chat,
    "team_read": ConsoleState._on_team_read,
    "rep": ConsoleState._on_rep,
    "key": ConsoleState._on_key,
}
