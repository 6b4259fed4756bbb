"""Co-browse relays across processes: Redis pub/sub, one channel per session.

A customer's recorder socket (``/cobrowse``) and the consoles that watch its
page may be on different processes of a cluster.  The process that holds
the recorder (the session's *origin*) runs the relay as on one process
(:class:`~repconsole.core.cobrowse.Relay`: assembly, checks, the 8 MiB
buffer, the 256 KiB/s bucket, the asks for a snapshot); every other process
whose consoles watch the session keeps a *mirror* of its stream
(:meth:`Relay.relayed <repconsole.core.cobrowse.Relay.relayed>`) and serves
its consoles from it through the same code as on one process
(:class:`~repconsole.server.cobrowse.Viewer`: flow control, skipping to the
newest snapshot, 4408 for a console that does not read).

Everything of a session goes over one channel, ``repconsole:{org}:cobrowse:<session>``,
each message msgpack with the sending process's id (a process ignores its own):

- origin to mirrors: ``attach`` (a page attached here: this process records
  it now), ``batch`` (one accepted batch, with the origin's number and
  whether it starts the buffer: Meta and FullSnapshot), ``status``,
  ``sync`` (the whole buffer and the status, the answer to ``want``),
  ``end`` (the session ended);
  ``revoke`` (a rep left or lost the session: their watches end everywhere);
- mirrors to origin: ``watchers`` (the reps who watch on that process: the
  recorder's ``watching`` names every process's reps, and the origin's
  relay asks for a snapshot as a local watch would), ``want`` (a late
  joiner, or a mirror that missed a batch, asks for the buffer), ``tell``
  (a frame for the recorder: a rep's ``pointer``).

The origin publishes batches and statuses only while some other process
watches (a ``watchers`` message with reps); a mirror that subscribes asks
``want`` once its subscription is confirmed, so the ``sync`` it gets is the
full snapshot and every batch after it, and the batches that follow it on
the channel continue it (one publishing connection: Redis keeps their
order).  A mirror takes a batch only if it continues the origin's numbers;
on a gap (pub/sub drops messages on a reconnect) it asks ``want`` again.
A mirror's buffer has the origin's bound (8 MiB): it holds what the
origin's holds.  A page that attaches on another process (a reload that
reconnected elsewhere) makes that process the origin: the old one closes
its recorder (replaced by a newer page) and, if its consoles watch, turns
into a mirror.

Pub/sub is fire-and-forget and nothing here is stored: co-browsing is a
side channel on one process too (not logged, not resumed).  So that a
process that dies (``kill -9``: no goodbye) leaves nothing stale behind,
every ``refresh`` seconds (:data:`REFRESH`) a mirror publishes its
``watchers`` again and the origin its ``status``: the origin forgets a
process's reps it has not heard of for ``3 x refresh``, and a mirror that
has not heard its origin for as long tells its consoles the page is
``waiting`` (its process is gone; the page reconnects to another, whose
``attach`` makes it the origin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio as aredis

from repconsole.core.cobrowse import Effect, Stream
from repconsole.protocol import CobrowseState, CobrowseStatus
from repconsole.server.cluster.keys import PREFIX, process_id
from repconsole.server.config import ClusterSettings

if TYPE_CHECKING:
    from repconsole.server.cobrowse import CobrowseDesk

__all__ = ["REFRESH", "WANT_RETRY", "RedisRelay", "channel"]

log = logging.getLogger(__name__)

# A mirror that is still out of step this long after its ``want`` asks again (the answer may have been lost).
WANT_RETRY = 1.0
# How often a mirror repeats its watchers and an origin its status; silent for 3x this, a process counts as gone.
REFRESH = 10.0
# How long a subscription may take to be confirmed before the mirror asks anyway.
SUBSCRIBE_TIMEOUT = 2.0
HEALTH_CHECK = 5.0  # seconds of quiet after which the subscriber PINGs before it reads on


def channel(organisation: str, session: str) -> str:
    """The pub/sub channel of one session's co-browsing."""
    return f"{PREFIX}:{{{organisation}}}:cobrowse:{session}"


