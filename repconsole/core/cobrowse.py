"""The co-browsing relay, sans-I/O: a customer's recorded page, from its recorder to the reps who watch.

The customer's browser records its page with rrweb (typed values masked
there) and sends batches of rrweb events, each batch the text of a JSON
array cut into :class:`~repconsole.protocol.Record` parts.  The relay

* joins a batch's parts, in order (a part out of order, a batch left
  incomplete, a batch larger than the buffer is refused, and counts as a
  lost batch);
* checks that a batch is a JSON array of rrweb events: each decodes into
  :class:`RrwebEvent`, whose ``data`` stays raw JSON (the page's content is
  never looked into, let alone kept in any other form);
* keeps, per session, the latest Meta and FullSnapshot and every batch since
  (at most :attr:`Limits.buffer_bytes`), so that a rep who starts watching
  late gets the page as it is now, then the live stream;
* lets at most :attr:`Limits.rate` bytes a second through per session (a
  token bucket of :attr:`Limits.burst` bytes, so a full snapshot of a big
  page passes at once).

Nothing is dropped silently.  When the buffer or the rate would overflow,
or a batch is lost, the stream goes ``resync``: the watchers are told, the
recorder is asked for a fresh full snapshot (:class:`Ask`, as soon as the
rate allows one), incremental events are dropped until that snapshot
comes, and the stream is ``live`` again.  An ask that goes unanswered is
repeated every :attr:`Limits.ask_retry` seconds.

Everything a stream holds is dropped when the customer stops sharing
(:meth:`Relay.stop`) or the session ends (:meth:`Relay.end`).

Sans-I/O: the relay never reads a clock of its own (two are injected: the
wall clock for the times it stamps, a monotonic one for the rate and the
retries), never sleeps and never touches a socket.  Every call returns the
:data:`Effect` s the caller must carry out; watchers pull what they have
not been sent yet (:meth:`Stream.batch_from`, :meth:`Stream.status`), so
a slow watcher costs no memory here: it skips ahead to the newest full
snapshot when the batches it missed are gone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
from msgspec import UNSET

from repconsole.protocol.cobrowse import CHUNK_CHARS, CobrowseChunk, CobrowseState, CobrowseStatus, Record, RrwebType
from repconsole.protocol.messages import encode

__all__ = [
    "ASK_RETRY",
    "BUFFER_BYTES",
    "RATE_BYTES",
    "TOO_LARGE_RETRY",
    "Ask",
    "Batch",
    "Changed",
    "Effect",
    "Limits",
    "Refuse",
    "Relay",
    "RrwebEvent",
    "SnapshotReason",
    "Stream",
    "WatchersChanged",
    "decode_events",
]

KIB: Final = 1024
MIB: Final = 1024 * KIB
BUFFER_BYTES: Final = 8 * MIB
RATE_BYTES: Final = 256 * KIB
ASK_RETRY: Final = 10.0
TOO_LARGE_RETRY: Final = 30.0

Clock = Callable[[], float]
Viewer = Hashable


class SnapshotReason(enum.StrEnum):
    """Why the relay asks a recorder for a fresh full snapshot (``snapshot_please``'s ``reason``)."""

    BUFFER_FULL = "buffer_full"  # the changes since the last snapshot passed the buffer's cap
    RATE_LIMITED = "rate_limited"  # the page changed faster than the rate cap
    LOST_BATCH = "lost_batch"  # a batch was malformed, out of order, or never came
    TOO_LARGE = "too_large"  # the snapshot itself was over the cap (asked again later)
    NO_SNAPSHOT = "no_snapshot"  # none came since the page attached, or since the last ask


class RrwebEvent(msgspec.Struct, frozen=True, gc=False):
    """One rrweb event, as far as the relay reads it: its type and time; ``data`` stays raw JSON."""

    type: Annotated[int, msgspec.Meta(ge=0, le=255)]
    timestamp: int | float
    data: msgspec.Raw


_EVENTS = msgspec.json.Decoder(list[RrwebEvent])


def decode_events(text: str | bytes) -> list[RrwebEvent]:
    """A batch's text as rrweb events.  Raises ValueError saying what is wrong with it."""
    try:
        return _EVENTS.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("nested too deep") from None


# ----------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Ask:
    """Send the session's recorder ``snapshot_please`` with this reason."""

    session: str
    reason: SnapshotReason


@dataclass(frozen=True, slots=True)
class Refuse:
    """Tell the session's recorder that what it sent was refused (an error, ``bad_message``)."""

    session: str
    detail: str
    batch: int


@dataclass(frozen=True, slots=True)
class Changed:
    """The session's stream has new batches or a new status: write to its watchers."""

    session: str


@dataclass(frozen=True, slots=True)
class WatchersChanged:
    """The reps who watch the session changed (tell the recorder: ``watching``)."""

    session: str
    reps: tuple[str, ...]


Effect = Ask | Refuse | Changed | WatchersChanged


@dataclass(frozen=True, slots=True)
class Limits:
    """What one session's stream may cost.

    Attributes:
        buffer_bytes: the latest snapshot and the changes since, kept for
            late watchers (and the largest batch accepted).
        rate: bytes a second let through, sustained (0: no rate cap).
        burst: the token bucket's size; None: ``buffer_bytes``, so that a
            full snapshot of any page the buffer can hold passes at once.
        chunk_chars: characters of event JSON per part sent to watchers.
        ask_retry: an unanswered ``snapshot_please`` is repeated after this long.
        too_large_retry: after a snapshot over the cap, ask again this much later.
    """

    buffer_bytes: int = BUFFER_BYTES
    rate: float = RATE_BYTES
    burst: int | None = None
    chunk_chars: int = CHUNK_CHARS
    ask_retry: float = ASK_RETRY
    too_large_retry: float = TOO_LARGE_RETRY

    @property
    def bucket(self) -> int:
        return self.buffer_bytes if self.burst is None else self.burst


def _size(n: float) -> str:
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n / unit:g} {name}"
    return f"{n:g} bytes"


