"""One server process in an organisation's cluster: it leads, or it follows and takes over.

:class:`Member` is what :class:`~repconsole.server.runtime.Runtime` holds with
``[cluster] redis_url``.  At start (:meth:`Member.join`, before the runtime
builds its fan-out and loads its logins):

- if Redis has a snapshot (some process led before), the engine is rebuilt
  from it and the log after it (:class:`~.follower.LogFollower`), and the
  process's own SQLite is rewritten from them (engine state, the snapshot's
  logins / answers / customer tokens, the log's events for resumes): Redis,
  not the local file, is the truth;
- then it takes the lease if it can (the epoch raised) and leads: the log
  goes on from its state (``OrgLog.begin``, a fresh snapshot);
- or it follows: a task tails the log (each entry to the engine copy, the
  fan-out, SQLite and the login index), a task polls the lease every
  :attr:`Member.poll` seconds, and what consoles ask of the engine is
  forwarded (:mod:`.forward`).

**Takeover** (the poll finds the lease free: the leader died or stopped):
take the lease (epoch + 1: the old leader's appends are refused from now
on), read the log to its head, rebuild timers and offers
(``QueueEngine.lead``), write the engine state to SQLite, begin the log at
the head (a fresh snapshot), serve forwarded commands, and treat every rep
the engine has as connected as *returning* (the restart window of
``Runtime.settle_presence``: reps whose console comes back to any process
in time never flicker offline).  Bound: the old leader's last renewal +
``lease_ttl`` + ``poll`` + the catch-up (docs/architecture.md "Failover").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import redis

from repconsole.core.engine import Event
from repconsole.protocol.events import Event as WireEvent
from repconsole.server.cluster.entry import Entry, decode_entry, encode_snapshot, restore_snapshot
from repconsole.server.cluster.follower import PAGE, LogFollower
from repconsole.server.cluster.forward import (
    PRESENCE_EVERY,
    PRESENCE_TTL,
    CommandServer,
    Forwarder,
    NoLeader,
    Reply,
    Request,
    async_client,
)
from repconsole.server.cluster.keys import process_id
from repconsole.server.cluster.log import LogGap, OrgLog, connect
from repconsole.server.cluster.node import ClusterRefused, LeaderLog
from repconsole.server.cluster.records import AnswerRecord, LoginRecord, LogoutRecord, decode_side, encode_side, login_of, rows_of
from repconsole.server.config import build_engine
from repconsole.server.store import LoggedEvent

if TYPE_CHECKING:
    from repconsole.server.runtime import Runtime

__all__ = ["Member"]

log = logging.getLogger(__name__)

TAIL_RETRY = (0.1, 5.0)  # a follower's log reads failing: first and longest wait before the next try
FORWARD_TIMEOUT = 5.0  # a forwarded request with no reply by then: "retryable" (docs/protocol.md)

_wire = msgspec.json.Decoder(WireEvent)
# Forwarded customer requests that come from a page connected to their origin.
_PAGE_HERE = frozenset({"customer_start", "customer_here", "customer_say"})


async def _shielded(asking: Coroutine[Any, Any, bool], undo: Callable[[], None]) -> bool:
    """``await asking`` (a lease acquisition in a thread); if the waiter is cancelled meanwhile (the
    process halts), the thread still finishes: a lease it took then is given back by ``undo``."""
    task = asyncio.ensure_future(asking)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda t: undo() if not t.cancelled() and t.exception() is None and t.result() else None)
        raise


def _event(logged: LoggedEvent) -> Event:
    """A logged event as the engine announced it (its audience's view of the data)."""
    return Event(logged.seq, logged.at, _wire.decode(logged.item).data, logged.audience, logged.gone)


class Member:
    """This process's part in the organisation: leader or follower.

    Attributes:
        leads: whether it leads now.
        node: the lease and the log (the lease is polled while following).
        origin: this process's id in forwarded requests and the lease.
        remote: the leader's view of the followers' consoles: per origin, its reps and when it said so.
        pages: the leader's view of the followers' customer pages: per origin, the sessions whose page it holds
            (and when it said so, or sent a request of one of them).
        handler: the leader's handler of a forwarded request (set by the server; presence is handled here).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        settings = runtime.spec.cluster
        assert settings.redis_url is not None
        self.settings = settings
        self.origin = process_id()  # one id for the process: its forwards' origin and its lease owner
        self.node = LeaderLog(settings, runtime.loop, self._lost, owner=self.origin)
        self.log: OrgLog = self.node.log
        # Blocking reads need a socket timeout longer than the block: a client of their own.
        self.tail_log = OrgLog(connect(settings.redis_url, timeout=5.0), self.log.keys)
        self.aio = async_client(settings.redis_url)
        self.forwarder = Forwarder(self.aio, self.log.keys, self.origin, on_fail=self._failed)
        self.server: CommandServer | None = None
        self.handler: Callable[[Request], Reply | None] | None = None
        self.leads = False
        self.poll = min(0.5, settings.lease_ttl / 4)
        self.follower: LogFollower | None = None
        self.remote: dict[str, tuple[frozenset[str], float]] = {}
        self.pages: dict[str, tuple[frozenset[str], float]] = {}
        self.connecting: dict[str, int] = {}  # reps whose connect is forwarded, not answered yet
        self._tasks: list[asyncio.Task[None]] = []
        self._reaching: list[tuple[int, asyncio.Future[None]]] = []  # (seq, told when the copy is at it)
        self.halted = False
        self.stopped = False
        # Set when a console or page leaves: the presence task sends at once.  One task sends every
        # presence, so they reach Redis in order: tasks of their own could overtake one another, and
        # an older, smaller set arriving last would make the leader disconnect a rep who is here.
        self._presence_due = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ start

    def join(self) -> None:
        """At start (sync): rebuild from Redis if it has a state, then lead or follow."""
        for _ in range(50):
            if self._join():
                return
            time.sleep(0.1)  # another process took the lease a moment ago and is beginning the log
        holder = self.log.client.get(self.log.keys.lease)
        raise ClusterRefused(
            f"another process holds the lease of {self.log.keys.log} ({holder!r}) but has not begun its log "
            "(no snapshot) within 5 s: it may be stuck starting; this process cannot follow a log that does not exist"
        )

    def _join(self) -> bool:
        rt = self.rt
        snapshot = self.log.snapshot()
        if snapshot is not None:
            seq, data = snapshot
            engine = build_engine(rt.spec, rt.clock.now)
            restore_snapshot(engine, data)
            rt.replace_engine(engine)
            store = rt.store
            store.execute([(f"DELETE FROM {table}", ()) for table in ("events", "logins", "answers", "customers", "snippets")])
            store.save_all(engine)
            store.execute(rows_of(decode_side(self.log.snapshot_side())))
            store.record(self._before(seq))  # for resumes from before the snapshot (Fanout.restore)
            self.follower = LogFollower(self.log, engine, self._publish, after=seq, tail_log=self.tail_log)
            self.follower.on_entry = self._took
            self.follower.catch_up()
            store.save_all(engine)
        if self.node.try_lead():
            self._begin()
        elif snapshot is None:
            return False
        else:
            log.info("following %s from seq %d (led by %r)", self.log.keys.log, rt.engine.seq, self.log.client.get(self.log.keys.lease))
        return True

    def _before(self, seq: int) -> list[LoggedEvent]:
        """The log's events up to ``seq`` that it still has, contiguous and ending at ``seq`` (else none)."""
        events: list[LoggedEvent] = []
        after = "-"
        while True:  # in pages: the kept log may be tens of thousands of entries
            raw: Any = self.log.client.xrange(self.log.keys.log, after, f"{seq}-0", count=PAGE)
            for _id, fields in raw or ():
                if int(fields[b"f"]):
                    events += decode_entry(bytes(fields[b"d"])).events
            if len(raw or ()) < PAGE:
                break
            after = "(" + (raw[-1][0].decode() if isinstance(raw[-1][0], bytes) else str(raw[-1][0]))
        if not events or events[-1].seq != seq:
            return []
        start = len(events) - 1
        while start > 0 and events[start - 1].seq == events[start].seq - 1:
            start -= 1
        return events[start:]

    def _begin(self) -> None:
        rt = self.rt
        if self.follower is not None:
            self.follower.catch_up()  # with the lease held nobody else appends: this is the head
            if rt.engine.seq != self.log.head():
                raise ClusterRefused(f"this copy is at seq {rt.engine.seq}, the log at {self.log.head()}: it must not lead")
            rt.engine.lead()
            rt.store.save_all(rt.engine)
        self.node.begin(rt.engine, self.side())
        self.leads = True
        rt.cluster = self.node

    def start(self) -> None:
        """On the loop (Runtime.start): the tasks of the role."""
        loop = self.rt.loop
        if self.leads:
            self._serve()
            return
        assert self.follower is not None
        self.forwarder.start()
        self._tasks = [loop.create_task(self._tail()), loop.create_task(self._watch()), loop.create_task(self._tell_presence())]

    def halt(self) -> None:
        """Stop following, watching and serving at once (the server is stopping on a failure)."""
        self.halted = True
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        if self.server is not None:
            self.server.stop()

    def stop(self) -> None:
        self.stopped = True
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self.forwarder.stop()
        if self.server is not None:
            self.server.stop()
        if not self.leads and self.follower is not None:
            self.rt.store.save_all(self.rt.engine)
        self.node.close()
        self.tail_log.client.close()
        self._closing = self.rt.loop.create_task(self.aio.aclose())  # held: a task nobody holds may be collected

    # -------------------------------------------------------- following

    def _publish(self, logged: Sequence[LoggedEvent]) -> None:
        fanout = getattr(self.rt, "fanout", None)  # None while join() catches up, before the fan-out exists
        if fanout is not None:
            fanout.publish(logged)

    def _took(self, entry: Entry, events: list[LoggedEvent]) -> None:
        rt = self.rt
        rt.store.record(events, rows_of(entry.records))
        if entry.records:
            for listener in rt.on_records:
                listener(entry.records)
        if events and rt.after_commit:
            # The same listeners as the leader's steps (customer pages, co-browsing, metrics), after the fan-out.
            rt.applied([_event(e) for e in events])
        if self._reaching:
            self._reached()
        logins = getattr(rt, "logins", None)
        if logins is None:
            return
        for record in entry.records:
            match record:
                case LoginRecord():
                    if logins.get(record.id) is None:
                        logins.add(login_of(record))
                case LogoutRecord(id=login_id):
                    login = logins.get(login_id)
                    if login is not None:
                        logins.remove(login)
                        rt.on_remote_logout(login)
                case AnswerRecord():
                    pass  # in the store: looked up there after a takeover

    async def _tail(self) -> None:
        """Follow the log.  A Redis error (a restart, a cut) is retried with backoff: a follower only
        reads, and its copy stays exact (it goes on from its position).  A gap (the entries it needs
        were trimmed while it could not read) or anything else stops the process: a supervisor restarts
        it and it rebuilds from the snapshot at join (docs/operations.md)."""
        assert self.follower is not None
        delay, failed_at = TAIL_RETRY[0], -math.inf
        while self._following():
            try:
                await self.follower.run(block=1.0)
            except asyncio.CancelledError:
                raise
            except redis.RedisError as exc:
                now = time.monotonic()
                delay = TAIL_RETRY[0] if now - failed_at > 30.0 else min(delay * 2, TAIL_RETRY[1])
                failed_at = now
                log.warning("cannot read the log (%s): again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            except LogGap as exc:
                log.critical(
                    "this follower fell behind the log (%s): the entries it needs were trimmed; stopping "
                    "(started again, it rebuilds from the snapshot)", exc,
                )  # fmt: skip
                self.rt.fatal(exc)
                return
            except Exception as exc:  # this copy can no longer be trusted
                log.critical("following the log failed (%s): stopping", exc, exc_info=True)
                self.rt.fatal(exc)
                return

    async def _watch(self) -> None:
        while self._following():
            await asyncio.sleep(self.poll)
            try:
                # In a thread: a Redis that stalls must not stall this follower's loop (socket timeout lease_ttl / 3).
                led = await _shielded(asyncio.to_thread(self.node.try_lead), self.node.lease.release)
            except Exception as exc:
                log.warning("cannot ask for the lease (%s)", exc)
                continue
            if led and self.halted:
                self.node.lease.release()
                return
            if led:
                self._take_over()
                return

    def _take_over(self) -> None:
        rt = self.rt
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        try:
            self._begin()
        except Exception as exc:
            log.critical("taking over failed (%s): stopping", exc, exc_info=True)
            self.node.lease.release()
            rt.fatal(exc)
            return
        log.warning("took over %s at seq %d under epoch %s", self.log.keys.log, rt.engine.seq, self.node.lease.epoch)
        self.forwarder.stop()  # its pending calls fail (NoLeader), its reply reader lets go of its connection
        self._reached()
        rt.took_over()
        self._serve()

    def presence(self) -> frozenset[str]:
        """The reps with a console on this process (or on their way in)."""
        reps = {link.rep for link in self.rt.fanout.links()}
        return frozenset(reps | {rep for rep, n in self.connecting.items() if n})

    def _presence_request(self) -> Request:
        return Request("presence", "", 0, 0.0, reps=sorted(self.presence()), sessions=sorted(self.rt.pages_here()))

    def presence_changed(self) -> None:
        """A console or a customer page left this follower: tell the leader now (it decides about grace)."""
        if not self.leads:
            self._presence_due.set()

    def _following(self) -> bool:
        """Whether the follower's loops go on.  They check it each round as well as being cancelled: a
        cancellation can be lost (redis-py may swallow one mid-command; 3.11's ``wait_for`` returned the
        result when its event was set in the same iteration), and a presence loop that outlived a
        take-over kept telling a leader that was now this process, then held the event loop's shutdown."""
        return not (self.leads or self.halted or self.stopped)

    async def _tell_presence(self) -> None:
        while self._following():
            self._presence_due.clear()
            await self.forwarder.tell(self._presence_request())  # what is here now, read as it is sent
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PRESENCE_EVERY):
                    await self._presence_due.wait()

    def _reached(self) -> None:
        at = self.rt.engine.seq
        waiting, self._reaching = self._reaching, []
        for seq, future in waiting:
            if seq <= at or self.leads:
                if not future.done():
                    future.set_result(None)
            else:
                self._reaching.append((seq, future))

    async def reach(self, seq: int, timeout: float = FORWARD_TIMEOUT) -> None:
        """Until this process's engine is at ``seq`` (a forwarded step's, from its reply); NoLeader after ``timeout``."""
        if self.leads or self.rt.engine.seq >= seq:
            return
        future: asyncio.Future[None] = self.rt.loop.create_future()
        self._reaching.append((seq, future))
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError as exc:
            raise NoLeader(f"this process did not reach seq {seq} within {timeout:g} s") from exc

    async def call(self, request: Request, timeout: float = FORWARD_TIMEOUT) -> Reply:
        """Forward ``request`` to the leader (raises forward.NoLeader)."""
        rep = request.rep if request.kind == "connect" else ""
        if rep:
            self.connecting[rep] = self.connecting.get(rep, 0) + 1
        try:
            return await self.forwarder.call(request, timeout)
        finally:
            if rep:
                self.connecting[rep] -= 1

    # ---------------------------------------------------------- leading

    def side(self) -> bytes:
        """The snapshot's side part now, on the loop (at a takeover or start, before anything else runs)."""
        return self._side(self.rt.store.reader(), self.rt.clock.now())

    def _side(self, db: sqlite3.Connection, now: float) -> bytes:
        """The side part from ``db`` (a Store.reader, closed here): the live logins, answers within the
        resume window, unexpired customer tokens, snippets.  Runs in a thread."""
        try:
            return encode_side(db, now, now - self.rt.spec.server.resume_window)
        finally:
            db.close()

    def _snapshot_parts(self) -> tuple[int, bytes, sqlite3.Connection, float]:
        # On the loop, in one turn: the engine at seq and a read transaction of the store at the same
        # step (steps commit to SQLite on the loop, so nothing can come between the two).
        seq, data = encode_snapshot(self.rt.engine)
        return seq, data, self.rt.store.reader(), self.rt.clock.now()

    async def snapshot(self) -> None:
        """The leader's periodic snapshot (housekeeping): the engine state on the loop, the side part
        built and encoded in a thread from a read transaction pinned at the same seq, so the loop does
        not stall on a big store and no step's rows race the read."""
        seq, data, db, now = self._snapshot_parts()
        side = await asyncio.to_thread(self._side, db, now)
        if self.leads and not self.halted:  # it may have stepped down meanwhile
            self.node.write_snapshot(seq, data, side)

    def snapshot_now(self) -> None:
        """:meth:`snapshot` in one go (housekeeping with no loop running: tools and tests)."""
        seq, data, db, now = self._snapshot_parts()
        self.node.write_snapshot(seq, data, self._side(db, now))

    def holds(self, rep: str) -> bool:
        """Whether a live follower has a console of ``rep`` (the leader's presence check)."""
        now = time.monotonic()
        return any(rep in reps and now - seen < PRESENCE_TTL for reps, seen in self.remote.values())

    def holds_page(self, session: str) -> bool:
        """Whether a live follower has a customer page of ``session`` (the leader's grace check)."""
        now = time.monotonic()
        return any(session in sessions and now - seen < PRESENCE_TTL for sessions, seen in self.pages.values())

    def _serve(self) -> None:
        # A leader frozen past its lease (SIGSTOP, a VM paused) that wakes with a batch in hand pushes it
        # back rather than run it: its lease is no longer valid by its own clock.
        self.server = CommandServer(self.aio, self.log.keys, self._handle, on_fail=self._failed, ready=lambda: self.node.lease.held)
        self.server.idle = self._expire_presence
        self.server.start()

    def _handle(self, request: Request) -> Reply | None:
        if request.kind == "presence":
            if request.origin == self.origin:
                return None  # sent while this process followed: what it holds now is its own
            now = time.monotonic()
            before = self.remote.get(request.origin, (frozenset(), 0.0))[0]
            self.remote[request.origin] = (frozenset(request.reps), now)
            pages = frozenset(request.sessions)
            had = self.pages.get(request.origin, (frozenset(), 0.0))[0]
            self.pages[request.origin] = (pages, now)
            self.rt.settle_reps(before - set(request.reps))
            if pages != had:
                self.rt.pages_moved(pages - had, had - pages, PRESENCE_TTL)  # see CustomerDesk.pages_moved
            return None
        if request.kind == "connect":  # held at once, whatever its presence said before
            reps, _ = self.remote.get(request.origin, (frozenset(), 0.0))
            self.remote[request.origin] = (reps | {request.rep}, time.monotonic())
        assert self.handler is not None, "the server sets the handler before it serves"
        reply = self.handler(request)  # None: answered later (a reload round)
        if request.kind in _PAGE_HERE and (session := request.session or (reply.session if reply is not None else "")):
            pages, _ = self.pages.get(request.origin, (frozenset(), 0.0))  # held at once, too
            self.pages[request.origin] = (pages | {session}, time.monotonic())
        return reply

    def _expire_presence(self) -> None:
        now = time.monotonic()
        for origin, (reps, seen) in list(self.remote.items()):
            if now - seen >= PRESENCE_TTL:
                del self.remote[origin]
                log.warning("%s has not told its consoles for %.1f s: its reps count as gone", origin, now - seen)
                self.rt.settle_reps(reps)
        for origin, (pages, seen) in list(self.pages.items()):
            if now - seen >= PRESENCE_TTL:
                del self.pages[origin]
                if pages:
                    log.warning("%s has not told its customer pages for %.1f s: %d count as gone", origin, now - seen, len(pages))
                self.rt.pages_moved(frozenset(), pages)

    def _failed(self, exc: BaseException) -> None:
        """A forwarding task ended (a bug): a process that can no longer forward or serve forwards stops."""
        if not self.halted:
            self.rt.fatal(exc)

    def _lost(self, reason: str) -> None:
        self.leads = False
        self.rt.lost_lead(reason)
