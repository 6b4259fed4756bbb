"""Co-browsing on the server: recorders on ``/cobrowse``, watchers on ``/rep`` and on a ticket's browser page.

The customer's page (the help-link snippet, after the customer consented)
attaches to its session with the customer's session token (the one
``/customer`` issued) and streams rrweb batches; the relay
(:mod:`repconsole.core.cobrowse`) checks and buffers them; the reps in the
session who watch get them as ``cobrowse`` messages, beside the engine's
feed (no ``seq``: a side channel, never stored, never replayed on resume).

* **Recorder** (``/cobrowse``): ``attach`` binds the socket to the one
  session its token opens; a newer page's attach replaces it (navigation,
  reload).  ``record``, ``page`` and ``stop`` go to the relay; the recorder
  hears ``snapshot_please``, ``watching`` (the reps' names) and ``pointer``.
* **Reps** (``/rep``): ``cobrowse_watch``, ``cobrowse_unwatch``,
  ``cobrowse_point`` and ``cobrowse_ticket``, for the session's owner and
  participants only, answered here, not by the engine.  A rep who leaves
  or loses the session stops watching it.
* **Tickets**: ``cobrowse_ticket`` gives a single-use address of a page
  (``/cobrowse/view?ticket=…``) whose socket (``/cobrowse/watch?ticket=…``)
  redeems the ticket within :data:`TICKET_LIFETIME` seconds and then
  watches like a console, as the rep, for as long as the rep's login and
  place in the session last.

Each watching connection has a :class:`Viewer`: a writer task that sends
what the connection has not had yet, one frame at a time, each only once
the connection's write buffer drained (websockets' flow control).  Nothing
is queued per connection: a console that reads slowly falls behind and,
once the batches it missed are gone from the relay's buffer, skips to the
newest full snapshot.  A connection whose write buffer is over the
fan-out's limit anyway (its console does not read its feed either) is
closed with 4408, as the fan-out does.

Nothing of the page is logged or stored.

**Across processes** (a cluster, docs/architecture.md "Co-browse relays"):
the desk talks to a :class:`RelayBackend`.  :class:`LocalRelay` (the
default) has nothing to do: the recorder and every watcher are on this
process.  With ``[cluster] redis_url``,
:class:`~repconsole.server.cluster.relay.RedisRelay` carries the stream
over Redis pub/sub to the processes whose consoles watch it (their streams
are *mirrors*, :meth:`Relay.relayed <repconsole.core.cobrowse.Relay.relayed>`),
and their watchers, pointers and asks for the buffer back to the process
that holds the recorder.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from repconsole.core.cobrowse import Ask, Changed, Effect, Limits, Refuse, Relay, Stream, WatchersChanged
from repconsole.core.engine import Event
from repconsole.core.errors import CommandError
from repconsole.core.model import Session, SessionState
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    Attach,
    Attached,
    CloseCode,
    CobrowseName,
    Command,
    Error,
    ErrorReason,
    NoResult,
    PageInfo,
    PointArgs,
    Pointer,
    ProtocolError,
    Reason,
    Record,
    RecorderReply,
    Result,
    SessionData,
    SnapshotPlease,
    StopSharing,
    TicketResult,
    Watching,
    WatchResult,
    encode,
    invalid_field,
    parse_recorder,
)
from repconsole.server.auth import LoginSession, hash_token, new_token
from repconsole.server.config import ServerSettings
from repconsole.server.customers import CustomerDesk
from repconsole.server.fanout import LINGER, SLOW_LIMIT, close_slow
from repconsole.server.runtime import Runtime
from repconsole.server.timers import Timer

__all__ = ["TICKET_LIFETIME", "CobrowseDesk", "LocalRelay", "RelayBackend", "Viewer"]

log = logging.getLogger(__name__)

TICKET_LIFETIME = 30.0
VIEW_PATH = "/cobrowse/view"
# A recorder that does not read what it is told (a pointer per rep move) is not written to past this.
RECORDER_LIMIT = 256 * 1024


class RelayBackend(Protocol):
    """Where a stream goes beyond this process (docs/architecture.md "Co-browse relays").

    Called by the desk, on the event loop, never awaited: a backend queues
    what it sends.  What it hears from other processes it gives back
    through the desk's public methods (:meth:`CobrowseDesk.apply`,
    :meth:`CobrowseDesk.remote_watchers`, :meth:`CobrowseDesk.replaced`,
    :meth:`CobrowseDesk.tell_recorder`, :meth:`CobrowseDesk.end`).
    """

    def start(self, desk: CobrowseDesk) -> None:
        """The desk it serves (once, before anything else)."""

    def recording(self, session: str) -> None:
        """A recorder of ``session`` attached here: this process records it now."""

    def changed(self, stream: Stream) -> None:
        """The stream this process records has new batches or a new status."""

    def watching(self, session: str, reps: tuple[str, ...]) -> None:
        """The reps who watch ``session`` on this process changed; it does not record it here."""

    def tell(self, session: str, frame: bytes) -> None:
        """A frame for the session's recorder, which is not on this process (a rep's pointer)."""

    def ended(self, session: str, detail: str) -> None:
        """The session ended: nothing more of it is relayed."""

    def revoked(self, session: str, rep: str) -> None:
        """``rep`` is no longer in the session (this process saw it in its engine): their watches elsewhere end too."""

    def close(self) -> None:
        """The server stops."""


class LocalRelay:
    """One process: the recorder and every watcher are here; nothing to carry."""

    def start(self, desk: CobrowseDesk) -> None:
        pass

    def recording(self, session: str) -> None:
        pass

    def changed(self, stream: Stream) -> None:
        pass

    def watching(self, session: str, reps: tuple[str, ...]) -> None:
        pass

    def tell(self, session: str, frame: bytes) -> None:
        pass

    def ended(self, session: str, detail: str) -> None:
        pass

    def revoked(self, session: str, rep: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Closing(Exception):
    """The viewer's connection is being closed: its writer stops."""


