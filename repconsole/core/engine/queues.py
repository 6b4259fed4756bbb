"""Where every session is: the session store, the queues, and who may see what.

:class:`Queues` owns the live and recently ended sessions and every index
derived from them.  Commands never touch an index: they bracket each change
of a session with :meth:`Queues.begin` and :meth:`Queues.commit`, and
``commit`` brings the indexes up to date and announces the change.  So the
indexes cannot drift from the sessions, whichever command moved them.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import islice

from repconsole.core.clock import Clock
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import NO_REPS, EventBus
from repconsole.core.engine.timers import Timers
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import QueueKind, QueueRef, Session, SessionState, StepKind, TimelineStep
from repconsole.protocol.events import SessionData

__all__ = ["NOTHING", "Before", "Queues", "last_queue"]

# What a change may invalidate, remembered by begin() for commit():
# (audience, queue, owner and participants, queue_entered_at).
Before = tuple[frozenset[str], QueueRef | None, frozenset[str], float]
# The "before" of a session that did not exist yet.
NOTHING: Before = (NO_REPS, None, NO_REPS, 0.0)


def _insert_sorted(values: list[int], value: int) -> None:
    """Add ``value`` to the sorted ``values`` unless it is there (a new ticket is the largest: an append)."""
    if not values or values[-1] < value:
        values.append(value)
        return
    i = bisect_left(values, value)
    if values[i] != value:
        values.insert(i, value)


def _remove_sorted(values: list[int], value: int) -> None:
    i = bisect_left(values, value)
    if i < len(values) and values[i] == value:
        del values[i]


def last_queue(s: Session, excluding: str | None = None) -> QueueRef | None:
    """The last queue ``s`` was in (an invitation is not being in a queue), skipping rep ``excluding``'s own."""
    for step in reversed(s.timeline):
        q = step.queue
        if q is not None and step.kind is not StepKind.SHARED and not (q.is_personal and q.id == excluding):
            return q
    return None


