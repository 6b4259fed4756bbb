"""A rep's snapshot a part at a time, exactly as of one ``seq``.

:meth:`QueueEngine.snapshot` builds one view per session the rep may see:
100,000 waiting customers are 100,000 views, a third of a second of work that
a server would do in one go while every other console waits.  A
:class:`SnapshotCursor` does the cheap part at once (which sessions the rep
may see, in order; the directory, team chats and keys; the sessions the rep
takes part in, with their chat) and builds the other sessions' views when
asked, :meth:`~SnapshotCursor.take` ``n`` at a time, so that a server can
send a part and let its loop run before building the next.

The parts stay exact as of the cursor's ``seq`` whatever happens meanwhile,
by copy-on-write.  Every change of a session goes through
:meth:`Queues.begin <repconsole.core.engine.queues.Queues.begin>` before it
touches the session; ``begin`` tells every open cursor, and a cursor that
has not handed that session out yet builds its view there and then, from
the session as it still is.  A session nobody changed is built when its turn
comes, as it was at ``seq``.  So no part shows a later state, misses a
session the rep could see at ``seq``, or shows one they could not; the
events after ``seq`` then apply on top as they would on a whole snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from repconsole.core.model import QueueRef, Session
from repconsole.protocol.views import SessionView, SnapshotData

__all__ = ["SnapshotCursor"]


class SnapshotCursor:
    """One rep's snapshot as of ``seq``, its sessions handed out in order, ``n`` at a time.

    Made by :meth:`QueueEngine.snapshot_cursor`; :meth:`close` it (or use it
    as a context manager) once done, or it keeps copying sessions that change.

    What it costs when made does not grow with the sessions' views: a copy of
    the ids waiting in the rep's queues (a list of pointers) and the last
    ticket drawn.  A session about to change is still to be handed out, and
    so copied, if it was listed and has not changed since: it waits in one
    of the listed queues on a ticket drawn before the cursor (a session that
    enters a queue later draws a larger one), or it is one of the few listed
    otherwise (invitations), and it is not copied already.  Copying one that
    was handed out already is harmless (the copy is never handed out).

    Attributes:
        head: the snapshot without its sessions (``sessions`` is empty): who
            the rep is, the directory, team chats and keys, as of ``seq``.
        total: how many sessions the whole snapshot has.
    """

    __slots__ = ("_extras", "_last_ticket", "_live", "_next", "_order", "_queues", "_ready", "_ticket", "_unwatch", "head", "total")

    def __init__(
        self,
        head: SnapshotData,
        order: list[str],
        queues: frozenset[QueueRef],
        extras: set[str],
        ready: dict[str, SessionView],
        *,
        live: dict[str, Session],
        last_ticket: int,
        ticket: Callable[[Session], int | None],
        watchers: list[Callable[[Session], None]],
    ) -> None:
        self.head = head
        self.total = len(order)
        self._order = order
        self._next = 0
        # The listed ids that wait in these queues, on a ticket up to last_ticket, are
        # those of `order`; `extras` are the others listed (sessions the rep is invited to).
        self._queues = queues
        self._extras = extras
        self._last_ticket = last_ticket
        self._ticket = ticket
        # Built already: the sessions the rep is in (with their chat), and
        # sessions that changed since seq, as they were before the change.
        self._ready = ready
        self._live = live
        keep = self._keep
        watchers.append(keep)
        self._unwatch: Callable[[], None] | None = lambda: watchers.remove(keep)

    @property
    def seq(self) -> int:
        return self.head.seq

    @property
    def left(self) -> int:
        """Sessions not handed out yet."""
        return self.total - self._next

    def take(self, n: int) -> list[SessionView]:
        """The next ``n`` sessions (fewer at the end), as they were at ``seq``."""
        ready, live = self._ready, self._live
        start = self._next
        ids = self._order[start:start + n]
        self._next = start + len(ids)
        views: list[SessionView] = []
        for sid in ids:
            view = ready.pop(sid, None)
            if view is None:
                view = live[sid].view()  # unchanged since seq: begin() would have kept its view
            views.append(view)
        return views

    def whole(self) -> SnapshotData:
        """The rest of the snapshot in one go, with the head: what :meth:`QueueEngine.snapshot` returns."""
        return msgspec.structs.replace(self.head, sessions=self.take(self.left))

    def _keep(self, s: Session) -> None:
        """``s`` is about to change: if it is listed and unchanged since ``seq``, keep its view as it is now."""
        sid = s.id
        if sid in self._ready:
            return  # copied already (or one the rep is in, built at once)
        if s.queue in self._queues:
            ticket = self._ticket(s)
            if ticket is None or ticket > self._last_ticket:
                return  # it came into the queue after seq: not listed
        elif sid not in self._extras:
            return
        self._ready[sid] = s.view()

    def close(self) -> None:
        """Stop watching changes (what was not taken is dropped).  Safe to call twice."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._ready.clear()

    def __enter__(self) -> SnapshotCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SnapshotCursor(seq={self.seq}, {self._next} of {self.total} taken)"