# ----------------------------------------------------------------- batches


class Batch:
    """A batch of events as watchers get it: numbered per stream, stamped with when it arrived.

    Its frames (:class:`CobrowseChunk` s, encoded) are made once, when a
    watcher first needs them, and shared by every watcher.
    """

    __slots__ = ("_frames", "at", "chunk_chars", "no", "session", "size", "text")

    def __init__(self, session: str, no: int, at: float, text: str, size: int, chunk_chars: int = CHUNK_CHARS) -> None:
        self.session = session
        self.no = no
        self.at = at
        self.text = text
        self.size = size  # UTF-8 bytes of text
        self.chunk_chars = chunk_chars
        self._frames: tuple[bytes, ...] | None = None

    def chunks(self) -> list[CobrowseChunk]:
        n = self.chunk_chars
        parts = [self.text[i : i + n] for i in range(0, len(self.text), n)] or [""]
        return [CobrowseChunk(self.session, self.no, i, len(parts), part, self.at) for i, part in enumerate(parts)]

    def frames(self) -> tuple[bytes, ...]:
        if self._frames is None:
            self._frames = tuple(encode(chunk) for chunk in self.chunks())
        return self._frames

    def __repr__(self) -> str:
        return f"Batch({self.session!r}, no={self.no}, size={self.size})"


# ----------------------------------------------------------------- streams