class Queues:
    """The live and ended sessions, the waiting indexes and the audiences.

    Attributes:
        live: sessions that have not ended, by id, in arrival order.
        ended: ended sessions kept whole, oldest first (at most ``ended_kept``).
        counter: the number of the last session id handed out (``S<n>``).
    """

    def __init__(self, clock: Clock, bus: EventBus, directory: Directory, timers: Timers, *, ended_kept: int) -> None:
        self._clock = clock
        self._bus = bus
        self._listeners = bus.listeners  # the bus's own list: empty means nobody to tell
        self._dir = directory
        self._timers = timers
        self._ended_kept = ended_kept
        self.live: dict[str, Session] = {}
        self.ended: dict[str, Session] = {}
        self.counter = 0
        # Indexes, all maintained in commit(): waiting sessions per queue in
        # arrival order, and the sessions each rep owns or takes part in.
        # Each entry into a queue draws a ticket from one counter, so tickets
        # increase in queue order; _unheld holds, sorted, the tickets of the
        # sessions not on hold, so that a customer's place in the queue is a
        # bisection, not a walk of the queue (see position()).
        self._waiting: dict[QueueRef, dict[str, int]] = {}
        self._unheld: dict[QueueRef, list[int]] = {}
        self._tickets = 0
        self._waiting_count = 0  # sum of len() over _waiting, kept by commit()
        self._involved: dict[str, set[str]] = {}
        # Get Next wants the oldest waiting session across several team
        # queues; a heap per team keeps that O(log n) at 100,000 sessions.
        # Entries go stale when a session leaves; they are skipped lazily.
        self._oldest: dict[str, list[tuple[float, str]]] = {}
        # Told of every session about to change, before it does: a snapshot
        # being built part by part keeps its view as of its seq (SnapshotCursor).
        self.watchers: list[Callable[[Session], None]] = []
        # Told of every change after it is announced: (session, the queue it
        # was in, who was in it before, who is in it now).  Auto-assignment
        # (routing.Router) follows capacity and queues through it.
        self.committed: Callable[[Session, QueueRef | None, frozenset[str], frozenset[str]], None] | None = None

    def add_team(self, team_id: str) -> None:
        self._oldest[team_id] = []

    def add_rep(self, rep_id: str) -> None:
        self._involved[rep_id] = set()

    # ------------------------------------------------------------ sessions

    def new_id(self) -> str:
        self.counter += 1
        return f"S{self.counter}"

    def session(self, session_id: str) -> Session:
        """A live or recently ended session; UNKNOWN_SESSION, or SESSION_ENDED if only its number is remembered."""
        s = self.live.get(session_id) or self.ended.get(session_id)
        if s is None:
            if self._was_issued(session_id):
                raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
            raise CommandError(Reason.UNKNOWN_SESSION, session_id=session_id)
        return s

    def _was_issued(self, session_id: object) -> bool:
        # Ids are "S<n>" from a counter, so any n up to the counter was a
        # session: no set of old ids has to be kept to recognise one.
        if not isinstance(session_id, str) or not session_id.startswith("S") or not session_id[1:].isdigit():
            return False
        return 0 < int(session_id[1:]) <= self.counter

    def retire(self, s: Session) -> None:
        """Move an ended session from the live ones to the ended ones (call before its commit)."""
        del self.live[s.id]
        self.ended[s.id] = s
        if len(self.ended) > self._ended_kept:
            # Ended sessions are history (the server keeps them in its
            # database); holding every one would grow memory, and the cost
            # of each full garbage collection, for the whole shift.
            del self.ended[next(iter(self.ended))]

    def forget_ended(self, keep: int) -> int:
        """Let go of every ended session but the ``keep`` that ended last.  Returns how many went."""
        ended = self.ended
        extra = len(ended) - max(0, keep)
        if extra <= 0:
            return 0
        if extra == len(ended):
            ended.clear()  # gives the table back too: a dict never shrinks by deletions
        else:
            for sid in list(islice(ended, extra)):
                del ended[sid]
        return extra

    # -------------------------------------------------------------- queues

    def waiting_ids(self, queue: QueueRef) -> Iterable[str]:
        """Ids of the sessions waiting in ``queue``, in queue order."""
        return self._waiting.get(queue, {}).keys()

    @property
    def last_ticket(self) -> int:
        """The ticket drawn last: a session that enters a queue from now on draws a larger one."""
        return self._tickets

    def ticket(self, s: Session) -> int | None:
        """The ticket ``s`` drew when it entered the queue it waits in; None if it waits in none."""
        q = s.queue
        return self._waiting.get(q, {}).get(s.id) if q is not None else None

    def waiting_order(self) -> dict[QueueRef, list[str]]:
        """Every non-empty queue's waiting session ids, in queue order."""
        return {q: list(sids) for q, sids in self._waiting.items() if sids}

    def count(self, queue: QueueRef) -> int:
        return len(self._waiting.get(queue, ()))

    def position(self, session_id: str) -> int | None:
        """1 + the sessions ahead of it that are not on hold; None if not waiting.  O(log n)."""
        s = self.live.get(session_id)
        if s is None or s.queue is None:
            return None
        ticket = self._waiting.get(s.queue, {}).get(session_id)
        if ticket is None:
            return None
        return bisect_left(self._unheld.get(s.queue, ()), ticket) + 1

    def waiting_total(self) -> int:
        return self._waiting_count

    def involved(self, rep_id: str) -> set[str]:
        """The live index itself: callers outside the engine get a copy."""
        return self._involved.get(rep_id, set())

    def load(self, rep_id: str) -> int:
        return len(self._involved.get(rep_id, ()))

    def oldest_waiting(self, team_ids: Iterable[str]) -> str | None:
        """The id of the longest-waiting session across these team queues (Get Next), or None."""
        best: tuple[float, str] | None = None
        for team_id in team_ids:
            heap = self._oldest[team_id]
            q = QueueRef.team(team_id)
            while heap:
                _, sid = heap[0]
                s = self.live.get(sid)
                if s is not None and s.state is SessionState.WAITING and s.queue == q:
                    break
                heapq.heappop(heap)
            if heap and (best is None or heap[0] < best):
                best = heap[0]
        return best[1] if best is not None else None

    def _compact_oldest(self, queue: QueueRef) -> None:
        """Rebuild a team's Get Next heap once most of its entries are stale.

        Entries of sessions that left are skipped lazily by Get Next, but a
        team whose sessions are accepted by id, or one with a customer who
        waits for ever at the top, would keep every one of them: one per
        session that ever waited there.  Rebuilt when the stale entries
        outnumber the waiting sessions (plus a little), so the work is
        amortised O(1) per session and the heap stays within twice the queue.
        """
        heap = self._oldest[queue.id]
        waiting = self._waiting.get(queue, {})
        if len(heap) <= 2 * len(waiting) + 64:
            return
        live = self.live
        fresh = [(live[sid].created_at, sid) for sid in waiting]
        heapq.heapify(fresh)
        self._oldest[queue.id] = fresh

    def enqueue(self, s: Session, queue: QueueRef, kind: StepKind, *, by: str | None = None, note: str = "") -> None:
        """Put ``s`` in ``queue`` (last), with a timeline step; a waiting rule (the team's, or the site's personal one) starts counting."""
        now = self._clock()
        queue = self._dir.ref(queue)
        s.state = SessionState.WAITING
        s.queue = queue
        s.queue_entered_at = now
        s.overdue = False
        s.rule_deadline = None
        s.timeline.append(TimelineStep(now, kind, queue=queue, by=by, note=note))
        if not s.held:
            if queue.kind is QueueKind.TEAM:
                rule = self._dir.teams[queue.id].rule
                after = rule.after if rule is not None else None
            else:
                after = self._dir.site.personal_overdue_after
            if after is not None:
                s.rule_deadline = now + after
                self._timers.add(s.rule_deadline, "rule", s.id)

    # ----------------------------------------------------------- audiences

    def audience(self, s: Session) -> frozenset[str]:
        """The reps allowed to see session ``s`` right now.

        That is the members of the queue it waits in, its owner and
        participants, and the members of the queues its invitations wait in.
        Nobody else: not the members of a team it passed through earlier.
        """
        if s.state is SessionState.ENDED:
            return NO_REPS
        q = s.queue
        members = self._dir.members
        if not s.participants and not s.invitations:
            # The common cases - waiting in a queue, or one rep working it (or
            # holding it in their own queue) - come from the cache, unmerged.
            if s.owner is None:
                return members(q) if q is not None else NO_REPS
            if q is None or (q.kind is QueueKind.PERSONAL and q.id == s.owner):
                return self._dir.only(s.owner)
        reps: set[str] = set(s.participants)
        if s.owner is not None:
            reps.add(s.owner)
        if s.queue is not None:
            reps |= members(s.queue)
        for inv in s.invitations.values():
            reps |= members(inv.target)
        return frozenset(reps)

    def in_session(self, s: Session) -> frozenset[str]:
        """The owner and participants (most sessions have no participant: no merging then)."""
        if not s.participants:
            return self._dir.only(s.owner) if s.owner else NO_REPS
        return frozenset(s.participants) | ({s.owner} if s.owner else NO_REPS)

    # -------------------------------------------------------------- changes

    def begin(self, s: Session) -> Before:
        """Remember what a change may invalidate; pair with :meth:`commit`.

        Called before the change touches ``s``: the :attr:`watchers` see it as it still is.
        """
        if self.watchers:
            for watch in self.watchers:
                watch(s)
        # The old audience only serves to compute ``gone`` for listeners.
        audience = self.audience(s) if self._listeners else NO_REPS
        return audience, s.queue, self.in_session(s), s.queue_entered_at

    def commit(self, s: Session, before: Before) -> None:
        """Bring every index up to date with ``s`` and announce the change."""
        old_audience, old_queue, old_involved, old_entered = before
        if s.state is SessionState.ENDED:
            s.queue = None
        if old_entered != s.queue_entered_at or (old_queue is not s.queue and old_queue != s.queue):
            if old_queue is not None:
                ticket = self._waiting[old_queue].pop(s.id, None)
                if ticket is not None:
                    self._waiting_count -= 1
                    _remove_sorted(self._unheld[old_queue], ticket)
            if s.queue is not None:
                waiting = self._waiting.setdefault(s.queue, {})
                if s.id not in waiting:
                    self._waiting_count += 1
                    self._tickets += 1
                    waiting[s.id] = self._tickets  # the largest yet: last in the queue
                if s.queue.kind is QueueKind.TEAM:
                    heapq.heappush(self._oldest[s.queue.id], (s.created_at, s.id))
            if old_queue is not None and old_queue.kind is QueueKind.TEAM:
                self._compact_oldest(old_queue)
        if s.queue is not None:
            ticket = self._waiting[s.queue].get(s.id)
            if ticket is not None:
                unheld = self._unheld.setdefault(s.queue, [])
                if s.held:
                    _remove_sorted(unheld, ticket)
                else:
                    _insert_sorted(unheld, ticket)
        involved = NO_REPS if s.state is SessionState.ENDED else self.in_session(s)
        if involved != old_involved:
            for rep_id in old_involved - involved:
                self._involved[rep_id].discard(s.id)
            for rep_id in involved - old_involved:
                self._involved[rep_id].add(s.id)
        if not self._listeners:
            self._bus.skip()  # nobody to tell, but the numbering still moves
        else:
            audience = self.audience(s)
            # Audiences come from a cache in the common cases: often the very same set.
            gone = NO_REPS if old_audience is audience or not old_audience else old_audience - audience
            self._bus.emit(SessionData(s.view()), audience, gone)
        if self.committed is not None:
            self.committed(s, old_queue, old_involved, involved)

    # -------------------------------------------------------------- restore

    def replace(self, s: Session) -> None:
        """Put ``s`` in place of the session with its id, or add it (a follower
        copying a leader's change: see ``QueueEngine.apply_changes``).

        Indexed by :meth:`begin` and :meth:`commit`, the code every command uses.
        """
        old = self.live.get(s.id) or self.ended.get(s.id)
        before = self.begin(old) if old is not None else NOTHING
        if s.state is SessionState.ENDED:
            if self.live.pop(s.id, None) is not None or s.id not in self.ended:
                self.live[s.id] = s  # retire() moves it, keeping the ended ones as a command would
                self.retire(s)
            else:
                self.ended[s.id] = s
        else:
            self.live[s.id] = s
        self.commit(s, before)

    def adopt(self, live: Iterable[Session], ended: Iterable[Session]) -> None:
        """Take sessions from saved state into this empty store, each list in its own order.

        Only the store: the caller indexes each live session with
        ``commit(s, NOTHING)``, the code every command uses, so that nothing
        derived can disagree with what the engine would have built itself.
        """
        # Only the newest are kept whole, as retire() would have kept them.
        for s in list(ended)[-self._ended_kept:] if self._ended_kept > 0 else ():
            self.ended[s.id] = s
        for s in live:
            self.live[s.id] = s
