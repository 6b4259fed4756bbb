"""A console's snapshot, or its replay after a resume, sent without holding up the server.

A console that signs in (or resumes too late for a replay) gets everything
its rep may see.  At 100,000 waiting customers that is 100,000 session
views: built and encoded in one go it held the event loop for 1.7 s, and
every other console waited.  So it goes out in parts (``snapshot`` then
``snapshot_part`` frames, docs/protocol.md): the engine's
:class:`~repconsole.core.engine.SnapshotCursor` fixes what the snapshot holds,
exactly as of one ``seq``, and builds :data:`PART_ROWS` sessions' views at a
time; each part is encoded and written, and the loop runs other work before
the next one is built.

* A part is built only once the connection has taken the one before:
  ``ws.send`` waits while more than the write limit (64 KiB) waits unsent.
  So the server holds one part and the write limit per console signing in,
  never the whole snapshot, and a console reads its snapshot at its own pace.
* The loop gets a turn between parts even when the socket takes everything
  at once.
* Events committed meanwhile wait in the connection's backlog (the fan-out
  holds them while its link is not ready) and follow the last part, in one
  events frame whose ``prev`` is the snapshot's ``seq``.  A backlog over
  ``send_buffer`` closes the connection with 4408, as for any slow console;
  so does a console that stops reading altogether (its pings go unanswered).

A resume's **replay** (:func:`send_replay`) is up to 50,000 events (the
resume ring's bound, ~35 MB encoded).  Joined into one frame and written at
once it held the loop for some 50 ms at 40,000 events; it goes out the same
way, in events frames of at most :data:`REPLAY_EVENTS` events, each with the
``prev`` of the one before, so a console sees one gap-free feed.  Which events it holds is
fixed when the console resumes (everything up to the fan-out's ``seq`` then);
events committed meanwhile wait in the link's backlog and follow the last
part, as after a snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from websockets.asyncio.server import ServerConnection

from repconsole.collector import collector_paused
from repconsole.core.engine import SnapshotCursor
from repconsole.protocol import Snapshot, SnapshotPart, encode, events_frame

__all__ = ["PART_ROWS", "REPLAY_EVENTS", "send_replay", "send_snapshot"]

# Sessions per frame: a few milliseconds of building and encoding, ~0.4 MB.
PART_ROWS = 1000
# Events per frame of a replay: ~0.7 MB of events encoded already, joined in well under a millisecond.
REPLAY_EVENTS = 1000


async def send_snapshot(ws: ServerConnection, cursor: SnapshotCursor, rows: int = PART_ROWS) -> int:
    """Send ``cursor``'s snapshot on ``ws``, ``rows`` sessions a frame; returns how many frames.  Closes the cursor."""
    try:
        parts = max(1, -(-cursor.total // rows))
        # Each part's views are short-lived: built and encoded without a collection in the middle.
        with collector_paused():
            frame = encode(Snapshot(cursor.seq, msgspec.structs.replace(cursor.head, sessions=cursor.take(rows)), parts, cursor.total))
        await ws.send(frame, text=True)
        for part in range(1, parts):
            await asyncio.sleep(0)  # the socket may have taken it all at once: let the loop run anyway
            with collector_paused():
                frame = encode(SnapshotPart(cursor.seq, part, cursor.take(rows)))
            await ws.send(frame, text=True)
        return parts
    finally:
        cursor.close()


async def send_replay(ws: ServerConnection, last_seq: int, items: Sequence[tuple[int, bytes]], events: int = REPLAY_EVENTS) -> int:
    """Send a resume's replay (``items``: (seq, encoded event), in order, from :meth:`Fanout.replay_items`)
    on ``ws``, ``events`` a frame, the first with ``prev`` = ``last_seq`` (an empty one if there is
    nothing to replay: a resumed welcome is always followed by an events frame).  Returns the
    seq of the last event sent (``last_seq`` if none): the ``prev`` of the link's next frame."""
    prev = last_seq
    for start in range(0, max(len(items), 1), events):
        if start:
            await asyncio.sleep(0)  # the socket may have taken it all at once: let the loop run anyway
        part = items[start : start + events]
        await ws.send(events_frame(prev, [item for _, item in part]), text=True)
        if part:
            prev = part[-1][0]
    return prev