class Stream:
    """One session's co-browsing: its recorder's batches, its buffer, its watchers, its status.

    Attributes:
        state, url, title, detail: what the watchers are told (:meth:`status`).
        attached: a recorder is attached.
        viewers: who watches: a viewer (a connection) and its rep.
        buffer: the batches a late watcher gets, the first one starting
            with the latest Meta and FullSnapshot; numbered ``base`` on.
        need_snapshot: incremental events are dropped until a full snapshot comes.
    """

    def __init__(self, session: str, limits: Limits, now: float, mono: float) -> None:
        self.session = session
        self.limits = limits
        self.state = CobrowseState.WAITING
        self.url = ""
        self.title = ""
        self.detail = ""
        self.changed_at = now
        self.attached = False
        self.viewers: dict[Viewer, str] = {}
        self.buffer: list[Batch] = []
        self.base = 0  # the number of buffer[0], or of the next batch while the buffer is empty
        self.next_no = 0
        self.buffer_bytes = 0
        self.need_snapshot = True
        self._status: bytes | None = None  # the encoded status, until it changes
        self._meta: bytes | None = None  # the latest Meta event, encoded: for a snapshot that comes without one
        self._snapshot_size = 0  # of the latest full snapshot seen: what the bucket must hold before an ask
        # Assembly of the recorder's current batch.
        self._last_batch: int | None = None  # the recorder's last batch number since it attached
        self._assembling: int | None = None
        self._parts: list[str] = []
        self._of = 0
        self._bytes = 0
        self._discarding: int | None = None  # a refused batch whose remaining parts are dropped quietly
        # Asks and the rate.
        self._ask_at: float | None = None
        self._asked_at: float | None = None
        self._ask_reason = SnapshotReason.NO_SNAPSHOT
        self._tokens = float(limits.bucket)
        self._filled_at = mono

    # ------------------------------------------------------------ reading

    def status(self) -> CobrowseStatus:
        return CobrowseStatus(self.session, self.state, self.url, self.title, self.changed_at, self.detail or UNSET)

    def status_frame(self) -> bytes:
        """:meth:`status`, encoded once per change."""
        if self._status is None:
            self._status = encode(self.status())
        return self._status

    def reps(self) -> tuple[str, ...]:
        """The reps who watch, each once, sorted."""
        return tuple(sorted(set(self.viewers.values())))

    def batch_from(self, cursor: int | None) -> Batch | None:
        """The batch a watcher gets next, whose previous batch was ``cursor - 1`` (None: it has none yet).

        A watcher who fell behind a new full snapshot (its next batch is
        gone) gets the buffer's first batch: the page as a whole, again.
        """
        if not self.buffer:
            return None
        if cursor is None or cursor < self.base:
            return self.buffer[0]
        i = cursor - self.base
        return self.buffer[i] if i < len(self.buffer) else None

    def __repr__(self) -> str:
        return f"Stream({self.session!r}, {self.state.value}, {len(self.buffer)} batches, {self.buffer_bytes} bytes)"

    # ----------------------------------------------------------- changing

    def _set(self, now: float, state: CobrowseState | None = None, *, detail: str | None = None, url: str | None = None, title: str | None = None) -> bool:
        new = (state or self.state, self.detail if detail is None else detail, self.url if url is None else url, self.title if title is None else title)
        if new == (self.state, self.detail, self.url, self.title):
            return False
        self.state, self.detail, self.url, self.title = new
        self.changed_at = now
        self._status = None
        return True

    def _clear(self) -> None:
        """Drop every batch (the numbers go on: a watcher's cursor stays meaningful)."""
        self.buffer = []
        self.base = self.next_no
        self.buffer_bytes = 0
        self.need_snapshot = True

    def _reset_assembly(self) -> None:
        self._assembling = None
        self._parts = []
        self._of = 0
        self._bytes = 0

    def _refill(self, mono: float) -> float:
        if self.limits.rate <= 0:
            self._tokens = float("inf")
        else:
            self._tokens = min(float(self.limits.bucket), self._tokens + max(0.0, mono - self._filled_at) * self.limits.rate)
        self._filled_at = max(self._filled_at, mono)
        return self._tokens

    def _when_tokens(self, need: float, mono: float) -> float:
        """When the bucket holds ``need`` bytes."""
        tokens = self._refill(mono)
        # A millisecond late rather than a rounding error early: the bucket must hold it then.
        return mono if tokens >= need else mono + (need - tokens) / self.limits.rate + 0.001

    def _want_snapshot(self, reason: SnapshotReason, mono: float, *, at: float | None = None) -> None:
        """Drop incremental events until a full snapshot comes; ask for one when the rate allows it."""
        self.need_snapshot = True
        when = at if at is not None else self._when_tokens(min(self._snapshot_size, self.limits.bucket), mono)
        if self._ask_at is None or at is not None or when > self._ask_at:
            self._ask_at = when
            self._ask_reason = reason

    def _resync(self, reason: SnapshotReason, detail: str, now: float, mono: float, *, at: float | None = None) -> None:
        self._set(now, CobrowseState.RESYNC, detail=detail)
        self._want_snapshot(reason, mono, at=at)

    def _asks(self, mono: float) -> list[Effect]:
        if not (self.attached and self.need_snapshot and self.state is not CobrowseState.STOPPED):
            return []
        if self._ask_at is None or self._ask_at > mono:
            return []
        reason = self._ask_reason
        self._asked_at = mono
        self._ask_at = mono + self.limits.ask_retry
        self._ask_reason = SnapshotReason.NO_SNAPSHOT  # what a repeat of this ask is for
        return [Ask(self.session, reason)]

    def deadline(self) -> float | None:
        """When this stream next has something to do on its own (an ask to send or repeat)."""
        if self.attached and self.need_snapshot and self.state is not CobrowseState.STOPPED:
            return self._ask_at
        return None

    # ------------------------------------------------------------ recorder

    def _assemble(self, rec: Record, out: list[Effect], now: float, mono: float) -> tuple[str, int] | None:
        """Part ``rec`` of the current batch; the batch's text and size once it is whole."""
        if self._discarding is not None:
            if rec.batch == self._discarding:
                return None  # the rest of a refused batch
            self._discarding = None

        def refuse(detail: str, *, lost: bool = True) -> None:
            out.append(Refuse(self.session, detail, rec.batch))
            self._reset_assembly()
            self._discarding = rec.batch
            if lost:
                self._resync(SnapshotReason.LOST_BATCH, "a batch of the page's changes was lost", now, mono)

        if rec.part >= rec.parts:
            refuse(f"part {rec.part} of batch {rec.batch}: a batch of {rec.parts} parts has parts 0 to {rec.parts - 1}")
            return None
        if rec.part == 0:
            if self._assembling is not None:
                out.append(Refuse(self.session, f"batch {self._assembling} was left incomplete ({len(self._parts)} of {self._of} parts)", self._assembling))
                self._reset_assembly()
                self._resync(SnapshotReason.LOST_BATCH, "a batch of the page's changes was lost", now, mono)
            last = self._last_batch
            if last is not None and rec.batch <= last:
                refuse(f"batch {rec.batch} came after batch {last}: batches are numbered upwards")
                return None
            if last is not None and rec.batch != last + 1:
                # Not the recorder's fault to refuse: it may have dropped them itself.  The page is out of step all the same.
                self._resync(SnapshotReason.LOST_BATCH, "a batch of the page's changes was lost", now, mono)
            self._last_batch = rec.batch
            self._assembling, self._of = rec.batch, rec.parts
        elif self._assembling != rec.batch or rec.parts != self._of or rec.part != len(self._parts):
            if self._assembling is None:
                expected = f"part 0 of batch {rec.batch}"
            else:
                expected = f"part {len(self._parts)} of {self._of} of batch {self._assembling}"
            refuse(f"part {rec.part} of {rec.parts} of batch {rec.batch} is out of order (expected {expected})")
            return None
        self._bytes += len(rec.data.encode())
        limit = self.limits.buffer_bytes
        if self._bytes > limit:
            refuse(f"batch {rec.batch} is larger than {_size(limit)}", lost=False)
            self._resync(
                SnapshotReason.TOO_LARGE, f"the page is larger than {_size(limit)}", now, mono, at=mono + self.limits.too_large_retry
            )
            return None
        self._parts.append(rec.data)
        if len(self._parts) < self._of:
            return None
        text, size = "".join(self._parts), self._bytes
        self._reset_assembly()
        return text, size

    def _take(self, batch_no: int, text: str, size: int, out: list[Effect], now: float, mono: float) -> None:
        """A whole batch: into the buffer and out to the watchers, or dropped for a reason the watchers are told."""
        try:
            events = decode_events(text)
        except ValueError as exc:
            out.append(Refuse(self.session, f"batch {batch_no} is not a JSON array of rrweb events: {exc}", batch_no))
            self._resync(SnapshotReason.LOST_BATCH, "a batch of the page's changes was lost", now, mono)
            return
        full = meta = -1
        for i, e in enumerate(events):
            if e.type == RrwebType.FULL_SNAPSHOT:
                full = i
            elif e.type == RrwebType.META:
                meta = i
        meta_before_full = max((i for i in range(full) if events[i].type == RrwebType.META), default=-1) if full >= 0 else -1
        previous_meta = self._meta
        if meta >= 0:
            self._meta = encode(events[meta])
        tokens = self._refill(mono)
        if full < 0:
            if self.need_snapshot:
                return  # nothing to build on: incremental events wait for the snapshot
            if tokens < size:
                self._resync(SnapshotReason.RATE_LIMITED, f"the page changed faster than {_size(self.limits.rate)}/s", now, mono)
            elif self.buffer_bytes + size > self.limits.buffer_bytes:
                self._resync(SnapshotReason.BUFFER_FULL, f"more than {_size(self.limits.buffer_bytes)} of changes since the last snapshot", now, mono)
            else:
                self._tokens -= size
                self._append(Batch(self.session, self.next_no, now, text, size, self.limits.chunk_chars))
                out.append(Changed(self.session))
            return
        self._snapshot_size = size
        if size > self.limits.bucket:
            self._resync(
                SnapshotReason.TOO_LARGE, f"the page is larger than {_size(self.limits.bucket)}", now, mono, at=mono + self.limits.too_large_retry
            )
            return
        if tokens < size:
            self._resync(SnapshotReason.RATE_LIMITED, f"the page changed faster than {_size(self.limits.rate)}/s", now, mono)
            self._ask_at = self._when_tokens(size, mono)
            return
        self._tokens -= size
        # The buffer restarts at the snapshot, with the Meta before it (a replayer needs both).
        if meta_before_full >= 0:
            start, prefix = meta_before_full, None
        else:
            start, prefix = full, previous_meta
        if start > 0 or prefix is not None:
            kept = [encode(e) for e in events[start:]]
            raw = b"[" + b",".join([prefix, *kept] if prefix is not None else kept) + b"]"
            text, size = raw.decode(), len(raw)
        self._clear()
        self._append(Batch(self.session, self.next_no, now, text, size, self.limits.chunk_chars))
        self.need_snapshot = False
        self._ask_at = None
        self._set(now, CobrowseState.LIVE, detail="")
        out.append(Changed(self.session))

    def _append(self, batch: Batch) -> None:
        if not self.buffer:
            self.base = batch.no
        self.buffer.append(batch)
        self.buffer_bytes += batch.size
        self.next_no = batch.no + 1


