"""A console's snapshot, sent without holding up the server.

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
"""

from __future__ import annotations

import asyncio

import msgspec
from websockets.asyncio.server import ServerConnection

from repconsole.collector import collector_paused
from repconsole.core.engine import SnapshotCursor
from repconsole.protocol import Snapshot, SnapshotPart, encode

__all__ = ["PART_ROWS", "send_snapshot"]

# Sessions per frame: a few milliseconds of building and encoding, ~0.4 MB.
PART_ROWS = 1000


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
