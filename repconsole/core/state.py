"""What one console knows, kept current from its feed.

:class:`ConsoleState` starts from a snapshot and applies feed batches in
order.  It is Qt-free so that both backends and the tests can use it, and so
that the window only ever draws from it.  Everything in it is the
protocol's typed views (:class:`~repconsole.protocol.SessionView`...) as they
came, from the engine in-process or decoded off the wire.

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

import msgspec
from msgspec import UNSET

from repconsole.core.feed import FeedBatch
from repconsole.protocol import (
    ChatEvent,
    EstimateEvent,
    EstimateView,
    InvitationView,
    KeyEvent,
    KeyView,
    LineView,
    OfferEndedData,
    OfferEndedEvent,
    OfferEvent,
    OfferView,
    QueueKind,
    RepEvent,
    RepStatus,
    RepView,
    SessionEvent,
    SessionGoneData,
    SessionGoneEvent,
    SessionState,
    SessionView,
    Snapshot,
    SnapshotData,
    StepKind,
    TeamChatEvent,
    TeamReadEvent,
    TeamView,
)

__all__ = ["Arrival", "Changes", "ConsoleState", "GapError", "QueueDelta", "Row", "RowKind", "TeamChatState"]


class GapError(Exception):
    """An event arrived out of order: the console must resynchronise."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"feed gap: expected the batch after event {expected}, got one after {got}")
        self.expected = expected
        self.got = got


class RowKind(enum.StrEnum):
    WAITING = "waiting"
    INVITATION = "invitation"
    MINE = "mine"  # a session the rep owns or takes part in


class Arrival(enum.StrEnum):
    """Why a session just came to the rep (for alerts)."""

    NEW = "new"  # a new customer in the personal queue
    TRANSFER = "transfer"  # transferred to the rep
    INVITATION = "invitation"  # the rep or one of the rep's teams is invited to join
    TEAM = "team"  # a new customer waiting in one of the rep's team queues (arrived, transferred or moved there)


class Row:
    """One entry of a queue table.

    A plain slotted class rather than a dataclass: the table keeps 100,000
    of them and reads ``session`` on every paint.

    Attributes:
        id: session id, or invitation id for an invitation.
        kind: waiting, invitation or mine.
        queue: the queue key this row belongs to (``rep:me``, ``team:x``).
        session: the session.
        invitation: the invitation, for invitation rows.
    """

    __slots__ = ("id", "invitation", "kind", "queue", "session")

    def __init__(self, id: str, kind: RowKind, queue: str, session: SessionView, invitation: InvitationView | None = None) -> None:
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
    """The result of applying one batch.

    Attributes:
        reset: a snapshot replaced everything; views rebuild from scratch.
        backfill: the batch filled in what was already there (a big
            start's population, :attr:`FeedBatch.backfill`): its sessions
            are not in ``arrived`` nor ``overdue``, since none is news.
        queues: per queue key, the rows that appeared, changed or left.
        arrived: sessions that entered the rep's personal queue or one of
            the rep's team queues, or invited the rep or one of the rep's
            teams, in this batch (for alerts).
        overdue: waiting sessions, in a queue the rep sees, whose
            ``overdue`` turned true in this batch (a waiting-session rule
            marked them; for alerts).
        gone: sessions the rep lost sight of, and why.
        chat: new session chat lines, as ``(session id, line)``.
        team_chat: new team chat lines, as ``(team id, line)``.
        teams_read: teams whose read marker moved.
        reps: rep ids whose directory entry changed.
        keys: session keys the rep generated or that were used.
        sessions: ids of sessions that changed.
        offers: offers made to the rep in this batch (issue 14).
        offers_ended: the rep's offers that ended in this batch, and how.
        estimates: teams whose wait estimate changed.
    """

    reset: bool = False
    backfill: bool = False
    queues: dict[str, QueueDelta] = field(default_factory=dict)
    arrived: list[tuple[Arrival, SessionView]] = field(default_factory=list)
    overdue: list[SessionView] = field(default_factory=list)
    gone: dict[str, SessionGoneData] = field(default_factory=dict)
    chat: list[tuple[str, LineView]] = field(default_factory=list)
    team_chat: list[tuple[str, LineView]] = field(default_factory=list)
    teams_read: set[str] = field(default_factory=set)
    reps: set[str] = field(default_factory=set)
    keys: list[KeyView] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    offers: list[OfferView] = field(default_factory=list)
    offers_ended: list[OfferEndedData] = field(default_factory=list)
    estimates: set[str] = field(default_factory=set)

    def delta(self, queue: str) -> QueueDelta:
        d = self.queues.get(queue)
        if d is None:
            d = self.queues[queue] = QueueDelta()
        return d


