"""What one log entry carries: one engine step, for every process's fan-out and engine copy.

An entry is the leader's step as two things a follower needs:

- **the logged events** (seq, time, audience, the reps who lost sight, the
  encoded wire item and its ``session_gone`` form): exactly what
  :meth:`Store.commit <repconsole.server.store.Store.commit>` writes to the
  ``events`` table and :class:`~repconsole.server.fanout.Fanout` sends, so a
  follower publishes the leader's bytes under the leader's seqs (the same
  resume on every process) without encoding anything again;
- **the state the step changed** (:meth:`QueueEngine.changes_of`: each
  changed session without its chat, new chat and team chat lines, read
  markers, changed reps and keys, the counters), which a follower applies
  to its copy with :meth:`QueueEngine.apply_changes`, so that it serves the
  same snapshots to its consoles and could write the same SQLite rows.

Carrying state rather than the commands means a follower never re-runs
engine logic (no clock, no random draws, no routing to keep in step), and
carrying the changed objects rather than the whole state keeps an entry
the size of its step.  Encoding: msgpack (msgspec), the event items as raw
bytes inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import msgspec

from repconsole.core import persist
from repconsole.core.engine import EngineChanges, QueueEngine
from repconsole.server.cluster.records import Record
from repconsole.server.store import LoggedEvent

__all__ = ["Entry", "decode_entry", "encode_entry", "encode_note", "encode_snapshot", "restore_snapshot"]


class _Logged(msgspec.Struct, array_like=True, frozen=True):
    seq: int
    at: float
    audience: list[str]
    gone: list[str]
    item: bytes
    gone_item: bytes | None


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    events: list[_Logged]
    changes: dict[str, Any]
    records: list[Record] = []


class Entry(msgspec.Struct, frozen=True):
    """A decoded entry: the events ``first..last`` as the fan-out takes them, what the step changed,
    and the records of what else it wrote (logins, answers: :mod:`.records`).  A records-only
    entry (:meth:`OrgLog.note <repconsole.server.cluster.log.OrgLog.note>`) has no events."""

    events: list[LoggedEvent]
    changes: EngineChanges | None
    records: list[Record] = []

    @property
    def first(self) -> int:
        return self.events[0].seq

    @property
    def last(self) -> int:
        return self.events[-1].seq


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Entry)


def encode_entry(logged: Sequence[LoggedEvent], changes: EngineChanges, records: Sequence[Record] = ()) -> bytes:
    """The entry of one step that emitted ``logged`` (contiguous seqs, at least one)."""
    if not logged:
        raise ValueError("an entry is a step that emitted events")
    if any(b.seq != a.seq + 1 for a, b in pairwise(logged)):
        raise ValueError("a step's events have contiguous seqs")
    items = [_Logged(e.seq, e.at, sorted(e.audience), sorted(e.gone), e.item, e.gone_item) for e in logged]
    return _encoder.encode(_Entry(items, persist.dump_changes(changes), list(records)))


def encode_note(records: Sequence[Record], changes: EngineChanges | None = None) -> bytes:
    """A records-only entry (a step that emitted no events), with ``changes`` if the step changed the
    engine's directory (a reload that announced nothing)."""
    return _encoder.encode(_Entry([], persist.dump_changes(changes) if changes is not None else {}, list(records)))


def decode_entry(data: bytes) -> Entry:
    raw = _decoder.decode(data)
    events = [LoggedEvent(e.seq, e.at, frozenset(e.audience), frozenset(e.gone), e.item, e.gone_item) for e in raw.events]
    changes = persist.load_changes(raw.changes) if raw.changes else None
    return Entry(events, changes, raw.records)


def encode_snapshot(engine: QueueEngine) -> tuple[int, bytes]:
    """The engine's whole runtime state (persist's format, as JSON) and the seq it is at."""
    return engine.seq, msgspec.json.encode(persist.dump(engine))


def restore_snapshot(engine: QueueEngine, data: bytes) -> list[str]:
    """Load a snapshot into ``engine`` (fresh, its directory built); returns persist.load's repairs."""
    state: dict[str, Any] = msgspec.json.decode(data)
    return persist.load(engine, state)