class _Msg(msgspec.Struct, array_like=True, tag_field="k", frozen=True):
    node: str  # the sender


class _Attach(_Msg, tag="attach", frozen=True):
    pass


class _Batch(_Msg, tag="batch", frozen=True):
    no: int
    at: float
    text: str
    size: int
    first: bool  # it starts the buffer (Meta and FullSnapshot)


class _Status(_Msg, tag="status", frozen=True):
    status: CobrowseStatus


class _Sync(_Msg, tag="sync", frozen=True):
    batches: list[tuple[int, float, str, int]]  # no, at, text, size; the first starts the buffer
    status: CobrowseStatus


class _End(_Msg, tag="end", frozen=True):
    detail: str


class _Watchers(_Msg, tag="watchers", frozen=True):
    reps: list[str]


class _Want(_Msg, tag="want", frozen=True):
    pass


class _Tell(_Msg, tag="tell", frozen=True):
    frame: bytes


class _Revoke(_Msg, tag="revoke", frozen=True):
    rep: str  # no longer in the session: their watches end on every process


_Any = _Attach | _Batch | _Status | _Sync | _End | _Watchers | _Want | _Tell | _Revoke
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Any)


class _Mirror:
    """What a mirror knows of the origin's stream."""

    __slots__ = ("heard", "last", "origin", "stale", "synced", "wanted_at")

    def __init__(self, now: float) -> None:
        self.heard = now  # when the origin was last heard (the loop's clock)
        self.stale = False  # the origin went silent: the consoles were told the page is waiting
        self.origin: str | None = None
        self.last = -1  # the origin's number of the last batch taken
        self.synced = False  # in step: the next batch continues ``last``
        self.wanted_at: float | None = None


class _Origin:
    """What the recording process publishes of one session."""

    __slots__ = ("cursor", "heard", "remote", "status")

    def __init__(self) -> None:
        self.heard: dict[str, float] = {}  # node -> when its watchers were last heard
        self.cursor: int | None = None  # the origin's number of the next batch to publish
        self.remote: dict[str, tuple[str, ...]] = {}  # node -> the reps who watch there
        self.status = b""


