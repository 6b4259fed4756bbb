"""The organisation's ordered log: one Redis Stream, appended only by the leader.

Entries
    One entry per engine step that emitted events: the step's events
    ``first..last`` (contiguous engine seqs) and the state they changed
    (:mod:`repconsole.server.cluster.entry` encodes it).  The entry's stream
    id is ``<last>-0``, so "everything after seq N" is a range read from id
    ``N`` (exclusive): the console's resume-by-seq maps onto ``XRANGE`` and
    ``XREAD`` directly.  Stream ids must grow, which repeats the seq check.

Appends are fenced
    :meth:`OrgLog.append` is one Lua script that, atomically, refuses the
    write unless (a) the caller's epoch is the current epoch, (b) the
    lease key still holds the caller's ``"<owner> <epoch>"`` (an expired
    lease nobody took yet refuses too), and (c) ``first`` is the log's
    head + 1 (no seq reused, none skipped).  A refusal is
    :class:`AppendRefused`; the caller's lease steps down at once and
    nothing of the step may be confirmed.  Redis unreachable (or any
    Redis error) is :class:`LogUnavailable`: the leader steps down too,
    since it cannot know whether the write landed.

Snapshots and trimming
    The leader stores a snapshot of the engine state with its seq
    (:meth:`OrgLog.write_snapshot`, fenced like an append) and trims
    entries behind it (:meth:`OrgLog.trim`): ``XTRIM MINID`` never past the
    snapshot's seq, and never past what the caller keeps for the resume
    window.  A reader asking for entries the trim removed gets
    :class:`LogGap` (it must start from the snapshot), never a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import redis

from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.lease import Lease

__all__ = ["AppendRefused", "LogGap", "LogUnavailable", "OrgLog", "Record", "connect"]

Refusal = Literal["epoch", "lease", "seq"]

# The fencing every write script starts with: the caller's epoch is the current one and the lease
# still holds the caller's "<owner> <epoch>" (KEYS[1] lease, KEYS[2] epoch; ARGV[1] lease value,
# ARGV[2] epoch); else the refusal and what the caller's value was checked against.
_FENCE = """
local epoch = redis.call('GET', KEYS[2])
if epoch ~= ARGV[2] then return {'epoch', epoch or '0'} end
local lease = redis.call('GET', KEYS[1])
if lease ~= ARGV[1] then return {'lease', lease or ''} end"""

# KEYS: lease, epoch, head, log.  ARGV: lease value, epoch, first, last, payload.
_APPEND = _FENCE + """
local head = tonumber(redis.call('GET', KEYS[3]) or '0')
if head + 1 ~= tonumber(ARGV[3]) then return {'seq', tostring(head)} end
redis.call('XADD', KEYS[4], ARGV[4] .. '-0', 'f', ARGV[3], 'e', ARGV[2], 'd', ARGV[5])
redis.call('SET', KEYS[3], ARGV[4])
return {'ok', ARGV[4]}
"""

# The fencing of _APPEND alone, then ARGV[3] is the snapshot's seq (<= head), ARGV[4] the data.
# KEYS: lease, epoch, head, snapshot.
_SNAPSHOT = _FENCE + """
local head = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[3]) > head then return {'seq', tostring(head)} end
redis.call('HSET', KEYS[4], 'seq', ARGV[3], 'data', ARGV[4], 'side', ARGV[5])
return {'ok', ARGV[3]}
"""

# A records-only entry (a step that emitted no events but changed what every process must know:
# a login, a stored answer): fenced like _APPEND, id "<head>-*" (Redis 7: the next "<head>-n", n >= 1),
# so it sorts after the event entry of the head and before the next one.  Field f is 0.
# KEYS: lease, epoch, head, log.  ARGV: lease value, epoch, payload.
_NOTE = _FENCE + """
local head = redis.call('GET', KEYS[3]) or '0'
local id = redis.call('XADD', KEYS[4], head .. '-*', 'f', '0', 'e', ARGV[2], 'd', ARGV[3])
return {'ok', id}
"""

# A leader starting on its own stored state at seq ARGV[3] (>= the head): the log goes on from there,
# with the snapshot of that state (a reader before it finds a LogGap and starts from the snapshot).
# KEYS: lease, epoch, head, snapshot.
_BEGIN = _FENCE + """
local head = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[3]) < head then return {'seq', tostring(head)} end
redis.call('HSET', KEYS[4], 'seq', ARGV[3], 'data', ARGV[4], 'side', ARGV[5])
redis.call('SET', KEYS[3], ARGV[3])
return {'ok', ARGV[3]}
"""

# KEYS: lease, epoch, snapshot, log.  ARGV: lease value, epoch, keep_after.
# With upto = min(keep_after, snapshot seq): entries before id "<upto>-1" go, i.e. every event entry
# whose last seq is <= upto and the records-only entries written at heads below upto.  The
# records-only entries at head upto itself ("<upto>-n", n >= 1) stay: those written after the
# snapshot are not in its side part, and replaying those written before it is harmless (a reader
# writes records with INSERT OR REPLACE, in log order).
_TRIM = _FENCE + """
local snap = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local upto = math.min(tonumber(ARGV[3]), snap)
if upto < 1 then return {'ok', '0'} end
return {'ok', tostring(redis.call('XTRIM', KEYS[4], 'MINID', upto .. '-1'))}
"""


class AppendRefused(Exception):
    """The log refused a fenced write: this process does not lead (any more).

    Attributes:
        reason: "epoch" (a newer leader raised it), "lease" (the lease expired
            or is someone else's) or "seq" (``first`` is not the log's head + 1).
        current: the current epoch, lease value or head, as Redis has it.
    """

    def __init__(self, reason: Refusal, current: str) -> None:
        super().__init__(f"append refused ({reason}): Redis has {current!r}")
        self.reason: Refusal = reason
        self.current = current


class LogUnavailable(Exception):
    """Redis could not be asked (down, unreachable, out of memory): nothing may be confirmed."""


class LogGap(Exception):
    """Entries a reader needs were trimmed: it must start over from the snapshot."""

    def __init__(self, after: int, first: int) -> None:
        super().__init__(f"the log has no entries from seq {after + 1} (its first kept seq is {first})")
        self.after = after
        self.first = first


@dataclass(frozen=True, slots=True)
class Record:
    """One entry as read back: events ``first..last`` appended under ``epoch``; ``data`` is the encoded entry.

    A records-only entry (:meth:`OrgLog.note`) has ``first`` 0, ``last`` the head it was
    written at and ``sub`` >= 1 (its stream id is ``<last>-<sub>``)."""

    first: int
    last: int
    epoch: int
    data: bytes
    sub: int = 0

    @property
    def note(self) -> bool:
        return self.first == 0

    @property
    def position(self) -> tuple[int, int]:
        """Where a reader is once it took this entry: (seq, sub), its stream id."""
        return (self.last, self.sub)

    @property
    def starts(self) -> int:
        """The first seq a reader must have reached before it (the head + 1 it was written after)."""
        return self.last + 1 if self.note else self.first


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _records(raw: Any) -> list[Record]:
    out = []
    for entry_id, fields in raw or ():
        last, sub = _text(entry_id).split("-", 1)
        out.append(Record(int(fields[b"f"]), int(last), int(fields[b"e"]), bytes(fields[b"d"]), int(sub)))
    return out


class OrgLog:
    """The log of one organisation on one Redis (a ``redis.Redis`` made with ``decode_responses=False``)."""

    def __init__(self, client: redis.Redis, keys: OrgKeys) -> None:
        self.client = client
        self.keys = keys
        self._append = client.register_script(_APPEND)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._trim = client.register_script(_TRIM)
        self._begin = client.register_script(_BEGIN)
        self._note = client.register_script(_NOTE)

    # ------------------------------------------------------------ writes

    def _fenced(self, lease: Lease, script: Any, keys: list[str], args: list[Any]) -> str:
        """Run a fenced script as ``lease``'s holder; on refusal or failure step down and raise."""
        if lease.epoch is None:
            raise AppendRefused("lease", "this process does not lead")
        try:
            verdict, current = script(keys=keys, args=[lease.value, lease.epoch, *args])
        except redis.RedisError as exc:
            lease.step_down(f"the log cannot be written: {exc}")
            raise LogUnavailable(str(exc)) from exc
        verdict, current = _text(verdict), _text(current)
        if verdict != "ok":
            refused = AppendRefused(verdict, current)  # type: ignore[arg-type]  # the script returns only the three
            lease.step_down(str(refused), release=True)
            raise refused
        return current

    def append(self, lease: Lease, first: int, last: int, data: bytes) -> None:
        """Append the entry for events ``first..last`` as ``lease``'s holder.

        Returns once Redis has it (in its AOF as ``appendfsync`` says:
        docs/architecture.md).  Raises :class:`AppendRefused` or
        :class:`LogUnavailable` (the lease has stepped down): nothing of the
        step may be confirmed.
        """
        if not 0 < first <= last:
            raise ValueError(f"an entry covers seqs first..last with 0 < first <= last, not {first}..{last}")
        keys = self.keys
        self._fenced(lease, self._append, [keys.lease, keys.epoch, keys.head, keys.log], [first, last, data])

    def note(self, lease: Lease, data: bytes) -> tuple[int, int]:
        """Append a records-only entry (no events) after the head; fenced like :meth:`append`.
        Returns its position (head, n)."""
        keys = self.keys
        last, sub = self._fenced(lease, self._note, [keys.lease, keys.epoch, keys.head, keys.log], [data]).split("-", 1)
        return int(last), int(sub)

    def write_snapshot(self, lease: Lease, seq: int, data: bytes, side: bytes = b"") -> None:
        """Store ``data``, the engine state at ``seq`` (<= the head), as the snapshot, and ``side``, what
        is not engine state (logins, stored answers: :mod:`.records`); fenced like :meth:`append`."""
        keys = self.keys
        self._fenced(lease, self._snapshot, [keys.lease, keys.epoch, keys.head, keys.snapshot], [seq, data, side])

    def snapshot_side(self) -> bytes:
        """The snapshot's side part (b"": none)."""
        side = self.client.hget(self.keys.snapshot, "side")
        return side if isinstance(side, bytes) else b""

    def begin(self, lease: Lease, seq: int, data: bytes, side: bytes = b"") -> None:
        """Go on from ``data``, the leader's own state at ``seq``: the head becomes ``seq`` and
        ``data`` the snapshot.  Refused (``seq``) if the log is already past ``seq``: then the
        log, not this state, is the truth (a rebuild from it is needed).  Fenced like :meth:`append`."""
        keys = self.keys
        self._fenced(lease, self._begin, [keys.lease, keys.epoch, keys.head, keys.snapshot], [seq, data, side])

    def trim(self, lease: Lease, keep_after: int) -> int:
        """Drop entries whose events are all at or below both ``keep_after`` and the snapshot's seq
        (``upto``), and the records-only entries written at heads below ``upto``; those written at
        head ``upto`` stay (the snapshot's side part may not hold them).

        ``keep_after``: the caller's resume window starts after it.  Returns the entries dropped.
        """
        keys = self.keys
        return int(self._fenced(lease, self._trim, [keys.lease, keys.epoch, keys.snapshot, keys.log], [keep_after]))

    # ------------------------------------------------------------- reads

    def head(self) -> int:
        """The seq of the last event in the log (0: none)."""
        return int(self.client.get(self.keys.head) or 0)

    def epoch(self) -> int:
        """The current epoch (0: nobody ever led)."""
        return int(self.client.get(self.keys.epoch) or 0)

    def snapshot(self) -> tuple[int, bytes] | None:
        """The latest snapshot: (its seq, its data); None if none was written."""
        seq, data = self.client.hmget(self.keys.snapshot, ["seq", "data"])
        return None if seq is None or not isinstance(data, bytes) else (int(seq), data)

    def read(self, after: int, count: int | None = None, sub: int = 0) -> list[Record]:
        """Entries with events after seq ``after``, in order (at most ``count``).

        The first may start at or before ``after`` (an entry is a whole step):
        the reader skips the events it has.  Raises :class:`LogGap` if the
        events right after ``after`` were trimmed.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.xrange(self.keys.log, f"({after}-{sub}" if after > 0 or sub > 0 else "-", "+", count=count)
        pipe.get(self.keys.head)
        raw, head = pipe.execute()
        records = _records(raw)
        self._check(after, records, int(head or 0))
        return records

    def tail(self, after: int, block: float, count: int = 100, sub: int = 0) -> list[Record]:
        """Like :meth:`read`, but waits up to ``block`` seconds for an entry when there is none yet."""
        # RESP2 (the client's default): [[stream, [(id, fields), ...]]], or None after the block.
        raw: Any = self.client.xread({self.keys.log: f"{after}-{sub}"}, count=count, block=max(1, round(block * 1000)))
        records = _records(raw[0][1]) if raw else []
        if records and records[0].starts > after + 1:
            raise LogGap(after, records[0].starts)
        return records

    @staticmethod
    def _check(after: int, records: list[Record], head: int) -> None:
        if records and records[0].starts > after + 1:
            raise LogGap(after, records[0].starts)
        if not records and head > after:
            raise LogGap(after, head + 1)


def connect(url: str, *, timeout: float = 1.0) -> redis.Redis:
    """A client for the cluster's Redis: bytes replies, and a socket ``timeout`` so that a
    Redis that stopped answering (a network cut) fails an append within ``timeout``
    seconds instead of holding the leader's step forever."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False)