class Relay:
    """Every session's :class:`Stream`.  Each call returns the :data:`Effect` s to carry out.

    Args:
        now: the wall clock: the times chunks and statuses are stamped with.
        monotonic: for the rate and the retries (default: ``now``).
        limits: per session.
    """

    def __init__(self, now: Clock, *, monotonic: Clock | None = None, limits: Limits | None = None) -> None:
        self._now = now
        self._mono = monotonic if monotonic is not None else now
        self.limits = limits if limits is not None else Limits()
        self._streams: dict[str, Stream] = {}

    def stream(self, session: str) -> Stream | None:
        return self._streams.get(session)

    def streams(self) -> Iterator[Stream]:
        return iter(self._streams.values())

    def _stream(self, session: str) -> Stream:
        s = self._streams.get(session)
        if s is None:
            s = self._streams[session] = Stream(session, self.limits, self._now(), self._mono())
        return s

    # ------------------------------------------------------------ recorder

    def attach(self, session: str, *, url: str = "", title: str = "") -> list[Effect]:
        """A recorder attached (the first, or a page that replaced the last: navigation, a reload).

        Its first batch is expected to start with a full snapshot (rrweb's
        always does); until one comes the stream waits, and the recorder is
        asked for one if none came within ``ask_retry``.
        """
        s = self._stream(session)
        now, mono = self._now(), self._mono()
        s.attached = True
        s._reset_assembly()
        s._discarding = None
        s._last_batch = None
        s.need_snapshot = True
        s._asked_at = mono  # rrweb takes one as it starts: that is the first ask
        s._ask_at = mono + self.limits.ask_retry
        s._ask_reason = SnapshotReason.NO_SNAPSHOT
        s._set(now, CobrowseState.WAITING, detail="", url=url, title=title)
        return [Changed(session)]

    def record(self, session: str, rec: Record) -> list[Effect]:
        """A part of a batch from the session's recorder."""
        s = self._streams.get(session)
        if s is None or not s.attached:
            return [Refuse(session, "attach before recording", rec.batch)]
        if s.state is CobrowseState.STOPPED:
            return [Refuse(session, "sharing was stopped: attach again to share the page", rec.batch)]
        now, mono = self._now(), self._mono()
        out: list[Effect] = []
        before = s.state, s.detail
        whole = s._assemble(rec, out, now, mono)
        if whole is not None:
            s._take(rec.batch, whole[0], whole[1], out, now, mono)
        if (s.state, s.detail) != before and not any(isinstance(e, Changed) for e in out):
            out.append(Changed(session))
        out.extend(s._asks(mono))
        return out

    def page(self, session: str, url: str, title: str) -> list[Effect]:
        """The page's address or title changed."""
        s = self._streams.get(session)
        if s is None or not s._set(self._now(), url=url, title=title):
            return []
        return [Changed(session)]

    def stop(self, session: str) -> list[Effect]:
        """The customer stopped sharing: everything of the page is dropped; the watchers are told."""
        s = self._streams.get(session)
        if s is None:
            return []
        s._clear()
        s._reset_assembly()
        s._meta = None
        s._ask_at = None
        s._set(self._now(), CobrowseState.STOPPED, detail="the customer stopped sharing")
        return [Changed(session)]

    def detach(self, session: str) -> list[Effect]:
        """The recorder's connection closed (the page is navigating, reloading, or was closed)."""
        s = self._streams.get(session)
        if s is None or not s.attached:
            return []
        s.attached = False
        s._reset_assembly()
        s.need_snapshot = True
        s._ask_at = None
        if s.state is CobrowseState.STOPPED:
            return []
        s._set(self._now(), CobrowseState.WAITING, detail="")
        return [Changed(session)]

    def end(self, session: str, detail: str = "") -> tuple[CobrowseStatus, list[tuple[Viewer, str]]] | None:
        """The session ended: its stream is gone.  Its last status (ended) and who watched, to tell them."""
        s = self._streams.pop(session, None)
        if s is None:
            return None
        s._set(self._now(), CobrowseState.ENDED, detail=detail)
        return s.status(), list(s.viewers.items())

    # ------------------------------------------------------------ watchers

    def watch(self, session: str, viewer: Viewer, rep: str) -> list[Effect]:
        """``viewer`` (of ``rep``) watches the session from now on: the buffer first, then live."""
        s = self._stream(session)
        before = s.reps()
        s.viewers[viewer] = rep
        out: list[Effect] = [WatchersChanged(session, s.reps())] if s.reps() != before else []
        out.extend(s._asks(self._mono()))
        return out

    def unwatch(self, session: str, viewer: Viewer) -> list[Effect]:
        s = self._streams.get(session)
        if s is None or viewer not in s.viewers:
            return []
        before = s.reps()
        del s.viewers[viewer]
        return [WatchersChanged(session, s.reps())] if s.reps() != before else []

    def drop_rep(self, session: str, rep: str) -> tuple[list[Effect], list[Viewer]]:
        """``rep`` is no longer in the session: every watch of theirs ends.  The effects and the viewers dropped."""
        s = self._streams.get(session)
        if s is None:
            return [], []
        gone = [v for v, r in s.viewers.items() if r == rep]
        if not gone:
            return [], []
        for v in gone:
            del s.viewers[v]
        return [WatchersChanged(session, s.reps())], gone

    # ------------------------------------------------------------ mirrors

    def relayed(self, session: str, text: str, size: int, at: float, *, snapshot: bool) -> list[Effect]:
        """A batch that another process's relay accepted (a cluster: its recorder is there).

        This process's stream of the session is then a *mirror*: it is never
        attached, and its buffer follows the recording process's: a
        ``snapshot`` batch (the first of that buffer: Meta and FullSnapshot)
        starts it again, other batches are appended.  Numbers are this
        stream's own (a watcher's cursor stays meaningful whichever process
        records).  Over :attr:`Limits.buffer_bytes`, or an incremental batch
        with no snapshot to build on, is not taken: the stream then needs a
        snapshot (``need_snapshot``), which the caller asks the recording
        process for.  Returns :class:`Changed` when something was taken.
        """
        s = self._stream(session)
        if snapshot:
            if size > self.limits.buffer_bytes:
                s._clear()
                return []
            s._clear()
            s.need_snapshot = False
        elif s.need_snapshot or s.buffer_bytes + size > self.limits.buffer_bytes:
            s._clear()
            return []
        s._append(Batch(session, s.next_no, at, text, size, self.limits.chunk_chars))
        return [Changed(session)]

    def relayed_status(self, status: CobrowseStatus) -> list[Effect]:
        """The recording process's status of the stream, as its watchers are told it."""
        s = self._stream(status.session)
        detail = status.detail if isinstance(status.detail, str) else ""
        if (s.state, s.detail, s.url, s.title, s.changed_at) == (status.state, detail, status.url, status.title, status.at):
            return []
        s.state, s.detail, s.url, s.title, s.changed_at = status.state, detail, status.url, status.title, status.at
        s._status = None
        if status.state is CobrowseState.STOPPED:
            s._clear()
        return [Changed(status.session)]

    def drop(self, session: str) -> None:
        """Forget the session's stream without telling anyone (a mirror nobody here watches any more)."""
        self._streams.pop(session, None)

    # --------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """The earliest time (on the monotonic clock) :meth:`advance` has something to do."""
        deadlines = [d for s in self._streams.values() if (d := s.deadline()) is not None]
        return min(deadlines, default=None)

    def advance(self) -> list[Effect]:
        """Send the asks that are due."""
        mono = self._mono()
        out: list[Effect] = []
        for s in self._streams.values():
            out.extend(s._asks(mono))
        return out
