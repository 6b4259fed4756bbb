"""Fan-out: every committed engine event to every console that may see it.

Cost is what matters here: one engine event may go to hundreds of consoles,
and a burst (a rule moving a thousand sessions) is thousands of events.  So:

* each event is encoded **once** (twice at most: the payload for its
  audience, and the ``session_gone`` payload for the reps in ``gone``);
* events are **batched** over a short window (one ``loop.call_later``), and
  each connection's frame is the concatenation of the pre-encoded events
  it may see: an :class:`~repconsole.protocol.Events` frame, nothing
  re-encoded;
* connections that get byte-identical frames are grouped and written with
  one ``websockets.broadcast()``, which frames the message once;
* a connection whose socket does not drain (its write buffer passed
  ``slow_limit``) is closed with 4408 rather than buffered without bound:
  its console resumes later and gets what it missed.  No frame is written
  to a connection once ``slow_limit`` bytes wait unsent in its transport, so
  at most ``slow_limit`` plus one frame ever wait there.  The close frame
  goes out behind what waits, and the connection gets ``linger`` seconds to
  read it (:func:`close_slow`): a console that reads at all sees 4408, never
  a connection reset; one that reads nothing is then dropped.  ``on_drop``
  is told at once, so the rep's presence does not wait for the socket.

A bounded ring of recent events (by age and count) serves resumes: a
console that reconnects with its last ``seq`` gets exactly the missed
events it may see, in order.  The ring is refilled from the store's event
log at boot, so a resume works across a server restart too.

Authorization lives in one place: :func:`repconsole.core.feed.routes`, the
routing filter the simulator's feeds use too.  An event reaches a rep only
if the rep is in its ``audience`` (the engine's visibility rules) or, as
``session_gone``, in its ``gone``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast

from repconsole.core.engine import Event
from repconsole.core.feed import routes
from repconsole.protocol import CloseCode, encode, events_frame
from repconsole.server.store import LoggedEvent

__all__ = ["Fanout", "RepLink", "close_slow", "encode_event"]

log = logging.getLogger(__name__)

BATCH_WINDOW = 0.010
SLOW_LIMIT = 1024 * 1024
RING_LIMIT = 50_000
# How long a connection closed as too slow has to read what waited and the close frame.
LINGER = 10.0


async def close_slow(ws: ServerConnection, reason: str, linger: float = LINGER) -> None:
    """Close ``ws`` with 4408 (too slow), and drop it if it has not read the close frame within ``linger`` s.

    websockets' own close() would wait for its write buffer to drain first, for
    ever, since the peer does not read; and its ping timeout fails a connection
    with 1011 and a reset (1006 at the peer).  Here the close frame is queued
    behind what waits, so a peer that reads at all gets 4408.
    """
    try:
        async with asyncio.timeout(linger):
            await ws.close(CloseCode.TOO_SLOW, reason)
    except TimeoutError:
        log.info("dropping %s: it read nothing for %g s after 4408", ws.remote_address, linger)
        ws.transport.abort()


def encode_event(event: Event) -> LoggedEvent:
    """``event`` encoded once for its audience (and once for the reps who lost sight of its session)."""
    item, *gone = (encode(route.event) for route in routes(event))
    return LoggedEvent(event.seq, event.at, event.audience, event.gone, item, gone[0] if gone else None)


class RepLink:
    """One console connection as the fan-out sees it.

    Attributes:
        prev: the seq of the last event written to this connection (or of
            its snapshot, or the ``last_seq`` it resumed from): the ``prev``
            of its next frame.
        ready: False while its snapshot or replay is still being sent;
            events meanwhile wait in ``backlog`` so they follow it in order.
    """

    __slots__ = ("backlog", "backlog_bytes", "detached", "dropped", "login", "prev", "ready", "rep", "ws")

    def __init__(self, ws: ServerConnection, rep: str, login: Any, prev: int) -> None:
        self.ws = ws
        self.rep = rep
        self.login = login
        self.prev = prev
        self.ready = False
        self.backlog: list[tuple[int, bytes]] = []
        self.backlog_bytes = 0
        self.dropped = False
        self.detached = False  # the server is done with it (its rep's presence no longer counts it)

    def __repr__(self) -> str:
        return f"RepLink({self.rep!r}, prev={self.prev}, ready={self.ready})"


class Fanout:
    """Batches, projects and writes events; keeps the ring for resumes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        seq: int,
        resume_window: float,
        window: float = BATCH_WINDOW,
        ring_limit: int = RING_LIMIT,
        slow_limit: int = SLOW_LIMIT,
        linger: float = LINGER,
        clock: Callable[[], float] = time.time,
        on_drop: Callable[[RepLink], None] | None = None,
    ) -> None:
        self._loop = loop
        self.window = window
        self.resume_window = resume_window
        self.ring_limit = ring_limit
        self.slow_limit = slow_limit
        self.linger = linger
        # Told of a link dropped as too slow, at once (its socket closes up to `linger` later).
        self.on_drop = on_drop
        self._clock = clock
        self.seq = seq  # the last event published
        self._links: dict[str, set[RepLink]] = {}
        self._pending: list[LoggedEvent] = []
        self._handle: asyncio.TimerHandle | None = None
        self._ring: list[LoggedEvent] = []
        self._start = 0  # ring[_start:] is live; the front is compacted now and then
        # Every event with seq > floor is in the ring: a resume from
        # last_seq >= floor can be served exactly.
        self.floor = seq
        self.frames_sent = 0
        self.dropped_slow = 0
        # Told, per batch written, the seconds since its first event was published (metrics).
        self.on_delivery: Callable[[float], None] | None = None
        self._since = 0.0

    # ---------------------------------------------------------- the ring

    def restore(self, logged: Iterable[LoggedEvent]) -> None:
        """Refill the ring from the store's log at boot (events up to ``seq``)."""
        events = [e for e in logged if e.seq <= self.seq]
        if events and events[-1].seq == self.seq:
            self._ring = events
            self._start = 0
            self.floor = events[0].seq - 1
        self.prune()

    def prune(self) -> int:
        """Drop events older than the resume window or beyond the ring's size.  Returns the floor."""
        ring, start = self._ring, self._start
        cutoff = self._clock() - self.resume_window
        excess = len(ring) - start - self.ring_limit
        while start < len(ring) and (excess > 0 or ring[start].at < cutoff):
            self.floor = ring[start].seq
            start += 1
            excess -= 1
        # The events before _start are out of the ring but still in the list: dropped
        # every 4,096, so that the list never holds more than that beyond the ring's
        # bound (waiting for half the list, it held up to twice the 50,000 events).
        if start >= 4096:
            del ring[:start]
            start = 0
        self._start = start
        return self.floor

    def replay(self, rep: str, last_seq: int) -> tuple[list[bytes], int] | None:
        """The encoded events after ``last_seq`` that ``rep`` may see, and the last seq.

        None if the ring does not hold every event after ``last_seq`` (too
        old, or a ``last_seq`` this server never handed out).  The window is
        enforced now, to the instant, not at the next housekeeping: an event
        older than ``resume_window`` seconds is never replayed.
        """
        self.prune()
        if last_seq < self.floor or last_seq > self.seq:
            return None
        ring = self._ring
        i = bisect.bisect_right(ring, last_seq, lo=self._start, key=lambda e: e.seq)
        items, last = [], last_seq
        for e in ring[i:]:
            if rep in e.audience:
                items.append(e.item)
            elif rep in e.gone and e.gone_item is not None:
                items.append(e.gone_item)
            else:
                continue
            last = e.seq
        return items, last

    # ----------------------------------------------------------- links

    def attach(self, link: RepLink) -> None:
        self._links.setdefault(link.rep, set()).add(link)

    def detach(self, link: RepLink) -> None:
        links = self._links.get(link.rep)
        if links is not None:
            links.discard(link)
            if not links:
                del self._links[link.rep]

    def links(self) -> Iterable[RepLink]:
        for links in self._links.values():
            yield from links

    def has_links(self, rep: str) -> bool:
        return rep in self._links

    def connected_reps(self) -> int:
        return len(self._links)

    def ready(self, link: RepLink) -> None:
        """The link's snapshot or replay is written: send what waited, then go live."""
        if link.dropped:
            return
        link.ready = True
        if link.backlog:
            items, link.backlog, link.backlog_bytes = link.backlog, [], 0
            self._write([link], events_frame(link.prev, [item for _, item in items]))
            link.prev = items[-1][0]

    # --------------------------------------------------------- publish

    def publish(self, logged: Sequence[LoggedEvent]) -> None:
        """Committed events: into the ring, and out within the batch window."""
        if not logged:
            return
        self._ring.extend(logged)
        self.seq = logged[-1].seq
        if not self._pending:
            self._since = self._loop.time()
        self._pending.extend(logged)
        if self._handle is None:
            # The batch window is on the loop's own clock, not the server's
            # (repconsole.server.timers): it paces frames and decides nothing,
            # and on a virtual clock no event would leave until a test moved time.
            self._handle = self._loop.call_later(self.window, self.flush)

    def flush(self) -> None:
        """Write every pending event now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        batch, self._pending = self._pending, []
        if not batch or not self._links:
            return
        connected = self._links
        per_rep: dict[str, list[tuple[int, bytes]]] = {}
        for e in batch:
            for reps, item in ((e.audience, e.item), (e.gone, e.gone_item)):
                if not reps or item is None:
                    continue
                # Walk whichever is smaller: the event's audience or the reps online.
                walk, other = (reps, connected) if len(reps) <= len(connected) else (connected, reps)
                for rep in walk:
                    if rep in other:
                        per_rep.setdefault(rep, []).append((e.seq, item))
        groups: dict[tuple[int, bytes], list[RepLink]] = {}
        for rep, items in per_rep.items():
            # In seq order already: the batch is, and a rep is in the
            # audience or in gone of an event, never both.
            body = b",".join(item for _, item in items)
            last = items[-1][0]
            for link in list(connected[rep]):
                if not link.ready:
                    link.backlog.extend(items)
                    link.backlog_bytes += len(body)
                    if link.backlog_bytes > self.slow_limit:
                        self._drop(link)
                    continue
                groups.setdefault((link.prev, body), []).append(link)
                link.prev = last
        for (prev, body), links in groups.items():
            self._write(links, events_frame(prev, [body]))
        if groups and self.on_delivery is not None:
            self.on_delivery(self._loop.time() - self._since)

    def _write(self, links: list[RepLink], frame: bytes) -> None:
        live = []
        for link in links:
            transport = link.ws.transport
            # What is still unsent from earlier frames: a console that does
            # not read would make this grow until the server runs out of memory.
            if transport is not None and transport.get_write_buffer_size() > self.slow_limit:
                self._drop(link)
            else:
                live.append(link.ws)
        if live:
            broadcast(live, frame, text=True)
            self.frames_sent += 1

    def _drop(self, link: RepLink) -> None:
        log.info("closing a slow connection of %s (4408)", link.rep)
        link.dropped = True
        self.dropped_slow += 1
        self.detach(link)
        self._loop.create_task(close_slow(link.ws, "too slow: resume", self.linger))
        if self.on_drop is not None:
            self.on_drop(link)
