"""Who sees which event: the one routing filter, and one rep's feed.

The engine numbers every change globally and says who may see it (its
``audience``) and who just lost sight of it (``gone``).  :func:`routes` is
the only code that turns that into what reps receive: the event itself for
its audience, and a ``session_gone`` that says why but never where for the
reps in ``gone``.  The queue server's fan-out encodes each route once for
all its consoles; :class:`RepFeed` picks one rep's route for the simulator.

Both keep the server's numbering: events carry the engine's global ``seq``,
and a :class:`FeedBatch` carries ``prev``, the number of the event that came
before it for this rep.  A console checks ``prev`` against the last event it
applied, so it can tell an event it lost from an event for someone else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from repconsole.core.engine import Event, QueueEngine
from repconsole.protocol import (
    Event as WireEvent,
)
from repconsole.protocol import (
    GoneReason,
    SessionData,
    SessionGoneData,
    SessionState,
    SessionView,
    Snapshot,
    StepKind,
    make_event,
)

__all__ = ["FeedBatch", "FeedItem", "RepFeed", "Route", "gone_data", "route_for", "routes"]

FeedItem = Snapshot | WireEvent


class FeedBatch(list[FeedItem]):
    """Events for one console, in order, and the ``seq`` of the event before them.

    A batch that starts with a :class:`~repconsole.protocol.Snapshot` has
    ``prev`` None: the snapshot replaces everything, and events after it
    follow from its ``seq``.

    Attributes:
        prev: the seq of the last event this console was sent before the
            batch, or None for a batch that starts with a snapshot.
        backfill: the events happened before the console was watching: a
            big start delivers its snapshot early (the window shows at
            once) and the rest of what was already there in batches like
            this, which fill the view but are no news (nothing in them
            "arrived" for alerts).
    """

    def __init__(self, items: Iterable[FeedItem] = (), prev: int | None = None, *, backfill: bool = False) -> None:
        super().__init__(items)
        self.prev = prev
        self.backfill = backfill

    def __repr__(self) -> str:
        backfill = ", backfill" if self.backfill else ""
        return f"FeedBatch(prev={self.prev}{backfill}, {list.__repr__(self)})"


def gone_data(session: SessionView) -> SessionGoneData:
    """What a rep who lost sight of a session is told: that it left, and why.

    Only the reason and, when a rep took it, who: that is what the console
    needs to say "already taken by Alice".  Where it went is told only for a
    transfer: the one rep who loses sight of it then is the owner who sent it
    there, so the tab can close with "transferred to Priya".
    """
    if session.state is SessionState.ENDED:
        return SessionGoneData(session.id, GoneReason.ENDED, detail=session.end_reason)
    last = session.timeline[-1] if session.timeline else None
    if last is not None and last.by is not None:
        if last.kind is StepKind.TRANSFERRED and last.queue is not None:
            return SessionGoneData(session.id, GoneReason.TRANSFERRED, by=last.by, to=last.queue)
        if last.kind is StepKind.LEFT:
            return SessionGoneData(session.id, GoneReason.LEFT, by=last.by)
    if session.state is SessionState.ACTIVE and session.owner is not None:
        return SessionGoneData(session.id, GoneReason.TAKEN, by=session.owner)
    return SessionGoneData(session.id, GoneReason.MOVED)


@dataclass(frozen=True, slots=True)
class Route:
    """An event as one group of reps receives it."""

    reps: frozenset[str]
    event: WireEvent


def routes(event: Event) -> tuple[Route, ...]:
    """Who receives what of ``event``: its audience the event, the reps in ``gone`` a session_gone.

    A rep is never in both: ``gone`` is the old audience minus the new one.
    """
    wire = make_event(event.seq, event.data)
    if not event.gone:
        return (Route(event.audience, wire),)
    assert isinstance(event.data, SessionData), "only a session event takes a session out of sight"
    gone = make_event(event.seq, gone_data(event.data.session))
    return (Route(event.audience, wire), Route(event.gone, gone))


def route_for(event: Event, rep: str) -> WireEvent | None:
    """What ``rep`` receives of ``event``, if anything: :func:`routes` for one rep."""
    if rep not in event.audience and rep not in event.gone:
        return None  # the common case for most reps: nothing is built
    return next(route.event for route in routes(event) if rep in route.reps)


class RepFeed:
    """One rep's feed of the engine, batched: what the simulator delivers to its console.

    Attributes:
        rep: the rep this feed is for.
        prev: the seq of the last event handed out (or of the snapshot).
    """

    def __init__(self, rep: str) -> None:
        self.rep = rep
        self.prev = 0
        self._pending: list[WireEvent] = []

    def snapshot(self, engine: QueueEngine) -> FeedBatch:
        """A batch with a fresh snapshot; events not yet handed out are in it already."""
        self._pending.clear()
        self.prev = engine.seq
        return FeedBatch([Snapshot(engine.seq, engine.snapshot(self.rep))])

    def project(self, event: Event) -> WireEvent | None:
        """Keep what this rep may see of ``event`` for the next batch (and return it)."""
        wire = route_for(event, self.rep)
        if wire is not None:
            self._pending.append(wire)
        return wire

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self, *, backfill: bool = False) -> FeedBatch | None:
        """The events kept since the last batch, as the next batch (marked ``backfill``); None if there are none."""
        if not self._pending:
            return None
        batch = FeedBatch(self._pending, self.prev, backfill=backfill)
        self.prev = self._pending[-1].seq
        self._pending = []
        return batch
