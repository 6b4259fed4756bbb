"""The runtime's side of the cluster: lead the organisation and log every step.

:class:`LeaderLog` is what :class:`~repconsole.server.runtime.Runtime` holds
when the configuration has ``[cluster] redis_url``: at start it takes the
organisation's lease (or refuses to start: one writer per organisation) and
begins the log at the process's own stored state; every step that emitted
events is appended (:meth:`LeaderLog.append`, called by ``Runtime._commit``
after SQLite and before anything is published); renewals run every third of
the lease's TTL on the event loop.  When the lease is lost, or an append is
refused or fails, ``on_lost`` runs: the server stops without confirming
anything more.  A process that does not lead follows (:mod:`.member`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from repconsole.core.engine import Event, QueueEngine
from repconsole.server.cluster.entry import encode_entry, encode_note, encode_snapshot
from repconsole.server.cluster.keys import OrgKeys, process_id
from repconsole.server.cluster.lease import Lease
from repconsole.server.cluster.log import AppendRefused, LogUnavailable, OrgLog, connect
from repconsole.server.cluster.records import Record
from repconsole.server.config import ClusterSettings
from repconsole.server.store import LoggedEvent

__all__ = ["ClusterRefused", "LeaderLog"]

log = logging.getLogger(__name__)

# How often the leader snapshots its state into Redis (at housekeeping: persist.dump of the engine on
# the loop, the side part in a thread).  Between snapshots the log is trimmed only up to the last one.
SNAPSHOT_EVERY = 60.0


class ClusterRefused(Exception):
    """This process cannot lead the organisation (another leads, or the log is ahead of its state)."""


class LeaderLog:
    """The leader's lease and log, on the runtime's event loop.

    Attributes:
        lease: the lease (its ``epoch`` is None once lost).
        log: the organisation's log.
    """

    def __init__(
        self, settings: ClusterSettings, loop: asyncio.AbstractEventLoop, on_lost: Callable[[str], None], *, owner: str | None = None
    ) -> None:
        assert settings.redis_url is not None
        self.loop = loop
        self.on_lost = on_lost
        # Renewals and appends must fail well within the lease: a third of it.
        self.client = connect(settings.redis_url, timeout=settings.lease_ttl / 3)
        keys = OrgKeys.of(settings.organisation)
        self.lease = Lease(self.client, keys, owner if owner is not None else process_id(), ttl=settings.lease_ttl, on_lost=self._lost)
        self.log = OrgLog(self.client, keys)
        self._renewal: asyncio.TimerHandle | None = None
        self._opened = False
        self.snapshot_every = SNAPSHOT_EVERY
        self._next_snapshot = loop.time() + SNAPSHOT_EVERY  # begin() writes one

    def try_lead(self) -> bool:
        """Take the lease if nobody holds it (the epoch raised).  Raises LogUnavailable if Redis cannot be asked."""
        try:
            return self.lease.try_acquire()
        except Exception as exc:
            raise LogUnavailable(f"cannot reach Redis: {exc}") from exc

    def begin(self, engine: QueueEngine, side: bytes = b"") -> None:
        """With the lease held: go on from ``engine``'s state (at or past the log's head), with it as the
        snapshot (and ``side``: :func:`.records.encode_side`), and keep renewing.  Raises ClusterRefused."""
        seq, data = encode_snapshot(engine)
        try:
            self.log.begin(self.lease, seq, data, side)
        except AppendRefused as exc:
            raise ClusterRefused(f"the log is ahead of this state (seq {seq}; {exc}): rebuild from the log first") from exc
        log.info("leading %s from seq %d under epoch %s", self.lease.keys.log, seq, self.lease.epoch)
        self._opened = True
        self._schedule()

    def append(self, engine: QueueEngine, events: Sequence[Event], logged: Sequence[LoggedEvent], records: Sequence[Record] = ()) -> None:
        """Log one step (right after SQLite, before publishing).  Raises AppendRefused or LogUnavailable."""
        self.log.append(self.lease, logged[0].seq, logged[-1].seq, encode_entry(logged, engine.changes_of(events), records))

    def note(self, records: Sequence[Record], engine: QueueEngine | None = None) -> None:
        """Log a step that emitted no events but wrote records (a login, a refusal's answer), or changed
        ``engine``'s directory (a reload: the note carries it).  Raises like append."""
        self.log.note(self.lease, encode_note(records, engine.changes_of(()) if engine is not None else None))

    def snapshot_due(self) -> bool:
        """Whether housekeeping is to write a snapshot now (every :attr:`snapshot_every` seconds)."""
        return self.loop.time() >= self._next_snapshot

    def write_snapshot(self, seq: int, data: bytes, side: bytes) -> None:
        """Store the snapshot (the engine state ``data`` at ``seq`` and its ``side`` part: :meth:`Member.snapshot
        <repconsole.server.cluster.member.Member.snapshot>` builds them).  Raises like an append."""
        self.log.write_snapshot(self.lease, seq, data, side)
        self._next_snapshot = self.loop.time() + self.snapshot_every

    def trim(self, keep_after: int) -> int:
        """Housekeeping: trim the log behind the last snapshot, keeping every event after ``keep_after``
        (the fan-out's resume window).  Returns the entries trimmed.  Raises like an append."""
        return self.log.trim(self.lease, keep_after)

    def _schedule(self) -> None:
        self._renewal = self.loop.call_later(self.lease.renew_every, self._renew)

    def _renew(self) -> None:
        self._renewal = None
        if self.lease.renew():
            self._schedule()

    def _lost(self, reason: str) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        if self._opened:  # before that, open() raises instead
            self.on_lost(reason)

    def close(self) -> None:
        """Stop renewing and give the lease up (a clean stop: another process may lead at once)."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        self.lease.release()
        self.client.close()