@dataclass(slots=True)
class TeamChatState:
    lines: list[LineView] = field(default_factory=list)
    count: int = 0
    last_read: int = 0

    @property
    def unread(self) -> int:
        return max(0, self.count - self.last_read)


_NOBODY = RepView("", "", [], RepStatus.AVAILABLE, 0, False, None)  # before the first snapshot


class ConsoleState:
    """The console's mirror of what its rep may see.

    Attributes:
        seq: the last event applied, in the engine's numbering (-1 before the first snapshot).
        me: the rep's own directory entry.
        reps: every rep on the site, by id.
        teams: every team on the site, by id.
        my_teams: the ids of the rep's teams, in display order.
        sessions: every session the rep may see, by id.
        chats: chat lines of the sessions the rep is in, by session id.
        pages: the customer's page of the browser-sharing sessions the rep is in, by session id.
        team_chat: per team of the rep, its chat and read marker.
        keys: the rep's live session keys, by key.
        rows: per queue key, that queue's rows by row id.
        offers: the rep's open offers by session id, oldest first (issue 14).
        estimates: per team id, the wait a customer arriving now is told
            (None: no data): from the snapshot, then ``estimate`` events.  A
            snapshot without them (a server before they were in it) keeps
            what came before it.
    """

    def __init__(self) -> None:
        self.seq = -1
        self.at = 0.0
        self.grace_period = 0.0
        self.me: RepView = _NOBODY
        self.reps: dict[str, RepView] = {}
        self.teams: dict[str, TeamView] = {}
        self.my_teams: list[str] = []
        self.sessions: dict[str, SessionView] = {}
        self.chats: dict[str, list[LineView]] = {}
        self.pages: dict[str, str] = {}
        self.team_chat: dict[str, TeamChatState] = {}
        self.keys: dict[str, KeyView] = {}
        self.rows: dict[str, dict[str, Row]] = {}
        self.offers: dict[str, OfferView] = {}
        self.estimates: dict[str, EstimateView | None] = {}
        # session id -> {(queue key, row id)}: where that session shows.
        self._placed: dict[str, set[tuple[str, str]]] = {}
        # The ids of the sessions the rep is in, in the order they became so:
        # counting them must not walk 100,000 waiting sessions at every batch.
        self._mine: dict[str, None] = {}
        # What the rep's identity and teams make of queue keys, as of the last snapshot (read per event).
        self._personal = "rep:"
        self._queue_keys: tuple[str, ...] = (self._personal,)

    # ----------------------------------------------------------------- reads

    @property
    def rep_id(self) -> str:
        return self.me.id

    @property
    def personal_queue(self) -> str:
        return self._personal

    def queue_keys(self) -> list[str]:
        """Personal first, then the rep's teams."""
        return list(self._queue_keys)

    def waiting_count(self, queue: str) -> int:
        """Entries waiting to be taken: waiting sessions and invitations, not the rep's own sessions."""
        rows = self.rows.get(queue, {})
        if queue != self.personal_queue:
            return len(rows)  # only the personal queue holds the rep's own sessions
        mine = sum(1 for sid in self._mine if (row := rows.get(sid)) is not None and row.kind is RowKind.MINE)
        return len(rows) - mine

    def my_sessions(self) -> list[SessionView]:
        """Sessions the rep owns (active or on hold) or takes part in."""
        return [self.sessions[sid] for sid in self._mine]

    def in_progress(self) -> int:
        sessions = self.sessions
        return sum(1 for sid in self._mine if sessions[sid].state is SessionState.ACTIVE)

    def queue_name(self, queue: str) -> str:
        kind, _, ident = queue.partition(":")
        if kind == QueueKind.PERSONAL:
            if ident == self.rep_id:
                return "Personal"
            rep = self.reps.get(ident)
            return rep.name if rep else ident
        team = self.teams.get(ident)
        return team.name if team else ident

    def rep_name(self, rep_id: str | None) -> str:
        if rep_id is None:
            return ""
        rep = self.reps.get(rep_id)
        return rep.name if rep else rep_id

    def all_rows(self) -> Iterable[Row]:
        for rows in self.rows.values():
            yield from rows.values()

    # ---------------------------------------------------------------- writes

    def apply(self, batch: FeedBatch) -> Changes:
        """Apply a batch in order.  Raises GapError when ``batch.prev`` is not the last event applied.

        One numbering, the engine's: a rep sees only some numbers, so events
        only need to increase; ``prev`` is what proves nothing was lost.
        Events before a gap are applied and kept; the caller resyncs from a
        fresh snapshot, which replaces everything.
        """
        changes = Changes()
        if batch.prev is None:
            if batch and not isinstance(batch[0], Snapshot):
                raise ValueError("a batch without prev must start with a snapshot")
        elif batch.prev != self.seq:
            raise GapError(self.seq, batch.prev)
        for item in batch:
            if isinstance(item, Snapshot):
                self._load(item.data)
                self.seq = item.seq
                changes = Changes(reset=True)
                continue
            if item.seq <= self.seq:
                raise GapError(self.seq, item.seq)  # a repeat, or out of order
            self.seq = item.seq
            match item:
                case SessionEvent():
                    self._on_session(item.data.session, changes, news=not batch.backfill)
                case SessionGoneEvent():
                    changes.gone[item.data.id] = item.data
                    self._forget(item.data.id, changes)
                case ChatEvent():
                    self._on_chat(item.data.session, item.data.line, changes)
                case TeamChatEvent():
                    self._on_team_chat(item.data.team, item.data.line, changes)
                case TeamReadEvent():
                    chat = self.team_chat.setdefault(item.data.team, TeamChatState())
                    chat.last_read = max(chat.last_read, item.data.last_read)
                    changes.teams_read.add(item.data.team)
                case RepEvent():
                    self._on_rep(item.data.rep, changes)
                case KeyEvent():
                    self._on_key(item.data.key, changes)
                case OfferEvent():
                    if item.data.offer.rep == self.rep_id:
                        self.offers[item.data.offer.session] = item.data.offer
                        changes.offers.append(item.data.offer)
                case OfferEndedEvent():
                    if item.data.rep == self.rep_id and self.offers.pop(item.data.session, None) is not None:
                        changes.offers_ended.append(item.data)
                case EstimateEvent():
                    self.estimates[item.data.team] = item.data.estimate
                    changes.estimates.add(item.data.team)
        changes.backfill = batch.backfill
        return changes

    def adopt(self, session: SessionView) -> SessionView:
        """A command's result brought a session with its chat (accept, join): keep its chat and page.

        The session itself arrives as an event like any other change; only
        what events leave out is taken from here.  Returns ``session``
        without its chat and page: the newest view at hand until that event
        comes, for a tab to open with.
        """
        return self._keep_chat_and_page(session)

    def _keep_chat_and_page(self, s: SessionView) -> SessionView:
        """Keep the chat and page ``s`` carries; ``s`` without them, as events carry it.

        The one place a session's chat and page are taken from a view that
        carries them (a snapshot, an accept result): events never do, so what
        is kept here stays until the rep loses sight of the session.
        """
        if not isinstance(s.chat, list):
            return s
        chat = self.chats.get(s.id)
        if chat is None or len(s.chat) >= len(chat):
            self.chats[s.id] = list(s.chat)
        if isinstance(s.page_html, str) and s.page_html:
            self.pages[s.id] = s.page_html
        return msgspec.structs.replace(s, chat=UNSET, page_html=UNSET)

    def _load(self, snap: SnapshotData) -> None:
        self.at = snap.at
        self.grace_period = snap.site.grace_period
        self.me = snap.you
        self.reps = {r.id: r for r in snap.reps}
        self.reps[self.me.id] = self.me
        self.teams = {t.id: t for t in snap.teams}
        self.my_teams = sorted(self.me.teams, key=lambda t: self.teams[t].name.lower() if t in self.teams else t)
        self._personal = f"rep:{self.me.id}"
        if snap.estimates is not UNSET:
            self.estimates = dict(snap.estimates)
        self._queue_keys = (self._personal, *(f"team:{t}" for t in self.my_teams))
        self.sessions = {}
        self.chats = {}
        self.pages = {}
        self.rows = {q: {} for q in self.queue_keys()}
        self._placed = {}
        self._mine = {}
        for s in snap.sessions:
            s = self._keep_chat_and_page(s)
            self.sessions[s.id] = s
            self._place(s, None)
        self.team_chat = {t: TeamChatState(list(c.lines), c.count, c.last_read) for t, c in snap.team_chat.items()}
        self.keys = {k.key: k for k in snap.keys}
        self.offers = {o.session: o for o in snap.offers} if isinstance(snap.offers, list) else {}

    def _on_session(self, s: SessionView, changes: Changes, *, news: bool = True) -> None:
        old = self.sessions.get(s.id)
        self.sessions[s.id] = s
        changes.sessions.add(s.id)
        self._place(s, changes)
        if news:
            self._arrivals(old, s, changes)
        if s.state is SessionState.ENDED:
            self._forget(s.id, changes)

    def _arrivals(self, old: SessionView | None, s: SessionView, changes: Changes) -> None:
        """Note in ``changes`` what session ``s`` (``old`` before) brings to the rep's attention.

        Not asked for a backfill batch: customers who were already waiting
        when the console started are no news, and the rep must not hear
        100,000 alerts for them.
        """
        me = self.rep_id
        personal = self.personal_queue
        waiting = s.state is SessionState.WAITING and s.queue is not None
        last = s.timeline[-1] if s.timeline else None
        transferred = last is not None and last.kind is StepKind.TRANSFERRED
        if waiting and s.queue == personal and not s.held and (old is None or old.queue != personal):
            changes.arrived.append((Arrival.TRANSFER if transferred else Arrival.NEW, s))
        elif transferred and s.owner == me and old is not None and old.owner != me and s.state is SessionState.ACTIVE:
            # Transferred to the rep while taking part in it: theirs at once, no queue to arrive in.
            changes.arrived.append((Arrival.TRANSFER, s))
        elif waiting and s.queue != personal and s.queue in self.rows and (old is None or old.queue != s.queue or old.state is not SessionState.WAITING):
            changes.arrived.append((Arrival.TEAM, s))
        if waiting and s.overdue and s.queue in self.rows and (old is None or not old.overdue):
            changes.overdue.append(s)
        old_invites = {i.id for i in old.invitations} if old and s.invitations else set()
        for inv in s.invitations:
            if inv.id not in old_invites and inv.target in self._queue_keys and inv.by != me:
                changes.arrived.append((Arrival.INVITATION, s))

    def _forget(self, sid: str, changes: Changes) -> None:
        self.sessions.pop(sid, None)
        self._mine.pop(sid, None)
        self.chats.pop(sid, None)
        self.pages.pop(sid, None)
        for queue, row_id in self._placed.pop(sid, set()):
            self.rows.get(queue, {}).pop(row_id, None)
            changes.delta(queue).remove(row_id)

    def _place(self, s: SessionView, changes: Changes | None) -> None:
        """Recompute where session ``s`` shows and report the difference."""
        personal = self.personal_queue
        placements: dict[tuple[str, str], Row] = {}
        mine = s.involves(self.rep_id)
        if mine:
            self._mine[s.id] = None
        else:
            self._mine.pop(s.id, None)
        if s.state is not SessionState.ENDED:
            queue = s.queue
            if queue is not None and queue in self.rows:
                placements[(queue, s.id)] = Row(s.id, RowKind.WAITING, queue, s)
            elif mine:
                placements[(personal, s.id)] = Row(s.id, RowKind.MINE, personal, s)
            for inv in s.invitations:
                if inv.target in self.rows:
                    placements[(inv.target, inv.id)] = Row(inv.id, RowKind.INVITATION, inv.target, s, inv)
        old = self._placed.get(s.id, set())
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
            self._placed[s.id] = set(placements)
        else:
            self._placed.pop(s.id, None)

    def _on_chat(self, sid: str, line: LineView, changes: Changes) -> None:
        lines = self.chats.setdefault(sid, [])
        if not lines or lines[-1].n < line.n:
            lines.append(line)
            changes.chat.append((sid, line))

    def _on_team_chat(self, team: str, line: LineView, changes: Changes) -> None:
        chat = self.team_chat.setdefault(team, TeamChatState())
        chat.lines.append(line)
        chat.count = max(chat.count, line.n)
        if line.author == self.rep_id:
            chat.last_read = chat.count
        changes.team_chat.append((team, line))

    def _on_rep(self, rep: RepView, changes: Changes) -> None:
        self.reps[rep.id] = rep
        if rep.id == self.rep_id:
            self.me = rep
        changes.reps.add(rep.id)

    def _on_key(self, key: KeyView, changes: Changes) -> None:
        if key.used_by is None:
            self.keys[key.key] = key
        else:
            self.keys.pop(key.key, None)
        changes.keys.append(key)