class _Watch:
    __slots__ = ("cursor", "status")

    def __init__(self) -> None:
        self.cursor: int | None = None  # the number of the next batch it gets (None: the buffer from its start)
        self.status = b""  # the last status frame it got


class Viewer:
    """One connection that watches: a console's ``/rep`` socket, or a browser's ``/cobrowse/watch``.

    Attributes:
        watches: the sessions it watches, each with what it has been sent.
        finals: frames it gets before anything else (a watch's last status).
        ticket: a ticket's page: closed once it watches nothing any more.
    """

    def __init__(
        self, relay: Relay, ws: ServerConnection, rep: str, login: int, *, ticket: bool = False,
        limit: int = SLOW_LIMIT, linger: float = LINGER,
    ) -> None:  # fmt: skip
        self.relay = relay
        self.limit = limit  # bytes waiting unsent before it is closed as too slow
        self.linger = linger
        self.ws = ws
        self.rep = rep
        self.login = login
        self.ticket = ticket
        self.watches: dict[str, _Watch] = {}
        self.finals: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Viewer({self.rep!r}, {sorted(self.watches)}, ticket={self.ticket})"

    def poke(self) -> None:
        """Something is new for it: write it (now, or once what it is writing is written)."""
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def final(self, session: str, frame: bytes) -> None:
        """Its watch of ``session`` ends with ``frame`` (the session ended)."""
        self.watches.pop(session, None)
        self.finals.append(frame)
        self.poke()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            while self._wake.is_set():
                self._wake.clear()
                await self._write()
            if self.ticket and not self.watches:
                await self.ws.close(CloseCode.NORMAL, "nothing more to watch")
        except (ConnectionClosed, _Closing):
            pass

    async def _send(self, frame: bytes) -> None:
        transport = self.ws.transport
        if transport is not None and transport.get_write_buffer_size() > self.limit:
            log.info("closing a slow connection of %s (4408)", self.rep)
            asyncio.get_running_loop().create_task(close_slow(self.ws, "too slow: resume", self.linger))
            raise _Closing
        await self.ws.send(frame, text=True)  # returns once the write buffer is under websockets' limit

    async def _write(self) -> None:
        while True:
            progress = False
            while self.finals:
                await self._send(self.finals.popleft())
                progress = True
            for session in list(self.watches):
                watch = self.watches.get(session)
                stream = self.relay.stream(session)
                if watch is None or stream is None:
                    continue
                while (batch := stream.batch_from(watch.cursor)) is not None:
                    for frame in batch.frames():
                        await self._send(frame)
                    watch.cursor = batch.no + 1
                    progress = True
                    if self.watches.get(session) is not watch or self.relay.stream(session) is not stream:
                        break
                else:
                    status = stream.status_frame()
                    if status != watch.status:
                        watch.status = status
                        await self._send(status)
                        progress = True
            if not progress:
                return


