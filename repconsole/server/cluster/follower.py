"""A follower: keep an engine copy and a fan-out in step with the organisation's log.

A process that does not lead reads the log from the snapshot on
(:meth:`LogFollower.from_snapshot`), then tails it (:meth:`LogFollower.run`):
each entry's changes go to its engine copy (:meth:`QueueEngine.apply_changes`)
and its logged events, the leader's bytes under the leader's seqs, to
``publish`` (the process's :meth:`Fanout.publish <repconsole.server.fanout.Fanout.publish>`),
so a console resumes on it exactly as on the leader.  A gap (the entries it
needs were trimmed, or an entry does not start right after what it has) is
:class:`~repconsole.server.cluster.log.LogGap`: the copy must start again
from the snapshot, never go on with a hole.

Records-only entries (:meth:`OrgLog.note <repconsole.server.cluster.log.OrgLog.note>`)
and the records of event entries (logins, stored answers:
:mod:`.records`) go to ``on_entry`` with the events taken, so the server
keeps its own SQLite and indexes in step (:mod:`.member`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from repconsole.core.engine import QueueEngine
from repconsole.server.cluster.entry import Entry, decode_entry, restore_snapshot
from repconsole.server.cluster.log import LogGap, OrgLog, Record
from repconsole.server.store import LoggedEvent

__all__ = ["PAGE", "LogFollower"]

PAGE = 1000  # entries a range read asks for at once (the kept log is 60,000 at 200 events/s over 5 min)


class LogFollower:
    """Applies the log after seq ``after`` to ``engine`` and hands its events to ``publish``.

    Attributes:
        after: the seq of the last event taken (the engine copy is at it).
        sub: 0, or the n of the last records-only entry taken after ``after`` (stream id ``<after>-<n>``).
        on_entry: told of each entry taken, with its events taken (none for a records-only one).
        tail_log: the log read with ``XREAD BLOCK`` (a client of its own whose
            socket timeout is longer than ``block``: a blocked read holds its connection).
    """

    def __init__(
        self, log: OrgLog, engine: QueueEngine, publish: Callable[[Sequence[LoggedEvent]], None], *, after: int, tail_log: OrgLog | None = None
    ) -> None:
        self.log = log
        self.tail_log = tail_log if tail_log is not None else log
        self.engine = engine
        self.publish = publish
        self.after = after
        self.sub = 0
        self.on_entry: Callable[[Entry, list[LoggedEvent]], None] | None = None

    @classmethod
    def from_snapshot(
        cls, log: OrgLog, engine: QueueEngine, publish: Callable[[Sequence[LoggedEvent]], None], *, tail_log: OrgLog | None = None
    ) -> LogFollower:
        """A follower whose fresh ``engine`` (its directory built) starts at the log's snapshot."""
        snapshot = log.snapshot()
        if snapshot is None:
            raise ValueError("the log has no snapshot: no leader began it yet")
        seq, data = snapshot
        restore_snapshot(engine, data)
        return cls(log, engine, publish, after=seq, tail_log=tail_log)

    def take(self, records: Sequence[Record]) -> int:
        """Apply and publish ``records`` (in log order).  Returns the events taken."""
        taken = 0
        for record in records:
            if record.position <= (self.after, self.sub):
                continue
            if record.starts > self.after + 1:
                raise LogGap(self.after, record.starts)
            entry = decode_entry(record.data)
            events = [e for e in entry.events if e.seq > self.after]
            if events:
                if events[0].seq != self.after + 1:
                    raise LogGap(self.after, events[0].seq)
                assert entry.changes is not None
                self.engine.apply_changes(entry.changes)
                self.publish(events)
                taken += len(events)
            elif entry.changes is not None and not entry.events:
                self.engine.apply_changes(entry.changes)  # a note that changed the directory (a reload)
            self.after, self.sub = record.position
            if self.on_entry is not None:
                self.on_entry(entry, events)
        return taken

    def catch_up(self) -> int:
        """Take every entry the log has now, read in pages of :data:`PAGE`.  Returns the events taken."""
        taken = 0
        while True:
            records = self.log.read(self.after, count=PAGE, sub=self.sub)
            taken += self.take(records)
            if len(records) < PAGE:
                return taken

    async def run(self, block: float = 1.0) -> None:
        """Tail the log until cancelled: each read (the catch-up's pages, then the blocking ones) in a
        worker thread, each entry taken on the loop.  A Redis error is raised (the caller retries)."""
        while True:
            records = await asyncio.to_thread(self.log.read, self.after, PAGE, self.sub)
            self.take(records)
            if len(records) < PAGE:
                break
        while True:
            records = await asyncio.to_thread(self.tail_log.tail, self.after, block, 100, self.sub)
            self.take(records)
