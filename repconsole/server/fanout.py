"""Fan-out: every committed engine event to every console that may see it.

Cost is what matters here: one engine event may go to hundreds of consoles,
and a burst (a rule moving a thousand sessions) is thousands of events.  So:

* each event is encoded **once** (twice at most: the payload for its
  audience, and the ``session_gone`` payload for the reps in ``gone``);
* events are **batched** per tick (one turn of the event loop: what was
  committed while handling everything that was ready at once), and the
  work of a tick is per **audience**, not per event or per
  connection: the tick's events are grouped by audience (the engine shares
  one set per audience: a rep alone, a team's members, everyone), each
  audience's members are walked once, reps that are in the same audiences
  get the same events, whose body (the pre-encoded events, joined) is made
  once for all of them; a connection's frame is that body spliced between
  a header carrying its own ``prev`` and the closing bracket: an
  :class:`~repconsole.protocol.Events` frame, nothing re-encoded;
* connections that get byte-identical frames (same events, same ``prev``)
  are written with one ``websockets.broadcast()``, never a loop of awaited
  sends;
* presence events alone (``rep``: a sign-in, a status; not a rep going
  offline) wait up to ``lazy_window`` (250 ms) for a tick, so that a stream of
  sign-ins costs each console a few frames a second, not one per sign-in;
  any other event brings the tick back to the next turn;
* a connection that starts (snapshot or resume) in the middle of a tick
  has what it was already served (``RepLink.served``) left out of the
  tick's frame, so a sign-in never forces the tick out early: a storm of
  resumes shares ticks like any other traffic;
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

Cost, measured: :attr:`Fanout.delivery_cpu` is the event loop thread's CPU
(``time.thread_time()``) spent delivering events: every tick's
:meth:`Fanout.flush` (grouping, framing, ``prev``, the ``broadcast()``
writes) and a connection's backlog written when it goes live
(:meth:`Fanout.ready`); not the replay or snapshot of a connection that
starts, nor the encoding of each event at commit (shared with the store's
log).  :attr:`Fanout.events_delivered` counts the events written, once per
connection that got them.  Both are ``/metrics`` counters.

Versions: a console of protocol version 2 never gets an event kind of
version 3 (``offer``, ``offer_ended``, ``estimate``: :func:`newer_kind`),
which it could not decode; it is left out of that console's frames and
replays alone (the ``prev`` of its next frame is the last event it *was*
sent, as always).
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
from repconsole.protocol import PROTOCOL_VERSION, CloseCode, EventKind, encode, events_frame
from repconsole.server.store import LoggedEvent

__all__ = ["OFFERS_VERSION", "Fanout", "RepLink", "close_slow", "encode_event", "newer_kind", "visible_to"]

log = logging.getLogger(__name__)

# A tick is one turn of the event loop: what the server committed while handling
# everything that was ready at once goes out together, at the start of the next
# turn.  Busy, a turn holds many steps and its frames carry many events; quiet,
# an event waits for nothing.  (A fixed 10 ms window added 5 ms to the median
# delivery and 10 to the worst, for no fewer frames: a tick's events mostly go
# to different audiences.)
BATCH_WINDOW = 0.0
# Up to this many audiences in a tick are checked for overlap (pairwise, in C); more
# (a burst) are grouped per rep (Fanout._by_mask).
DISJOINT_CHECK = 4
# How long presence events alone may wait for a tick (see Fanout.publish).
LAZY_WINDOW = 0.250
SLOW_LIMIT = 1024 * 1024
RING_LIMIT = 50_000
# How long a connection closed as too slow has to read what waited and the close frame.
LINGER = 10.0
# The protocol version that brought auto-assignment's events (issue 14); an
# encoded event starts with its tag (msgspec writes the tag field first).
OFFERS_VERSION = 3
_NEWER_KINDS = tuple(f'{{"kind":"{k.value}",'.encode() for k in (EventKind.OFFER, EventKind.OFFER_ENDED, EventKind.ESTIMATE))


def newer_kind(item: bytes) -> bool:
    """Whether an encoded event is of a kind a version 2 console cannot decode."""
    return item.startswith(_NEWER_KINDS)


def visible_to(protocol: int, items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """``items`` (seq, encoded event) without those a console of ``protocol`` cannot decode."""
    if protocol >= OFFERS_VERSION:
        return items
    return [(seq, item) for seq, item in items if not newer_kind(item)]


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


def _disjoint(audiences: list[frozenset[str]]) -> bool:
    """Whether no rep is in two of ``audiences``."""
    return all(a.isdisjoint(b) for i, a in enumerate(audiences) for b in audiences[i + 1 :])


class RepLink:
    """One console connection as the fan-out sees it.

    Attributes:
        prev: the seq of the last event written to this connection (or of
            its snapshot, or the ``last_seq`` it resumed from): the ``prev``
            of its next frame.
        served: every event up to this seq reached the connection through
            its snapshot or replay (which may cover events still waiting for
            the tick's frame): those are left out of its frames.
        ready: False while its snapshot or replay is still being sent;
            events meanwhile wait in ``backlog`` so they follow it in order.
    """

    __slots__ = ("backlog", "backlog_bytes", "detached", "dropped", "login", "prev", "protocol", "ready", "rep", "served", "ws")

    def __init__(
        self, ws: ServerConnection, rep: str, login: Any, prev: int, served: int | None = None, protocol: int = PROTOCOL_VERSION
    ) -> None:
        self.ws = ws
        self.protocol = protocol  # the version the console speaks: see newer_kind
        self.rep = rep
        self.login = login
        self.prev = prev
        self.served = prev if served is None else served
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
        lazy_window: float = LAZY_WINDOW,
        ring_limit: int = RING_LIMIT,
        slow_limit: int = SLOW_LIMIT,
        linger: float = LINGER,
        clock: Callable[[], float] = time.time,
        on_drop: Callable[[RepLink], None] | None = None,
    ) -> None:
        self._loop = loop
        self.window = window
        self.lazy_window = lazy_window
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
        self._handle: asyncio.Handle | None = None
        self._due = 0.0  # when the pending tick goes out (the loop's time)
        self._ring: list[LoggedEvent] = []
        self._start = 0  # ring[_start:] is live; the front is compacted now and then
        # Every event with seq > floor is in the ring: a resume from
        # last_seq >= floor can be served exactly.
        self.floor = seq
        self.frames_sent = 0
        self.dropped_slow = 0
        # The loop thread's CPU seconds spent delivering events (flush, and backlogs at ready),
        # and the events written, counted once per connection (/metrics).
        self.delivery_cpu = 0.0
        self.events_delivered = 0
        # Told, per batch written, the seconds since its first event was published (metrics;
        # a tick of lazy events alone is not told: it waited on purpose).
        self.on_delivery: Callable[[float], None] | None = None
        self._since = 0.0
        self._urgent = False  # the pending tick holds an event that is not lazy

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
        """The encoded events after ``last_seq`` that ``rep`` may see, and the last seq (see :meth:`replay_items`)."""
        found = self.replay_items(rep, last_seq)
        if found is None:
            return None
        return [item for _, item in found], found[-1][0] if found else last_seq

    def replay_items(self, rep: str, last_seq: int) -> list[tuple[int, bytes]] | None:
        """The events after ``last_seq`` that ``rep`` may see, as (seq, encoded event), in order.

        None if the ring does not hold every event after ``last_seq`` (too
        old, or a ``last_seq`` this server never handed out).  The window is
        enforced now, to the instant, not at the next housekeeping: an event
        older than ``resume_window`` seconds is never replayed.  References
        only, nothing encoded: a few milliseconds for a full ring; the server
        writes them in parts (:func:`repconsole.server.snapshots.send_replay`).
        """
        self.prune()
        if last_seq < self.floor or last_seq > self.seq:
            return None
        ring = self._ring
        i = bisect.bisect_right(ring, last_seq, lo=self._start, key=lambda e: e.seq)
        items: list[tuple[int, bytes]] = []
        for e in ring[i:]:
            if rep in e.audience:
                items.append((e.seq, e.item))
            elif rep in e.gone and e.gone_item is not None:
                items.append((e.seq, e.gone_item))
        return items

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

    def links_of(self, rep: str) -> Iterable[RepLink]:
        """The connections of ``rep`` (none: offline)."""
        return self._links.get(rep, ())

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
            start = time.thread_time()
            items, link.backlog, link.backlog_bytes = link.backlog, [], 0
            self._send(link, items, b",".join([item for _, item in items]))
            self.delivery_cpu += time.thread_time() - start

    # --------------------------------------------------------- publish

    def publish(self, logged: Sequence[LoggedEvent], *, lazy: bool = False) -> None:
        """Committed events: into the ring, and out at the next tick (``window`` later: 0, the next turn of the loop).

        ``lazy`` events (presence: a rep who signed in or changed status) may
        wait ``lazy_window`` for company: a tick of them alone goes out that
        late, and any other event brings the tick back to ``window``.  Every
        sign-in is such an event for every console; 2,000 consoles signing in
        one after another would otherwise each cost a frame to all of them."""
        if not logged:
            return
        self._ring.extend(logged)
        self.seq = logged[-1].seq
        self._pending.extend(logged)
        now = self._loop.time()
        if not lazy and not self._urgent:
            self._urgent = True
            self._since = now
        # The batch window is on the loop's own clock, not the server's
        # (repconsole.server.timers): it paces frames and decides nothing,
        # and on a virtual clock no event would leave until a test moved time.
        due = now + (self.lazy_window if lazy else self.window)
        if self._handle is None:
            self._schedule(due, now)
        elif self._due > due:
            self._handle.cancel()
            self._schedule(due, now)

    def _schedule(self, due: float, now: float) -> None:
        # The next turn of the loop is call_soon's: a timer due now would wait for the
        # same turn, but through the loop's heap of timers (a console's keepalive each).
        self._due = due
        self._handle = self._loop.call_soon(self.flush) if due <= now else self._loop.call_at(due, self.flush)

    def flush(self) -> None:
        """Write every pending event now: one tick's frames (its CPU counted in :attr:`delivery_cpu`)."""
        start = time.thread_time()
        wrote, urgent = self._flush()
        self.delivery_cpu += time.thread_time() - start
        if wrote and urgent and self.on_delivery is not None:
            self.on_delivery(self._loop.time() - self._since)

    def _flush(self) -> tuple[bool, bool]:
        """The tick: whether a live connection was written to, and whether the tick held an urgent event."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        batch, self._pending = self._pending, []
        urgent, self._urgent = self._urgent, False
        if not batch or not self._links:
            return False, urgent
        connected = self._links
        # The tick's events by audience, in seq order within each.  The engine
        # hands out one shared set per audience, so a tick has few of them
        # however many events it holds.  A rep is in an event's audience or in
        # its gone, never both.
        audiences: dict[frozenset[str], list[tuple[int, bytes]]] = {}
        for e in batch:
            if e.audience:
                audiences.setdefault(e.audience, []).append((e.seq, e.item))
            if e.gone and e.gone_item is not None:
                audiences.setdefault(e.gone, []).append((e.seq, e.gone_item))
        # Which reps get which events.  Mostly a tick's audiences do not overlap (an
        # event's audience and its gone never do; a tick mostly holds one or two
        # events): then each audience's connected reps get its events, found with
        # one set intersection (in C, walking the smaller side).  Otherwise, which
        # audiences each connected rep is in (a bit each), and reps in the same
        # audiences get the same events.
        keys = list(audiences)
        groups: list[tuple[list[tuple[int, bytes]], Iterable[str]]]
        if len(keys) == 1 or (len(keys) <= DISJOINT_CHECK and _disjoint(keys)):
            live = connected.keys()
            groups = [(audiences[audience], live & audience) for audience in keys]
        else:
            groups = self._by_mask(audiences, connected)
        wrote = False
        for items, reps in groups:
            wrote |= self._deliver(items, reps, connected)
        return wrote, urgent

    @staticmethod
    def _by_mask(
        audiences: dict[frozenset[str], list[tuple[int, bytes]]], connected: dict[str, set[RepLink]]
    ) -> list[tuple[list[tuple[int, bytes]], Iterable[str]]]:
        """Overlapping audiences: the connected reps grouped by the audiences they are in, with
        their events in seq order.  Every audience walked once, or the reps online if they are fewer."""
        parts = list(audiences.values())
        masks: dict[str, int] = {}
        get = masks.get
        for bit, audience in enumerate(audiences):
            flag = 1 << bit
            walk, other = (audience, connected) if len(audience) <= len(connected) else (connected, audience)
            for rep in walk:
                if rep in other:
                    masks[rep] = get(rep, 0) | flag
        by_mask: dict[int, list[str]] = {}
        for rep, mask in masks.items():
            by_mask.setdefault(mask, []).append(rep)
        groups: list[tuple[list[tuple[int, bytes]], Iterable[str]]] = []
        for mask, reps in by_mask.items():
            if mask & (mask - 1) == 0:
                items = parts[mask.bit_length() - 1]
            else:
                items = sorted(item for bit, part in enumerate(parts) if mask >> bit & 1 for item in part)
            groups.append((items, reps))
        return groups

    def _deliver(self, items: list[tuple[int, bytes]], reps: Iterable[str], connected: dict[str, set[RepLink]]) -> bool:
        """``items`` (seq order) to every connection of ``reps``; True if a live connection was written to."""
        body = b",".join([item for _, item in items])
        first, last = items[0][0], items[-1][0]
        newer = any(newer_kind(item) for _, item in items)
        by_prev: dict[int, list[RepLink]] = {}
        wrote = False
        for rep in reps:
            for link in tuple(connected.get(rep, ())):  # a copy: a link dropped as too slow leaves the set
                if link.served >= first or (newer and link.protocol < OFFERS_VERSION):
                    # It started during this tick (only what it was not served), or it is
                    # a version 2 console (nothing it cannot decode): a frame of its own.
                    own = [(seq, item) for seq, item in visible_to(link.protocol, items) if seq > link.served]
                    if own:
                        wrote |= link.ready
                        self._send(link, own, b",".join([item for _, item in own]))
                elif not link.ready:
                    self._send(link, items, body)
                else:
                    same = by_prev.get(link.prev)
                    if same is None:
                        by_prev[link.prev] = [link]
                    else:
                        same.append(link)
                    link.prev = last
        for prev, links in by_prev.items():
            wrote = True
            self._write(links, events_frame(prev, [body]), len(items))
        return wrote

    def _send(self, link: RepLink, items: list[tuple[int, bytes]], body: bytes) -> None:
        """``items`` (joined: ``body``) to one link: its own frame, or its backlog while it is not ready."""
        if not link.ready:
            link.backlog.extend(items)
            link.backlog_bytes += len(body)
            if link.backlog_bytes > self.slow_limit:
                self._drop(link)
            return
        self._write([link], events_frame(link.prev, [body]), len(items))
        link.prev = items[-1][0]

    def _write(self, links: list[RepLink], frame: bytes, events: int) -> None:
        """``frame`` (of ``events`` events) to every link whose socket drains; the others are dropped."""
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
            self.events_delivered += events * len(live)

    def _drop(self, link: RepLink) -> None:
        log.info("closing a slow connection of %s (4408)", link.rep)
        link.dropped = True
        self.dropped_slow += 1
        self.detach(link)
        self._loop.create_task(close_slow(link.ws, "too slow: resume", self.linger))
        if self.on_drop is not None:
            self.on_drop(link)