@dataclass(frozen=True, slots=True)
class _Ticket:
    session: str
    rep: str
    login: int
    expires_at: float  # on the clock's monotonic reading


class CobrowseDesk:
    """Every recorder and every watcher, and the relay between them.

    Args:
        base_url: the address a browser reaches the server at, for a ticket's
            page; given the Host header the rep's console connected with.
    """

    def __init__(
        self, runtime: Runtime, customers: CustomerDesk, *, base_url: Callable[[str | None], str], backend: RelayBackend | None = None
    ) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.clock = runtime.clock
        self.customers = customers
        self.base_url = base_url
        settings = runtime.spec.server
        limits = Limits(buffer_bytes=settings.cobrowse_buffer, rate=settings.cobrowse_rate)
        self.relay = Relay(self.clock.now, monotonic=self.clock.monotonic, limits=limits)
        self._recorders: dict[str, ServerConnection] = {}
        self._viewers: dict[ServerConnection, Viewer] = {}
        self._tickets: dict[bytes, _Ticket] = {}
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        runtime.after_commit.append(self._on_events)
        runtime.housekeepers.append(self._prune)
        if backend is None and runtime.spec.cluster.redis_url is not None:
            from repconsole.server.cluster.relay import RedisRelay  # redis-py: only with [cluster]

            backend = RedisRelay.from_settings(runtime.spec.cluster)
        self.backend: RelayBackend = backend if backend is not None else LocalRelay()
        self.backend.start(self)

    def reconfigure(self, settings: ServerSettings) -> None:
        """New limits (a reload): for the streams that start from now on."""
        self.relay.limits = Limits(buffer_bytes=settings.cobrowse_buffer, rate=settings.cobrowse_rate)

    # ----------------------------------------------------------- effects

    def apply(self, effects: Iterable[Effect]) -> None:
        """Carry out the relay's effects (also those of a mirror's batches, from the backend)."""
        self._apply(effects)

    def _apply(self, effects: Iterable[Effect]) -> None:
        for e in effects:
            match e:
                case Changed(session=session):
                    stream = self.relay.stream(session)
                    for viewer in list(stream.viewers) if stream is not None else ():
                        if isinstance(viewer, Viewer):  # not another process's reps (a cluster)
                            viewer.poke()
                    if stream is not None and session in self._recorders:
                        self.backend.changed(stream)
                case Ask(session=session, reason=reason):
                    self._tell(session, SnapshotPlease(reason.value))
                case Refuse(session=session, detail=detail, batch=batch):
                    self._tell(session, Error(reason=ErrorReason.BAD_MESSAGE, detail=detail, data={"batch": batch}))
                case WatchersChanged(session=session, reps=reps):
                    if session in self._recorders:
                        self._tell(session, Watching(self._names(reps)))
                    else:
                        self.backend.watching(session, reps)
        self._arm()

    def _tell(self, session: str, message: RecorderReply | Error) -> None:
        ws = self._recorders.get(session)
        if ws is None:
            self.backend.tell(session, encode(message))
            return
        self.tell_recorder(session, encode(message))

    def tell_recorder(self, session: str, frame: bytes) -> None:
        """Send the session's recorder ``frame``, if it is on this process and reads what it is told."""
        ws = self._recorders.get(session)
        if ws is None:
            return
        transport = ws.transport
        if transport is not None and transport.get_write_buffer_size() > RECORDER_LIMIT:
            return  # it does not read: a pointer or a list of names more would only pile up
        broadcast([ws], frame, text=True)

    def _names(self, reps: Iterable[str]) -> list[str]:
        return [self.engine.reps[r].name if r in self.engine.reps else r for r in reps]

    def _arm(self) -> None:
        deadline = self.relay.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.clock.call_later(max(0.0, deadline - self.clock.monotonic()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = None
        self._apply(self.relay.advance())

    # ----------------------------------------------------------- recorder

    async def serve_recorder(self, ws: ServerConnection) -> None:
        """A customer page's recorder, until it closes."""
        session: str | None = None
        try:
            async for frame in ws:
                try:
                    msg = parse_recorder(frame)
                except ProtocolError as exc:
                    await ws.send(encode(exc.reply()), text=True)
                    continue
                if isinstance(msg, Attach):
                    attached = await self._attach(ws, msg, session)
                    if attached is None:
                        return
                    session = attached
                elif session is None or self._recorders.get(session) is not ws:
                    detail = "attach first" if session is None else "a newer page of this session records it now"
                    await ws.send(encode(Error(reason=ErrorReason.NOT_STARTED, detail=detail, data={})), text=True)
                elif isinstance(msg, Record):
                    self._apply(self.relay.record(session, msg))
                elif isinstance(msg, PageInfo):
                    self._apply(self.relay.page(session, msg.url, msg.title))
                elif isinstance(msg, StopSharing):
                    log.info("%s: the customer stopped sharing their page", session)
                    self._apply(self.relay.stop(session))
        except ConnectionClosed:
            pass
        finally:
            if session is not None and self._recorders.get(session) is ws:
                self._apply(self.relay.detach(session))  # while it is ours: the backend relays the status
                del self._recorders[session]

    async def _attach(self, ws: ServerConnection, msg: Attach, current: str | None) -> str | None:
        """Bind the socket to the session the token opens; None if it was refused and closed."""

        async def refuse(reason: ErrorReason | Reason, detail: str, code: CloseCode) -> None:
            await ws.send(encode(Error(id=msg.id, reason=reason, detail=detail, data={})), text=True)
            await ws.close(code, reason.value)

        sid = self.customers.session_of(msg.token)
        try:
            s = self.engine.session(sid) if sid is not None else None
        except CommandError as exc:
            if exc.reason is Reason.SESSION_ENDED:  # ended, and let go of by the engine (the store has it)
                await refuse(Reason.SESSION_ENDED, "the session has ended", CloseCode.NORMAL)
                return None
            s = None
        if s is None:
            await refuse(ErrorReason.TOKEN_UNKNOWN, "unknown or expired token: start a session first", CloseCode.NOT_AUTHENTICATED)
            return None
        if current is not None and current != s.id:
            await ws.send(encode(Error(id=msg.id, reason=ErrorReason.ALREADY_STARTED, detail="this connection records another session", data={})), text=True)
            return current
        if s.state is SessionState.ENDED:
            await refuse(Reason.SESSION_ENDED, "the session has ended", CloseCode.NORMAL)
            return None
        if not s.browser:
            await refuse(Reason.NOT_BROWSER, "this session did not start from a browser-sharing link", CloseCode.NORMAL)
            return None
        old = self._recorders.get(s.id)
        self._recorders[s.id] = ws
        if old is not None and old is not ws:
            self.runtime.loop.create_task(old.close(CloseCode.NORMAL, "replaced by a newer page"))
        effects = self.relay.attach(s.id, url=msg.page_url, title=msg.title)
        self.backend.recording(s.id)
        stream = self.relay.stream(s.id)
        watching = self._names(stream.reps()) if stream is not None else []
        log.info("%s: a page attached to share the customer's browser", s.id)
        await ws.send(encode(Attached(msg.id, s.id, watching)), text=True)
        self._apply(effects)
        return s.id

    # --------------------------------------------------------------- reps

    def command(self, login: LoginSession, ws: ServerConnection, msg: Command) -> tuple[bytes, Callable[[], None] | None]:
        """A co-browsing command of a rep: the reply, and what to do once it is sent (start the stream)."""
        spec = COBROWSE_COMMANDS[msg.name]
        try:
            try:
                args: Any = msgspec.convert(msg.args, type=spec.args, strict=True)
            except msgspec.ValidationError as exc:
                field = invalid_field(exc)
                raise CommandError(Reason.INVALID, str(exc), command=msg.name, **({"field": field} if field else {})) from None
            s = self._session(login.rep, args.session)
            then: Callable[[], None] | None = None
            result: WatchResult | NoResult | TicketResult
            match spec.name:
                case CobrowseName.WATCH:
                    result, then = self._watch(self._viewer(ws, login), s)
                case CobrowseName.UNWATCH:
                    self._unwatch(ws, s.id)
                    result = NoResult()
                case CobrowseName.POINT:
                    assert isinstance(args, PointArgs)
                    self._tell(s.id, Pointer(args.x, args.y, self._names([login.rep])[0]))
                    result = NoResult()
                case CobrowseName.TICKET:
                    result = self._ticket(login, s, ws)
                case _:  # pragma: no cover - COBROWSE_COMMANDS has these four
                    raise AssertionError(spec.name)
            return encode(Result(msg.id, msgspec.Raw(encode(result)))), then
        except CommandError as exc:
            return encode(exc.error(msg.id)), None

    def _session(self, rep: str, session_id: str) -> Session:
        """The session, if ``rep`` may watch it: its owner or a participant, and a browser-sharing one."""
        s = self.engine.session(session_id)
        if s.state is SessionState.ENDED:
            raise CommandError(Reason.SESSION_ENDED, session_id=session_id)
        if rep != s.owner and rep not in s.participants:
            raise CommandError(Reason.NOT_PARTICIPANT, session_id=session_id)
        if not s.browser:
            raise CommandError(Reason.NOT_BROWSER, session_id=session_id)
        return s

    def _viewer(self, ws: ServerConnection, login: LoginSession, *, ticket: bool = False) -> Viewer:
        viewer = self._viewers.get(ws)
        if viewer is None:
            viewer = self._viewers[ws] = Viewer(
                self.relay, ws, login.rep, login.id, ticket=ticket,
                limit=self.runtime.spec.server.send_buffer, linger=self.runtime.spec.server.ping_timeout,
            )  # fmt: skip
        return viewer

    def _watch(self, viewer: Viewer, s: Session) -> tuple[WatchResult, Callable[[], None]]:
        """Watch from the start of the buffer (again, if it watched already: a console that lost its place)."""
        viewer.watches[s.id] = _Watch()
        self._apply(self.relay.watch(s.id, viewer, viewer.rep))
        stream = self.relay.stream(s.id)
        assert stream is not None
        return WatchResult(stream.state, stream.url, stream.title), viewer.poke

    def _unwatch(self, ws: ServerConnection, session: str) -> None:
        viewer = self._viewers.get(ws)
        if viewer is not None and viewer.watches.pop(session, None) is not None:
            self._apply(self.relay.unwatch(session, viewer))

    def forget(self, ws: ServerConnection) -> None:
        """A connection closed: its watches end."""
        viewer = self._viewers.pop(ws, None)
        if viewer is None:
            return
        viewer.cancel()
        for session in list(viewer.watches):
            self._apply(self.relay.unwatch(session, viewer))
        viewer.watches.clear()

    def logout(self, login: int) -> None:
        """A login session ended: its tickets' pages close (its consoles close with it anyway)."""
        for ticket in [h for h, t in self._tickets.items() if t.login == login]:
            del self._tickets[ticket]
        for viewer in list(self._viewers.values()):
            if viewer.ticket and viewer.login == login:
                self.runtime.loop.create_task(viewer.ws.close(CloseCode.LOGGED_OUT, "logged out"))

    # ------------------------------------------------------------- tickets

    def _ticket(self, login: LoginSession, s: Session, ws: ServerConnection) -> TicketResult:
        token = new_token()
        self._tickets[hash_token(token)] = _Ticket(s.id, login.rep, login.id, self.clock.monotonic() + TICKET_LIFETIME)
        host = ws.request.headers.get("Host") if ws.request is not None else None
        return TicketResult(f"{self.base_url(host)}{VIEW_PATH}?ticket={token}", self.clock.now() + TICKET_LIFETIME)

    async def serve_ticket(self, ws: ServerConnection, token: str) -> None:
        """A browser's live view: redeem the ticket (once), then watch as its rep until either goes."""
        ticket = self._tickets.pop(hash_token(token), None) if token else None
        if ticket is None or ticket.expires_at < self.clock.monotonic():
            detail = "this link was used or has expired: open the page again from the console"
            await ws.send(encode(Error(reason=ErrorReason.TOKEN_UNKNOWN, detail=detail, data={})), text=True)
            await ws.close(CloseCode.NOT_AUTHENTICATED, ErrorReason.TOKEN_UNKNOWN.value)
            return
        login = self.runtime.logins.get(ticket.login)
        if login is None or login.expires_at <= self.clock.now():
            await ws.send(encode(Error(reason=ErrorReason.TOKEN_EXPIRED, detail="the console's login has ended", data={})), text=True)
            await ws.close(CloseCode.NOT_AUTHENTICATED, ErrorReason.TOKEN_EXPIRED.value)
            return
        try:
            s = self._session(ticket.rep, ticket.session)
        except CommandError as exc:
            await ws.send(encode(Error(reason=exc.reason, detail=exc.detail, data=exc.data)), text=True)
            await ws.close(CloseCode.NORMAL, exc.reason.value)
            return
        viewer = self._viewer(ws, login, ticket=True)
        _, then = self._watch(viewer, s)
        then()
        try:
            async for _ in ws:
                pass  # the page sends nothing; what it would is ignored
        except ConnectionClosed:
            pass
        finally:
            self.forget(ws)

    def _prune(self, now: float) -> None:
        mono = self.clock.monotonic()
        for ticket in [h for h, t in self._tickets.items() if t.expires_at < mono]:
            del self._tickets[ticket]

    # ------------------------------------------------------------ sessions

    def _on_events(self, events: Sequence[Event]) -> None:
        self.sessions_changed(e.data.session.id for e in events if isinstance(e.data, SessionData))

    def sessions_changed(self, ids: Iterable[str]) -> None:
        """These sessions changed in the engine: a watch of a rep no longer in one ends, an ended one's stream ends.

        Called for the steps this process runs (``after_commit``) and, in a
        cluster, should be for those a follower applies from the log (the
        changed sessions of each entry), so that a mirror or an origin on a
        follower sees a rep leave or the session end as the leader does.
        """
        for sid in dict.fromkeys(ids):
            stream = self.relay.stream(sid)
            if stream is None and sid not in self._recorders:
                continue
            s = self.engine.session(sid)
            if s.state is SessionState.ENDED:
                self._end(sid, s.end_reason)
                continue
            if stream is None:
                continue
            allowed = {s.owner, *s.participants}
            for rep in set(stream.viewers.values()) - allowed:
                self.drop_rep(sid, rep)

    def drop_rep(self, sid: str, rep: str) -> None:
        """``rep`` left or lost the session: every watch of theirs ends, here and (told by the backend) elsewhere."""
        effects, gone = self.relay.drop_rep(sid, rep)
        for viewer in gone:
            if not isinstance(viewer, Viewer):
                continue
            viewer.watches.pop(sid, None)
            viewer.poke()  # a ticket's page with nothing left to watch closes
        if any(not isinstance(viewer, Viewer) for viewer in gone):
            self.backend.revoked(sid, rep)
        self._apply(effects)

    def end(self, sid: str, detail: str) -> None:
        """The session ended (here, or, told by the backend, on the process that records it)."""
        self._end(sid, detail)

    def replaced(self, sid: str) -> None:
        """A page of the session attached on another process: the one here (if any) is replaced."""
        ws = self._recorders.pop(sid, None)
        if ws is None:
            return
        self.runtime.loop.create_task(ws.close(CloseCode.NORMAL, "replaced by a newer page"))
        self._apply(self.relay.detach(sid))

    def remote_watchers(self, sid: str, node: str, reps: Iterable[str]) -> None:
        """The reps who watch ``sid`` on another process (``node``), for the recorder here (``watching``)."""
        stream = self.relay.stream(sid)
        if stream is None or sid not in self._recorders:
            return
        want = {("node", node, rep) for rep in reps}
        effects: list[Effect] = []
        for key in [k for k in stream.viewers if isinstance(k, tuple) and k[1] == node and k not in want]:
            effects += self.relay.unwatch(sid, key)
        for key in want - stream.viewers.keys():
            effects += self.relay.watch(sid, key, key[2])
        self._apply(effects)

    def _end(self, sid: str, detail: str) -> None:
        ended = self.relay.end(sid, detail)
        self.backend.ended(sid, detail)
        if ended is not None:
            status, viewers = ended
            frame = encode(status)
            for viewer, _ in viewers:
                if isinstance(viewer, Viewer):
                    viewer.final(sid, frame)
        ws = self._recorders.pop(sid, None)
        if ws is not None:
            self.runtime.loop.create_task(ws.close(CloseCode.NORMAL, "session ended"))
        self._arm()

    def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for viewer in self._viewers.values():
            viewer.cancel()
        self.backend.close()

    def counts(self) -> dict[str, int]:
        """For health checks: streams, attached recorders, watching connections."""
        return {"streams": sum(1 for _ in self.relay.streams()), "recorders": len(self._recorders), "watchers": len(self._viewers)}