class RedisRelay:
    """The :class:`~repconsole.server.cobrowse.RelayBackend` of a cluster (see the module's docstring).

    Two connections: one subscribes (its reader task hands each message to
    the desk on the loop), one publishes, in the order the desk's calls came
    (a writer task: the desk never waits for Redis).
    """

    def __init__(self, url: str, organisation: str, *, node: str | None = None, timeout: float = 1.0, refresh: float = REFRESH) -> None:
        self.organisation = organisation
        self.refresh = refresh
        self.node = node if node is not None else process_id()
        self._pub = aredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        # No socket timeout on the subscriber: it waits for messages (get_message's own timeout bounds each wait).
        # A health check (a PING when it has been quiet that long) finds a dead connection (a Redis restart,
        # a cut) instead of waiting on it forever.
        self._sub = aredis.Redis.from_url(url, socket_connect_timeout=timeout, health_check_interval=HEALTH_CHECK)
        self._pubsub = self._sub.pubsub()
        self._desk: CobrowseDesk | None = None
        self._origins: dict[str, _Origin] = {}
        self._mirrors: dict[str, _Mirror] = {}
        self._ops: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = False
        self.published = 0  # messages published (for tests and the bench)

    @classmethod
    def from_settings(cls, settings: ClusterSettings) -> RedisRelay:
        assert settings.redis_url is not None
        return cls(settings.redis_url, settings.organisation, timeout=settings.lease_ttl / 3)

    @property
    def desk(self) -> CobrowseDesk:
        assert self._desk is not None, "start() first"
        return self._desk

    def subscribed(self) -> set[str]:
        """The sessions this process hears the channel of (it records or mirrors them)."""
        return set(self._origins) | set(self._mirrors)

    # ------------------------------------------------------ the desk's calls

    def start(self, desk: CobrowseDesk) -> None:
        self._desk = desk

    def recording(self, session: str) -> None:
        if session not in self._origins:
            if self._mirrors.pop(session, None) is None:  # a mirror is subscribed already
                self._enqueue("sub", session)
            self._origins[session] = _Origin()
        self._publish(session, _Attach(self.node))

    def changed(self, stream: Stream) -> None:
        origin = self._origins.get(stream.session)
        if origin is None:
            return
        if not any(origin.remote.values()):
            origin.cursor = stream.next_no  # nobody elsewhere: a late joiner asks for the buffer
            origin.status = stream.status_frame()
            return
        while (batch := stream.batch_from(origin.cursor)) is not None:
            self._publish(stream.session, _Batch(self.node, batch.no, batch.at, batch.text, batch.size, batch.no == stream.base))
            origin.cursor = batch.no + 1
        if stream.status_frame() != origin.status:
            origin.status = stream.status_frame()
            self._publish(stream.session, _Status(self.node, stream.status()))

    def watching(self, session: str, reps: tuple[str, ...]) -> None:
        if session in self._origins:
            return
        mirror = self._mirrors.get(session)
        if reps:
            if mirror is None:
                self._mirrors[session] = _Mirror(asyncio.get_running_loop().time())
                self._enqueue("sub", session)
                self._publish(session, _Watchers(self.node, list(reps)))
                self._want(session, self._mirrors[session])
            else:
                self._publish(session, _Watchers(self.node, list(reps)))
        elif mirror is not None:
            del self._mirrors[session]
            self._publish(session, _Watchers(self.node, []))
            self._enqueue("unsub", session)
            self.desk.relay.drop(session)

    def tell(self, session: str, frame: bytes) -> None:
        self._publish(session, _Tell(self.node, frame))

    def ended(self, session: str, detail: str) -> None:
        if self._origins.pop(session, None) is not None:
            self._publish(session, _End(self.node, detail))
            self._enqueue("unsub", session)
        elif self._mirrors.pop(session, None) is not None:
            self._enqueue("unsub", session)

    def revoked(self, session: str, rep: str) -> None:
        origin = self._origins.get(session)
        if origin is None:
            return
        for node, reps in list(origin.remote.items()):
            origin.remote[node] = tuple(r for r in reps if r != rep)
        self._publish(session, _Revoke(self.node, rep))

    def close(self) -> None:
        for task in (self._writer, self._reader, self._ticker):
            if task is not None:
                task.cancel()
        with contextlib.suppress(RuntimeError):  # no loop any more: the sockets close with the process
            self._closing = asyncio.get_running_loop().create_task(self.aclose())

    async def aclose(self) -> None:
        """Stop and close both connections (what :meth:`close` schedules)."""
        self._closed = True
        tasks = {task for task in (self._writer, self._reader, self._ticker) if task is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            # Not an await of each: redis-py may swallow a cancellation mid-command (the task then
            # goes on, and sees _closed at its next turn); and an outer cancellation must reach us.
            await asyncio.wait(tasks, timeout=1.0)
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._pub.aclose()
        with contextlib.suppress(Exception):
            await self._sub.aclose()

    async def drain(self) -> None:
        """Wait until everything queued so far was sent (tests, the bench)."""
        while not self._ops.empty() or (self._writer is not None and self._busy):
            await asyncio.sleep(0.001)

    # --------------------------------------------------------- sending

    _busy = False

    def _publish(self, session: str, msg: _Msg) -> None:
        self._enqueue("pub", session, _encoder.encode(msg))

    def _enqueue(self, op: str, session: str, data: bytes = b"") -> None:
        if self._closed:
            return
        self._ops.put_nowait((op, session, data))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.refresh)
            try:
                self.refreshed(asyncio.get_running_loop().time())
            except Exception:
                log.exception("co-browse relay: the refresh failed")

    def refreshed(self, now: float) -> None:
        """Every ``refresh``: repeat what others would miss, forget who went silent (see the module's docstring)."""
        desk = self.desk
        gone_after = 3 * self.refresh
        for session, mirror in list(self._mirrors.items()):
            stream = desk.relay.stream(session)
            self._publish(session, _Watchers(self.node, list(stream.reps() if stream is not None else ())))
            if not mirror.synced and self._want_due(mirror):
                self._want(session, mirror)
            if stream is not None and not mirror.stale and now - mirror.heard > gone_after:
                mirror.stale, mirror.synced = True, False
                status = CobrowseStatus(
                    session, CobrowseState.WAITING, stream.url, stream.title, time.time(), "the page's server stopped answering"
                )
                desk.apply(desk.relay.relayed_status(status))
        for session, origin in list(self._origins.items()):
            for node in [n for n, at in origin.heard.items() if now - at > gone_after]:
                del origin.heard[node]
                origin.remote.pop(node, None)
                desk.remote_watchers(session, node, ())
            stream = desk.relay.stream(session)
            if origin.remote and stream is not None:
                self._publish(session, _Status(self.node, stream.status()))

    async def _write(self) -> None:
        while not self._closed:
            op, session, data = await self._ops.get()
            self._busy = True
            name = channel(self.organisation, session)
            try:
                if op == "pub":
                    await self._pub.publish(name, data)
                    self.published += 1
                elif op == "sub":
                    confirmed = self._confirmed[name] = asyncio.Event()
                    try:
                        await self._pubsub.subscribe(name)
                        if self._reader is None or self._reader.done():
                            self._reader = asyncio.get_running_loop().create_task(self._read())
                        # Ask for the buffer (the next ops) only once Redis would deliver the answer here.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):  # not wait_for: on 3.11 it can lose a cancellation
                                await confirmed.wait()
                    finally:
                        if self._confirmed.get(name) is confirmed:  # confirmed, timed out or failed: not kept
                            del self._confirmed[name]
                elif session not in self._origins and session not in self._mirrors:  # unsub, unless wanted again since
                    await self._pubsub.unsubscribe(name)
            except Exception as exc:  # co-browsing is best effort: a mirror notices a gap by the numbers
                log.warning("co-browse relay: %s %s failed: %s", op, name, exc)
            finally:
                self._busy = False

    # ------------------------------------------------------- receiving

    async def _read(self) -> None:
        prefix = channel(self.organisation, "")
        while not self._closed:
            try:
                message: Any = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("co-browse relay: reading pub/sub failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            name = message["channel"].decode() if isinstance(message["channel"], bytes) else str(message["channel"])
            if message["type"] == "subscribe":
                event = self._confirmed.pop(name, None)
                if event is not None:
                    event.set()
                continue
            if message["type"] != "message" or not name.startswith(prefix):
                continue
            try:
                self.receive(name[len(prefix) :], message["data"])
            except Exception:
                log.exception("co-browse relay: a message of %s could not be taken", name)

    def receive(self, session: str, data: bytes) -> None:
        """One message heard on ``session``'s channel."""
        msg = _decoder.decode(data)
        if msg.node == self.node:
            return
        origin = self._origins.get(session)
        if origin is not None:
            self._to_origin(session, origin, msg)
            return
        mirror = self._mirrors.get(session)
        if mirror is not None:
            self._to_mirror(session, mirror, msg)

    def _to_origin(self, session: str, origin: _Origin, msg: _Any) -> None:
        desk = self.desk
        match msg:
            case _Watchers(node=node, reps=reps):
                if reps:
                    origin.remote[node] = tuple(reps)
                    origin.heard[node] = asyncio.get_running_loop().time()
                else:
                    origin.remote.pop(node, None)
                    origin.heard.pop(node, None)
                desk.remote_watchers(session, node, reps)
            case _Want():
                self._sync(session, origin)
            case _Tell(frame=frame):
                desk.tell_recorder(session, frame)
            case _Attach(node=node):  # a newer page of the session attached there
                for other in list(origin.remote):
                    desk.remote_watchers(session, other, ())
                del self._origins[session]
                desk.replaced(session)
                stream = desk.relay.stream(session)
                here = stream.reps() if stream is not None else ()
                if here:
                    mirror = self._mirrors[session] = _Mirror(asyncio.get_running_loop().time())
                    mirror.origin = node
                    self._publish(session, _Watchers(self.node, list(here)))
                    self._want(session, mirror)
                else:
                    self._enqueue("unsub", session)
            case _:
                pass  # another process's mirror traffic: not for the origin

    def _sync(self, session: str, origin: _Origin) -> None:
        stream = self.desk.relay.stream(session)
        if stream is None:
            return
        batches = [(b.no, b.at, b.text, b.size) for b in stream.buffer]
        self._publish(session, _Sync(self.node, batches, stream.status()))
        origin.cursor = stream.next_no
        origin.status = stream.status_frame()

    def _want(self, session: str, mirror: _Mirror) -> None:
        mirror.synced = False
        mirror.wanted_at = asyncio.get_running_loop().time()
        self._publish(session, _Want(self.node))

    def _to_mirror(self, session: str, mirror: _Mirror, msg: _Any) -> None:
        desk = self.desk
        relay = desk.relay
        if isinstance(msg, _Watchers | _Want | _Tell):
            return  # for the origin
        mirror.heard = asyncio.get_running_loop().time()
        if mirror.stale:  # the origin is back (or another took over): the buffer again
            mirror.stale = False
            if not isinstance(msg, _Sync) and not (isinstance(msg, _Batch) and msg.first):
                self._want(session, mirror)
        if mirror.origin != msg.node:  # a new origin (or the first heard): it must know who watches here
            mirror.origin = msg.node
            stream = relay.stream(session)
            self._publish(session, _Watchers(self.node, list(stream.reps() if stream is not None else ())))
            if not isinstance(msg, _Sync) and not (isinstance(msg, _Batch) and msg.first):
                self._want(session, mirror)
        match msg:
            case _Batch(no=no, at=at, text=text, size=size, first=first):
                if first or (mirror.synced and no == mirror.last + 1):
                    desk.apply(relay.relayed(session, text, size, at, snapshot=first))
                    mirror.last, mirror.synced = no, True
                    stream = relay.stream(session)
                    if stream is not None and stream.need_snapshot:  # over this process's buffer
                        self._want(session, mirror)
                elif mirror.synced or self._want_due(mirror):
                    self._want(session, mirror)  # a gap: the buffer again
            case _Sync(batches=batches, status=status):
                last = batches[-1][0] if batches else -1
                if not (mirror.synced and mirror.last == last and batches):
                    effects: list[Effect] = []
                    for i, (_no, at, text, size) in enumerate(batches):
                        effects += relay.relayed(session, text, size, at, snapshot=i == 0)
                    desk.apply(effects)
                    mirror.last, mirror.synced = last, True
                desk.apply(relay.relayed_status(status))
            case _Status(status=status):
                desk.apply(relay.relayed_status(status))
            case _Attach():
                mirror.synced = False  # its first batch starts the buffer again
            case _End(detail=detail):
                desk.end(session, detail)
            case _Revoke(rep=rep):
                desk.drop_rep(session, rep)

    @staticmethod
    def _want_due(mirror: _Mirror) -> bool:
        return mirror.wanted_at is None or asyncio.get_running_loop().time() - mirror.wanted_at >= WANT_RETRY
