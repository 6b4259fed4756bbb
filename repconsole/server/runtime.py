"""The engine on a server: persistence, fan-out, timers, one step at a time.

:class:`Runtime` owns the :class:`~repconsole.core.engine.QueueEngine`, its
:class:`~repconsole.server.store.Store` and its
:class:`~repconsole.server.fanout.Fanout`, and defines the server's unit of
change, the **step**::

    with runtime.step() as rows:
        engine.accept(rep, session_id)      # any engine calls, no await
        rows.append(Store.answer_row(...))  # rows to commit with it
    # committed to SQLite, then published to consoles and customers

A step runs synchronously on the event loop, so no other step can
interleave; on exit everything the engine emitted is written in one
transaction *before* any of it is sent.  If that write fails, the engine is
ahead of the disk and nothing it did may be confirmed: the runtime calls
``on_fatal`` (the server stops) and raises :class:`PersistenceFailure`.

Time: the runtime, its engine and the customer desk read one
:class:`~repconsole.server.timers.ServerClock`: the wall clock in
production (rule deadlines are absolute and must survive restarts), a
:class:`~repconsole.server.timers.VirtualClock` in tests.
:meth:`Runtime.arm` keeps one timer at :meth:`~QueueEngine.next_deadline`,
re-armed after every step; housekeeping runs every few seconds on the same
clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from repconsole.core import persist
from repconsole.core.engine import Event, QueueEngine
from repconsole.protocol import RepData
from repconsole.server.auth import LoginSession, LoginSessions
from repconsole.server.config import SiteSpec, build_engine
from repconsole.server.fanout import Fanout, encode_event
from repconsole.server.store import PRUNE_BATCH, Cutoffs, Statement, Store
from repconsole.server.timers import ServerClock, Timer, WallClock

if TYPE_CHECKING:  # imported at run time only with [cluster] (redis-py: the cluster extra)
    from repconsole.server.cluster.member import Member
    from repconsole.server.cluster.node import LeaderLog
    from repconsole.server.cluster.records import Record

__all__ = ["Answers", "PersistenceFailure", "Runtime", "command_digest"]

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = 5.0
EXPIRED_LOGINS_KEPT = 86400.0  # so that a late resume hears "expired", not "unknown"
CUSTOMER_TOKENS_KEPT = 86400.0
# Ended sessions the engine keeps whole between steps: none.  The store has
# them (Store.load_session); a finished session leaves nothing in memory.
ENDED_IN_MEMORY = 0
DEAD_KEYS_KEPT = 86400.0  # as the engine's _forget_dead_keys(): "expired" beats "unknown"


class PersistenceFailure(Exception):
    """A step could not be written: the server must stop without confirming it."""


class Answers:
    """Command answers per login session, kept for the resume window: a retried
    request id gets the stored answer and the command does not run twice.

    They live in the store only (the step that ran a command wrote its answer
    with it): a lookup is one primary-key read, and memory holds none of them,
    however many commands the resume window covers (only, per live login, the
    highest integer id it stored an answer under: a command above it skips the read).  The store's housekeeping
    forgets them when the window has passed (``Store.prune_batch``) and at logout.

    Each answer keeps what it answered (``command``, a digest of the command's
    name and arguments: see :func:`command_digest`), so that an id reused for
    another command can be told from a retry.  An empty digest (an answer
    stored by an older server) matches any command."""

    def __init__(self, store: Store, keep: float) -> None:
        self.store = store
        self.keep = keep
        # Per login session: no answer of it is stored under an integer request id above
        # this.  Consoles number their requests 1, 2, 3...: a new command's id is above
        # it, and needs no read of the store to know it was never answered (a read was
        # a third of the store's work per command).  Learned from the store on a login's
        # first command after a start; one int per live login, forgotten with it.
        self._above: dict[int, int] = {}

    def may_have(self, login: int, request_id: int | str) -> bool:
        """Whether an answer to ``request_id`` may be stored for ``login`` (False: it cannot be)."""
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return True
        above = self._above.get(login)
        if above is None:
            above = self._above[login] = max((int(key) for key in self.store.answer_keys(login) if key[:1] != '"'), default=0)
        return request_id <= above

    def stored(self, login: int, request_id: int | str) -> None:
        """An answer to ``request_id`` was stored for ``login`` (after :meth:`may_have` for it)."""
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            above = self._above.get(login)
            if above is not None and request_id > above:
                self._above[login] = request_id

    def forget(self, login: int) -> None:
        """The login session is over (logged out, expired): its answers went with it."""
        self._above.pop(login, None)

    def get(self, login: int, request: str) -> bytes | None:
        hit = self.store.answer(login, request)
        return hit[1] if hit is not None else None

    def lookup(self, login: int, request: str, now: float) -> tuple[bytes, bytes] | None:
        """The stored answer to ``request`` and the digest of the command it answered, if it
        is not older than the window at ``now`` (exactly: housekeeping forgets it later)."""
        hit = self.store.answer(login, request)
        return (hit[1], hit[2]) if hit is not None and hit[0] >= now - self.keep else None

    def put(self, login: int, request: str, at: float, reply: bytes, command: bytes = b"") -> None:
        """Store an answer on its own (a command's step stores its answer with its changes)."""
        self.store.execute([Store.answer_row(login, request, at, reply, command)])
        self._above.pop(login, None)  # whatever its id was: learned from the store again


def command_digest(name: str, args: dict[str, Any]) -> bytes:
    """What a command is, for telling a retry from a reused id: SHA-256 of its name and
    its arguments as canonical JSON (keys sorted), so that a retry whose arguments were
    encoded in another order is still the same command.  Never raises."""
    try:
        canonical = msgspec.json.encode([name, args], order="sorted")
    except RecursionError:  # arguments nested deeper than any command's: refused as invalid anyway
        canonical = msgspec.json.encode([name, "too deep"])
    return hashlib.sha256(canonical).digest()


class Runtime:
    """One site's engine with its store and fan-out, on one event loop.

    Attributes:
        clock: the server's clock: engine times, deadlines and every timer.
        engine: the queue engine (tests may read it; change it only in a step).
        store: the SQLite store.
        fanout: the console fan-out.
        logins: live login sessions.
        answers: stored command answers.
        after_commit: called with each step's events once they are on disk
            (the customer desk listens here).
        housekeepers: called every few seconds with the time (rate limiters
            and token indexes prune themselves there).
        repairs: what loading the stored state had to repair (config changed).
    """

    def __init__(
        self,
        spec: SiteSpec,
        data_dir: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        clock: ServerClock | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.spec = spec
        self.clock: ServerClock = clock if clock is not None else WallClock(loop=loop)
        self.loop = loop
        self.on_fatal = on_fatal
        # Checkpoints run in a thread at housekeeping (keep_house), not inside a step's commit on the loop.
        self.store = Store.open(data_dir, auto_checkpoint=False)
        self.engine: QueueEngine = build_engine(spec, self.clock.now)
        self._events: list[Event] = []
        self._depth = 0
        self._rows: list[Statement] = []  # the outermost step's rows: a step inside it adds to them
        self.engine.subscribe(self._events.append)
        self.after_commit: list[Callable[[Sequence[Event]], None]] = []
        # Called every few seconds with the wall-clock time, to forget what aged out.
        self.housekeepers: list[Callable[[float], None]] = []
        self.repairs: list[str] = []

        state = self.store.load_state()
        if state is None:
            self.store.save_all(self.engine)
        else:
            self.repairs = persist.load(self.engine, state)
            if self.repairs:
                self.store.save_all(self.engine)
        # [cluster]: lead the organisation and log every step, or follow it (issue 15; docs/architecture.md
        # "Cluster").  Before the fan-out and the logins: a process that joins rebuilds both from Redis.
        self.cluster: LeaderLog | None = None  # set while this process leads
        self.member: Member | None = None
        self.records: list[Record] = []  # the current step's records, for the log (cluster only)
        self.on_logout: Callable[[LoginSession], None] | None = None  # a login ended on another process
        self.on_lead: list[Callable[[], None]] = []  # called when this follower takes over
        self.on_records: list[Callable[[Sequence[Record]], None]] = []  # a follower took an entry's records
        # The sessions whose customer page is connected here (the customer desk's): a follower tells the leader.
        self.pages_here: Callable[[], Iterable[str]] = tuple
        # (Leading) followers now hold the pages of these sessions, and no longer those: see CustomerDesk.pages_moved.
        self.on_pages: list[Callable[[frozenset[str], frozenset[str], float], None]] = []
        if spec.cluster.redis_url is not None:
            self._join()
        settings = spec.server
        self.fanout = Fanout(
            loop, seq=self.engine.seq, resume_window=settings.resume_window, clock=self.clock.now,
            slow_limit=settings.send_buffer, linger=settings.ping_timeout,
        )  # fmt: skip
        self.fanout.restore(self.store.load_events())

        self.logins = LoginSessions()
        self._next_login = self.store.next_login_id()
        for login in self.store.load_logins():
            self.logins.add(login)
        self.answers = Answers(self.store, settings.resume_window)

        self._timer: Timer | None = None
        self._housekeeping: Timer | None = None
        self._house_task: asyncio.Task[None] | None = None
        self.prune_rows = PRUNE_BATCH  # per kind and batch, see keep_house
        self.boot_time = self.clock.now()
        # Nobody is connected to a server that just started, but the consoles that
        # were are on their way back: to the server a restart is every console
        # going silent at once, at boot_time.  A silent console counts as
        # connected until its pings have had time to fail (ping_interval +
        # ping_timeout, see Server._keepalive), so a rep whose console resumes
        # within that window never flickers offline, and a reconnect storm sends
        # no presence event at all (2,000 reps coming back would otherwise be
        # 2 x 2,000 `rep` events to each of 2,000 consoles).  Whoever has not
        # resumed by then is disconnected (settle_presence), their grace period
        # counted from boot_time: the time they had no server is not held
        # against them, and their sessions fall back exactly when they did
        # before (boot_time + grace_period).
        self.returning: set[str] = {rep.id for rep in self.engine.reps.values() if rep.connected}
        self.restart_window = min(settings.ping_interval + settings.ping_timeout, self.engine.site.grace_period)
        self._settle: Timer | None = None

    # ------------------------------------------------------------- steps

    @contextmanager
    def step(self) -> Iterator[list[Statement]]:
        """A unit of change: commit what the engine emitted (and the rows given), then publish.

        A step inside another is part of it: its rows go with the outer one's, committed once.
        """
        if self._depth == 0:
            self._rows = []
        rows = self._rows
        self._depth += 1
        try:
            yield rows
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._rows = []
                self._commit(rows)

    def _commit(self, rows: Sequence[Statement]) -> None:
        events, self._events[:] = list(self._events), []
        records, self.records = self.records, []
        # A step that changed the directory (a reload) reaches the followers even if it emitted no event.
        directory = self.cluster is not None and self.engine.directory_changed
        if not events and not rows and not records and not directory:
            return
        logged = [encode_event(e) for e in events]
        try:
            if events:
                self.store.commit(self.engine, events, logged, rows)
                if self.cluster is not None:  # in the log before anything is confirmed
                    self.cluster.append(self.engine, events, logged, records)
                elif self.member is not None:
                    raise PersistenceFailure("a follower's engine emitted events: only the leader runs commands")
            else:
                self.store.execute(rows)
                if self.cluster is not None and (records or directory):
                    self.cluster.note(records, self.engine if directory else None)
        except Exception as exc:
            log.critical("cannot persist a step; stopping so that nothing unsaved is confirmed", exc_info=True)
            self.fatal(exc)
            raise PersistenceFailure(str(exc)) from exc
        # A rep who signed in (or changed status) may wait for company: see Fanout.publish.  A
        # rep who went offline may not: their sessions' grace period is running.
        self.fanout.publish(logged, lazy=all(isinstance(e.data, RepData) and e.data.rep.connected for e in events))
        self.applied(events)
        # Sessions this step ended are on disk, and everyone who had to hear of them has.
        self.engine.forget_ended(ENDED_IN_MEMORY)
        self.arm()

    def applied(self, events: Sequence[Event]) -> None:
        """Tell the after-commit listeners of ``events``: a step's, or (a follower) a log entry's it took."""
        for listener in self.after_commit:
            try:
                listener(events)
            except Exception:  # a listener's bug must not undo a committed step
                log.exception("after-commit listener failed")

    # ----------------------------------------------------------- cluster

    def _join(self) -> None:
        from repconsole.server.cluster.member import Member

        self.member = Member(self)
        try:
            self.member.join()
        except BaseException:
            self.member.node.close()
            self.store.close()
            raise

    @property
    def follows(self) -> bool:
        """A cluster member that does not lead: it forwards what consoles ask of the engine."""
        return self.member is not None and not self.member.leads

    def replicate(self, record: Record) -> None:
        """A record of the current step for every process (cluster only; the step writes its own rows)."""
        if self.member is not None:
            self.records.append(record)

    def replace_engine(self, engine: QueueEngine) -> None:
        """A process joining its cluster rebuilt the engine from Redis (before anyone holds the old one)."""
        self.engine = engine
        engine.subscribe(self._events.append)

    def fatal(self, exc: BaseException) -> None:
        if self.member is not None:
            self.member.halt()  # nothing more from or to the cluster: no takeover by a process that is stopping
        if self.on_fatal is not None:
            self.on_fatal(exc)

    def lost_lead(self, reason: str) -> None:
        log.critical("stopping: this server no longer leads its organisation (%s)", reason)
        self.fatal(PersistenceFailure(reason))

    def took_over(self) -> None:
        """This follower leads now: fresh answers and login numbers from the store, timers armed, and
        every rep the engine has connected is returning (see settle_presence), from now."""
        self.answers = Answers(self.store, self.spec.server.resume_window)
        self._next_login = self.store.next_login_id()
        self.boot_time = self.clock.now()
        self.returning = {rep.id for rep in self.engine.reps.values() if rep.connected}
        if self.returning:
            self._settle = self.clock.call_later(self.restart_window, self.settle_presence)
        self.arm()
        for listener in self.on_lead:
            listener()

    def held(self, rep: str) -> bool:
        """Whether ``rep`` has a console on this process or (leading a cluster) on a live follower."""
        return self.fanout.has_links(rep) or (self.member is not None and self.member.holds(rep))

    def settle_reps(self, reps: set[str] | frozenset[str]) -> None:
        """Reps a follower no longer holds (their console left it, or it died): disconnected unless held elsewhere."""
        gone = sorted(rep for rep in reps if rep in self.engine.reps and not self.held(rep) and rep not in self.returning)
        if not gone:
            return
        try:
            with self.step():
                for rep in gone:
                    if self.engine.reps[rep].connected:
                        self.engine.rep_disconnected(rep)
        except PersistenceFailure:
            return

    def pages_moved(self, held: frozenset[str], left: frozenset[str], at_least: float = 0.0) -> None:
        """(Leading) what a follower's presence changed of the customer pages it holds (see on_pages)."""
        for listener in self.on_pages:
            listener(held, left, at_least)

    def on_remote_logout(self, login: LoginSession) -> None:
        self.answers.forget(login.id)
        if self.on_logout is not None:
            self.on_logout(login)

    # ------------------------------------------------------------ logins

    def new_login(self, rep: str, token_hash: bytes) -> LoginSession:
        now = self.clock.now()
        login = LoginSession(self._next_login, token_hash, rep, now, now + self.spec.server.token_lifetime)
        self._next_login += 1
        self.logins.add(login)
        return login

    def login_step(self, rep: str, token_hash: bytes) -> LoginSession:
        """A new login session of ``rep`` and its ``rep_connected``, in one step (logged in a cluster)."""
        from repconsole.server.cluster.records import LoginRecord

        login = self.new_login(rep, token_hash)
        with self.step() as rows:
            rows.append(Store.login_row(login))
            self.replicate(LoginRecord.of(login))
            self.engine.rep_connected(login.rep)
        return login

    # ------------------------------------------------------------ timers

    def start(self) -> None:
        if self.member is not None:
            self.member.start()
        self.arm()
        self._housekeeping = self.clock.call_later(HOUSEKEEPING_EVERY, self._keep_house)
        if self.returning and not self.follows:
            self._settle = self.clock.call_later(self.restart_window, self.settle_presence)

    def settle_presence(self) -> None:
        """The restart window is over: reps connected before the restart whose console has not
        come back are disconnected now, their grace period counted from the start."""
        self._settle = None
        returning, self.returning = self.returning, set()
        try:
            with self.step():
                for rep_id in sorted(returning):
                    if rep_id in self.engine.reps and not self.held(rep_id):
                        self.engine.rep_disconnected(rep_id, since=self.boot_time)
        except PersistenceFailure:
            return  # the server is stopping

    def stop(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None
        if self._house_task is not None:
            self._house_task.cancel()  # between two batches: each is a transaction of its own
            self._house_task = None
        self.fanout.flush()
        if self.member is not None:
            self.member.stop()
            self.cluster = None

    def arm(self) -> None:
        """Keep one timer at the engine's next deadline (a follower's engine runs no timers)."""
        deadline = self.engine.next_deadline() if not self.follows else None
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None and self._timer.pending() and self._timer.when <= deadline:
            return  # it fires first, and its tick re-arms for the rest
        if self._timer is not None:
            self._timer.cancel()
        # At the deadline itself, on the server's clock: the engine's
        # advance() fires what is due at the clock's time (WallClock takes
        # care of firing a hair late, and of wall-clock jumps).
        self._timer = self.clock.call_at(deadline, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            with self.step():
                self.engine.advance()
        except PersistenceFailure:
            return  # the server is stopping
        except Exception:
            # A bug in a rule must not stop every later rule and grace period.
            log.exception("advancing the engine's timers failed")
        self.arm()

    def _keep_house(self) -> None:
        # Re-armed first: a failing keeper must not stop housekeeping for good.
        self._housekeeping = self.clock.call_later(HOUSEKEEPING_EVERY, self._keep_house)
        if self._house_task is not None and not self._house_task.done():
            return  # the last pass is still going (a big backlog): it goes on, no second one beside it
        if not self.loop.is_running():
            # Nobody to yield to (a test moving a virtual clock with no loop running): the whole pass now.
            try:
                self.housekeeping()
            except Exception:
                log.exception("housekeeping failed")
            return
        self._house_task = self.loop.create_task(self.keep_house())

    def _forget(self) -> Cutoffs:
        """What housekeeping forgets in memory, at once; returns what the store is to forget."""
        now = self.clock.now()
        floor = self.fanout.prune()
        if self.cluster is not None:  # trim the log behind the last snapshot (written just before)
            self.cluster.trim(floor)
        for login in self.logins.expired_before(now - EXPIRED_LOGINS_KEPT):
            self.logins.remove(login)
            self.answers.forget(login.id)
        for keeper in self.housekeepers:
            keeper(now)
        return Cutoffs(
            events_through_seq=floor,
            answers_before=now - self.spec.server.resume_window,
            logins_before=now - EXPIRED_LOGINS_KEPT,
            customers_before=now - CUSTOMER_TOKENS_KEPT,
            keys_before=now - DEAD_KEYS_KEPT,
        )

    def housekeeping(self) -> None:
        """Forget what has aged out (resume events, answers, expired tokens): one whole pass, in one go."""
        if self.cluster is not None and self.member is not None and self.cluster.snapshot_due():
            self.member.snapshot_now()
        self.store.prune(self._forget())
        self.store.checkpoint()

    async def keep_house(self) -> None:
        """The same pass as the server runs it: the store's part in batches of at most
        :data:`~repconsole.server.store.PRUNE_BATCH` rows a kind, each a short transaction
        of its own, with a turn of the loop between them, then a WAL checkpoint in a
        thread.  A day-old burst of 300,000 customer tokens expiring at once then costs
        many short batches, never one stall of the loop (the whole pass used to hold it
        for up to half a second)."""
        try:
            if self.cluster is not None and self.member is not None and self.cluster.snapshot_due():
                await self.member.snapshot()  # the state into Redis (its side part built in a thread)
            cutoffs = self._forget()
            while self.store.prune_batch(cutoffs, self.prune_rows):
                await asyncio.sleep(0)
            # The WAL into the database, off the loop (see Store.checkpoint).
            await asyncio.to_thread(self.store.checkpoint)
        except Exception:
            log.exception("housekeeping failed")
