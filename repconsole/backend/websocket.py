"""The WebSocket client backend: the console live against ``repconsole-server``.

It speaks the wire protocol of ``docs/protocol.md`` on the ``/rep`` endpoint:

* **Sign-in**: :meth:`WebSocketBackend.start` (or :meth:`~WebSocketBackend.login`)
  connects, sends ``login`` (or ``resume`` with a token) and delivers the
  snapshot that follows as the first batch.  A big snapshot comes in parts
  (``snapshot``, then ``snapshot_part`` frames): each is decoded as it comes,
  the loading listeners hear how many sessions are in, and the whole snapshot
  is delivered once, as one batch.  Bad credentials raise
  :class:`LoginError`, an unreachable server :class:`ServerUnreachable`.
* **Feed**: every ``events`` frame becomes one
  :class:`~repconsole.core.feed.FeedBatch` of typed events, which carries the
  frame's ``prev`` so that the window can check it against the last event it
  applied (the server numbers events globally; a rep sees only some numbers).
  Frames are decoded by :mod:`repconsole.protocol` straight into its Structs.
* **Commands**: :meth:`~WebSocketBackend.call` sends a ``command`` and awaits
  the reply with the same id.  Ids are unique per login session, and a
  command whose reply was lost in a disconnect is sent again with the *same*
  id after the resume, so the server answers from its store instead of
  acting twice.
* **Reconnect**: when the connection drops, the backend goes
  ``RECONNECTING``, retries with backoff and resumes from the last event it
  delivered, on the server it was on or another of its list (:mod:`~repconsole.backend.endpoints`
  says which and when: full jitter, so that the consoles a server restart dropped
  together do not come back in one wave); the server replays what was missed (or sends a fresh snapshot).
  Close codes 4000 (logged out) and 4401 (not authenticated) end the login
  session instead: the state goes ``CLOSED`` and :attr:`needs_login` says the
  rep must sign in again.  A server that no longer speaks this console's
  protocol version (``unsupported_protocol``, 4426) is never retried: signing
  in raises :class:`IncompatibleServer`, and a reconnect ends in ``CLOSED``.
* **Outbox**: while disconnected, chat lines (``say``, ``team_say``) wait in
  order and go out after the resume; every other command fails at once with
  :class:`NotConnectedError`.
* **Co-browsing**: ``cobrowse_*`` commands go out like the others (the
  server's relay answers them, :data:`~repconsole.protocol.COBROWSE_COMMANDS`
  gives their results); the ``cobrowse`` chunks that follow a watch are
  joined into whole batches (one that lost a part is dropped, and the
  session watched again for a fresh snapshot).  The server forgets a
  connection's watches when it drops: meanwhile the watched sessions are
  ``reconnecting``, and they are watched again once the console is live.
  Batches are stamped on the server's clock; :attr:`clock_offset` comes
  from the welcome's ``server_time``.

Qt-free: asyncio and websockets only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from repconsole.backend.backoff import Backoff
from repconsole.backend.base import BackendState
from repconsole.backend.cobrowse import ChunkJoiner, PageState, PageStatus
from repconsole.backend.endpoints import Endpoints, parse_servers, server_endpoint, why_unreachable
from repconsole.backend.errors import (
    IncompatibleServer,
    LoginError,
    NotConnectedError,
    ProtocolCommandError,
    ServerProtocolError,
    ServerUnreachable,
    SignInError,
    command_error,
)
from repconsole.backend.wssnippets import SnippetFrames, result_type
from repconsole.collector import collector_paused
from repconsole.core.errors import CommandError
from repconsole.core.feed import FeedBatch
from repconsole.protocol import (
    PROTOCOL_VERSION,
    CloseCode,
    CobrowseChunk,
    CobrowseStatus,
    Command,
    CommandName,
    CommandResult,
    Error,
    ErrorReason,
    Events,
    Login,
    Logout,
    ProtocolError,
    RepReply,
    Result,
    Resume,
    Snapshot,
    SnapshotJoiner,
    SnapshotPart,
    Welcome,
    encode,
    parse_rep_reply,
)

__all__ = [
    "CLOSE_LOGGED_OUT",
    "CLOSE_NOT_AUTHENTICATED",
    "CLOSE_TOO_SLOW",
    "OUTBOX_COMMANDS",
    "SNAPSHOT_PLEASE",
    "Backoff",
    "FeedBatch",
    "IncompatibleServer",
    "LoginError",
    "NotConnectedError",
    "ProtocolCommandError",
    "ServerProtocolError",
    "ServerUnreachable",
    "SignInError",
    "WebSocketBackend",
]

log = logging.getLogger(__name__)

CLOSE_LOGGED_OUT = CloseCode.LOGGED_OUT
CLOSE_NOT_AUTHENTICATED = CloseCode.NOT_AUTHENTICATED
CLOSE_TOO_SLOW = CloseCode.TOO_SLOW
# Closing with these ends the login session: the rep must sign in again.
SESSION_ENDING_CODES = frozenset({CLOSE_LOGGED_OUT, CLOSE_NOT_AUTHENTICATED})

# Commands that wait for the reconnect instead of failing while disconnected:
# a chat line typed during a network blip should still be said, once, in order.
OUTBOX_COMMANDS = frozenset({CommandName.SAY.value, CommandName.TEAM_SAY.value})

# Protocol v1 has no "send me a snapshot" request.  A resume from a seq the
# server never handed out cannot be replayed, so the server answers
# ``resumed: false`` and a fresh snapshot; this is the largest seq the
# protocol allows (a whole number below 2**63), which no server reaches.
SNAPSHOT_PLEASE = 2**63 - 1

# ---------------------------------------------------------------- the backend


# Builds the login or resume message with the request id it is given.
_SignIn = Callable[[str], Login | Resume]


@dataclass(slots=True)
class _Pending:
    """A command waiting for its reply (or, in the outbox, to be sent)."""

    id: str
    name: str
    args: dict[str, Any]
    future: asyncio.Future[CommandResult]
    # The connection generation it was last sent on; 0: never sent.
    sent_on: int = 0
    sends: int = 0

    def frame(self) -> bytes:
        return encode(Command(self.id, self.name, self.args))


class WebSocketBackend(SnippetFrames):
    """The console's rep, signed in to a queue server over WebSocket.

    Attributes:
        servers: the server addresses and which to try next (:class:`Endpoints`).
        url: the server in use, as given (``ws://host:port``); endpoint: its ``/rep`` endpoint.
        username: who signs in.
        rep: the rep id the server confirmed, once signed in.
        token: the login session's resume token, once signed in.
        last_seq: the seq of the last event (or snapshot) delivered; -1 before the first.
        disconnected_since: ``time.time()`` when the connection dropped, while
            it is down; None while connected.
        grace_period: the site's grace period in seconds (from the snapshot):
            how long the server keeps the rep's sessions after a drop.
        resume_window: how long (s) the server can replay missed events.
        close_code: the close code that ended the login session, if any.
        needs_login: the server ended the login session (4000/4401): the rep
            must sign in again with :meth:`login`.
    """

    kind = "server"

    def __init__(
        self,
        url: str | Sequence[str],
        username: str = "",
        password: str | None = None,
        *,
        token: str | None = None,
        connect_timeout: float = 15.0,
        backoff: Backoff | Sequence[float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backoff, Backoff):
            backoff = Backoff(rng=rng) if backoff is None else Backoff(ceilings=backoff, rng=rng)
        self.servers = Endpoints(parse_servers(url), backoff)
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.username = username
        self._password = password
        self.token = token
        self.rep: str | None = None
        self.last_seq = -1
        self.disconnected_since: float | None = None
        self.grace_period = 0.0
        self.resume_window = 0.0
        self.close_code: int | None = None
        self.needs_login = False
        self._connect_timeout = connect_timeout
        self._live_url: str | None = None  # the server of the last live connection
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._generation = 0
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None
        self._want_snapshot = False
        self._stopping = False
        self._closing: asyncio.Future[None] | None = None
        self._joiner = ChunkJoiner(self._on_batch_lost)
        self._snapshots = SnapshotJoiner()
        self._watch_tasks: dict[str, asyncio.Task[None]] = {}
        self._watched_at: dict[str, float] = {}  # when each watch was sent, on the server's clock

    @property
    def url(self) -> str:
        """The server in use: the last one that answered (or the first of the list)."""
        return self.servers.url

    @property
    def endpoint(self) -> str:
        return server_endpoint(self.url)

    @property
    def description(self) -> str:
        return f"Server {self.url}"

    def set_url(self, url: str | Sequence[str]) -> None:
        """Point the first sign-in at other servers (the rep typed their addresses).

        Raises ValueError for an address that is not ``ws://`` or ``wss://``
        with a host, and RuntimeError once signed in: a window shows one site's work.
        """
        if self.rep is not None:
            raise RuntimeError("the server cannot change once signed in")
        self.servers.use(parse_servers(url))

    @property
    def where(self) -> str:
        return self.url

    def customer_page(self, key: str | None = None) -> str | None:
        # The server serves its customer page at / on the same host and port,
        # over http(s) where the console speaks ws(s); ``?key=`` fills the key in.
        parts = urlsplit(self.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme)
        if scheme is None or not parts.netloc:
            return None
        return urlunsplit((scheme, parts.netloc, "/", f"key={key}" if key else "", ""))

    @property
    def connected(self) -> bool:
        """Whether commands go out right now."""
        return self._ws is not None

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Sign in (with the password, or resume with the token) and deliver the snapshot.

        Does nothing when already signed in.  Raises :class:`SignInError`.
        """
        if self._task is not None and not self._task.done():
            return
        if self.token is not None and self._password is None:
            token = self.token
            await self._sign_in(lambda rid: Resume(rid, token, SNAPSHOT_PLEASE, PROTOCOL_VERSION), fresh=False)
        elif self._password is not None:
            username, password = self.username, self._password
            await self._sign_in(lambda rid: Login(rid, username, password, PROTOCOL_VERSION), fresh=True)
        else:
            raise LoginError("bad_credentials", "No password or token to sign in with.")

    async def login(self, password: str, *, username: str | None = None) -> None:
        """Sign in afresh with a password: a new login session, a fresh snapshot.

        Used for the first sign-in from the login dialog, and again after the
        server ended the login session (:attr:`needs_login`).  The password is
        not kept.  Raises :class:`SignInError`.
        """
        if self._task is not None and not self._task.done():
            await self.stop()
        if username is not None:
            self.username = username
        username = self.username
        await self._sign_in(lambda rid: Login(rid, username, password, PROTOCOL_VERSION), fresh=True)

    async def _sign_in(self, message: _SignIn, *, fresh: bool) -> None:
        self._stopping = False
        self._password = None  # used once; the token resumes from here on
        if fresh:
            self._new_login_session()
        self._set_state(BackendState.CONNECTING, f"signing in to {self.url}…")
        try:
            ws = await self._sign_in_anywhere(message)
        except SignInError as exc:
            self._set_state(BackendState.CLOSED, str(exc))
            raise
        except asyncio.CancelledError:
            self._set_state(BackendState.CLOSED, "")
            raise
        self.needs_login = False
        self.close_code = None
        await self._go_live(ws)
        self._task = asyncio.get_running_loop().create_task(self._run(ws), name=f"websocket backend {self.url}")

    async def stop(self) -> None:
        """Disconnect (the server starts the rep's grace period).  Safe to call twice."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        for watch in self._watch_tasks.values():
            watch.cancel()
        self._joiner.forget()
        self._fail_pending("The console is disconnected from the server.")
        self.disconnected_since = None
        self._set_state(BackendState.CLOSED, self.state_detail if self.needs_login else "")

    async def logout(self) -> None:
        """End the login session: the server revokes the token and closes with 4000."""
        ws = self._ws
        if ws is None:
            raise NotConnectedError()
        task = self._task
        with contextlib.suppress(ConnectionClosed):
            await ws.send(encode(Logout(self._next_id())), text=True)
        if task is not None:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                log.warning("the server did not close the connection after logout")
        await self.stop()

    def resync(self) -> None:
        """The window found a gap: reconnect and ask for a fresh snapshot."""
        ws = self._ws
        if ws is None or self._want_snapshot:
            # Not connected: the resume after the reconnect asks for a snapshot.
            self._want_snapshot = self._task is not None
            return
        self._want_snapshot = True
        log.warning("feed gap: reconnecting for a fresh snapshot")
        self._ws = None
        self._closing = asyncio.ensure_future(ws.close(code=1000, reason="resync"))

    # ------------------------------------------------------------- commands

    async def call(self, command: str, **args: Any) -> CommandResult:
        """Run a command on the server; returns its result or raises CommandError.

        While reconnecting, ``say`` and ``team_say`` wait (in order) for the
        connection to come back; other commands raise NotConnectedError.
        """
        if self._ws is None and not (command in OUTBOX_COMMANDS and self.state is BackendState.RECONNECTING):
            raise NotConnectedError(self._not_connected_detail())
        pending = _Pending(self._next_id(), command, args, asyncio.get_running_loop().create_future())
        self._pending[pending.id] = pending
        try:
            ws = self._ws
            if ws is not None:
                await self._send_pending(ws, pending)
            return await pending.future
        finally:
            self._pending.pop(pending.id, None)

    def _not_connected_detail(self) -> str:
        if self.state is BackendState.RECONNECTING:
            return "Not connected to the server — reconnecting. Try again when the console is live."
        if self.needs_login:
            return "Signed out of the server. Sign in again to continue."
        return "Not connected to the server."

    async def _send_pending(self, ws: ClientConnection, pending: _Pending) -> None:
        pending.sent_on = self._generation
        pending.sends += 1
        try:
            await ws.send(pending.frame(), text=True)
        except ConnectionClosed:
            # The reader sees the close too; after the resume the command is
            # sent again with the same id.
            log.info("connection closed while sending %s %s", pending.name, pending.id)

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def _new_login_session(self) -> None:
        """A new login session: fresh id space, nothing from the old one is resent."""
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._fail_pending("Signed in again: the command was not sent.")
        self.last_seq = -1

    def _fail_pending(self, detail: str) -> None:
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(NotConnectedError(detail))

    # ---------------------------------------------------------- co-browsing

    async def _watch(self, session_id: str) -> None:
        if self._ws is None:
            # Watched once live (see _go_live).
            if self.state is BackendState.RECONNECTING:
                self._deliver_cobrowse(PageStatus(session_id, PageState.RECONNECTING))
            return
        self._watched_at[session_id] = self.server_time()
        with contextlib.suppress(NotConnectedError):  # the connection dropped on the way: _go_live watches again
            await super()._watch(session_id)

    async def cobrowse_unwatch(self, session_id: str) -> None:
        self._joiner.forget(session_id)
        self._watched_at.pop(session_id, None)
        task = self._watch_tasks.pop(session_id, None)
        if task is not None:
            task.cancel()
        if self._ws is None:
            # The server forgot the watch with the connection; the next one does not watch it.
            self.watching.discard(session_id)
            return
        await super().cobrowse_unwatch(session_id)

    def _watch_soon(self, session_id: str) -> None:
        """Watch again in the background (the reader must run to answer): after a reconnect, or a lost batch."""
        if session_id in self._watch_tasks:
            return
        self._watch_tasks[session_id] = asyncio.get_running_loop().create_task(self._watch_again(session_id), name=f"watch {session_id}")

    async def _watch_again(self, session_id: str) -> None:
        try:
            await self._watch(session_id)
        except CommandError as exc:
            # E.g. the session ended while the console was away.
            log.info("watching session %s again was refused: %s", session_id, exc)
            if session_id in self.watching:
                self.watching.discard(session_id)
                self._deliver_cobrowse(PageStatus(session_id, PageState.ENDED, detail=exc.detail))
        except Exception:  # a bad answer must not go unseen in a task nobody awaits
            log.exception("watching session %s again failed", session_id)
        finally:
            if self._watch_tasks.get(session_id) is asyncio.current_task():
                del self._watch_tasks[session_id]

    def _on_batch_lost(self, session_id: str, batch: int) -> None:
        """Part of a batch never came: the page is wrong until a full snapshot; the watch's answer brings one."""
        if session_id not in self.watching or self._ws is None:
            return
        self._deliver_cobrowse(PageStatus(session_id, PageState.RESYNC, detail="Part of the page's stream was lost; fetching a fresh copy."))
        self._watch_soon(session_id)

    # ------------------------------------------------------------- the wire

    async def _sign_in_anywhere(self, message: _SignIn) -> ClientConnection:
        """Sign in on the first server that answers, the one in use first; if none does, say why for each."""
        failures: list[str] = []
        for url in self.servers.order():
            try:
                return await self._handshake(message, url, need_snapshot=True)
            except ServerUnreachable as exc:
                failures.append(str(exc))
        raise ServerUnreachable(failures[0] if len(failures) == 1 else "No server answered. " + " ".join(failures))

    async def _handshake(self, message: _SignIn, url: str, *, need_snapshot: bool) -> ClientConnection:
        """Connect to ``url``, sign in or resume, and deliver a snapshot if one follows.

        Returns the connection, ready for the reader.  Raises SignInError.
        """
        request = message(self._next_id())
        try:
            ws = await connect(
                server_endpoint(url),
                compression=None,
                proxy=None,
                open_timeout=self._connect_timeout,
                ping_interval=10,
                ping_timeout=10,
                close_timeout=2,
                max_size=None,  # the snapshot of a busy site is large; the server is trusted
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ServerUnreachable(f"Cannot reach the server at {url}: {why_unreachable(exc)}") from exc
        try:
            async with asyncio.timeout(self._connect_timeout) as deadline:
                await ws.send(encode(request), text=True)
                reply = await _recv(ws)
                self.servers.connected(url)  # it answered: the server in use from now on
                if isinstance(reply, Error):
                    if reply.reason == ErrorReason.UNSUPPORTED_PROTOCOL:
                        raise IncompatibleServer(reply.detail or "The server does not speak this console's protocol version.")
                    raise LoginError(reply.reason, reply.detail or None)
                if not isinstance(reply, Welcome):
                    raise ServerProtocolError(f"The server answered {_type(reply)!r} instead of a welcome.")
                if need_snapshot and reply.resumed:
                    raise ServerProtocolError("The server resumed a session this console has no snapshot of.")
                self.token = reply.token or self.token
                self.clock_offset = reply.server_time - time.time()
                self.rep = reply.rep or self.rep or self.username
                self.resume_window = reply.resume_window or self.resume_window
                snapshot: Snapshot | None = None
                if not reply.resumed:
                    snapshot = await self._receive_snapshot(ws, deadline)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code in SESSION_ENDING_CODES:
                raise LoginError(ErrorReason.TOKEN_UNKNOWN if isinstance(request, Resume) else ErrorReason.BAD_CREDENTIALS) from exc
            raise ServerUnreachable(f"The server closed the connection while signing in ({_close_text(exc)}).") from exc
        except TimeoutError as exc:
            ws.transport.abort()
            raise ServerUnreachable(f"The server at {url} did not answer within {self._connect_timeout:g} s.") from exc
        except SignInError:
            await ws.close()
            raise
        except BaseException:
            ws.transport.abort()
            raise
        if snapshot is not None:
            self._on_snapshot(snapshot)
        return ws

    async def _receive_snapshot(self, ws: ClientConnection, deadline: asyncio.Timeout) -> Snapshot:
        """The snapshot after a welcome, joined from its parts; each part within the connect timeout of the one before."""
        joiner = self._snapshots
        joiner.forget()
        while True:
            message = await _recv(ws)
            if not isinstance(message, Snapshot | SnapshotPart):
                raise ServerProtocolError(f"The server sent {_type(message)!r} instead of a snapshot.")
            try:
                whole = joiner.add(message)
            except ProtocolError as exc:
                raise ServerProtocolError(f"The server sent a snapshot this console cannot read: {exc.detail}") from exc
            if whole is not None:
                return whole
            self._set_loading(joiner.received, joiner.total)
            deadline.reschedule(asyncio.get_running_loop().time() + self._connect_timeout)

    async def _go_live(self, ws: ClientConnection) -> None:
        """Send what waited for this connection, in order, then go live."""
        self._generation += 1
        while True:
            unsent = [p for p in self._pending.values() if p.sent_on != self._generation and not p.future.done()]
            if not unsent:
                break
            for p in unsent:
                if p.sends:
                    log.info("resending %s %s after the reconnect", p.name, p.id)
                await self._send_pending(ws, p)
        self._ws = ws
        self.disconnected_since = None
        moved, self._live_url = self._live_url not in (None, self.url), self.url
        # Another server took over: the status bar shows it, and the UI announces it.
        self._set_state(BackendState.LIVE, f"signed in as {self.rep or self.username}" + (f", now on {self.url}" if moved else ""))
        # The server forgot this console's watches with its old connection.
        for session_id in sorted(self.watching):
            self._watch_soon(session_id)

    async def _run(self, ws: ClientConnection) -> None:
        """Read until the connection drops; reconnect and resume until the session ends."""
        try:
            await self._serve(ws)
        except Exception:
            log.exception("the connection to %s failed", self.url)
            self._ws = None
            self.disconnected_since = None
            self._fail_pending("The console lost its connection to the server.")
            self._set_state(BackendState.CLOSED, "Disconnected after an internal error; restart the console.")

    async def _serve(self, ws: ClientConnection) -> None:
        while True:
            await self._read(ws)
            if self._ws is ws:
                self._ws = None
            if self._stopping:
                return
            code = ws.close_code
            if code in SESSION_ENDING_CODES:
                reason = ws.close_reason
                self._end_session(code, f"Signed out by the server: {reason}." if reason else None)
                return
            log.warning("connection to %s lost (%s); reconnecting", self.url, _close_text_of(ws))
            if self.disconnected_since is None:
                self.disconnected_since = time.time()
            self._joiner.forget()
            self._snapshots.forget()
            for session_id in sorted(self.watching):
                self._deliver_cobrowse(PageStatus(session_id, PageState.RECONNECTING))
            immediate = code == CLOSE_TOO_SLOW or self._want_snapshot
            new = await self._reconnect(immediate=immediate)
            if new is None:
                return
            ws = new

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    message = _decode(raw)
                except ProtocolError as exc:
                    # A frame we cannot read may have carried events: start
                    # over from a fresh snapshot rather than guess.
                    log.error("%s: %.200r", exc.detail, raw)
                    self.resync()
                    continue
                self._on_message(message)
        except ConnectionClosed:
            pass

    def _on_message(self, message: RepReply) -> None:
        match message:
            case Events(prev=prev, events=events):
                if events:
                    self._deliver_batch(FeedBatch(events, prev))
            case Snapshot() | SnapshotPart():
                try:
                    whole = self._snapshots.add(message)
                except ProtocolError as exc:
                    log.error("%s", exc.detail)
                    self.resync()
                    return
                if whole is not None:
                    self._on_snapshot(whole)
            case CobrowseChunk(session=session_id):
                if session_id in self.watching:
                    batch = self._joiner.add(message)
                    if batch is not None:
                        if batch.at < self._watched_at.get(session_id, 0.0):
                            batch = dataclasses.replace(batch, buffered=True)
                        self._deliver_cobrowse(batch)
            case CobrowseStatus(session=session_id):
                if session_id in self.watching:
                    self._deliver_cobrowse(PageStatus.of(message))
            case Result(id=rid) | Error(id=str() as rid):
                self._on_reply(rid, message)
            case Error():
                log.warning("server error: %s", message)
            case _:
                self._on_other(message)  # wssnippets, wstyping: snippets, typing notices

    def _on_reply(self, rid: Any, message: Result | Error) -> None:
        pending = self._pending.get(str(rid))
        if pending is None or pending.future.done():
            if isinstance(message, Error):
                log.warning("server error: %s", message)
            return
        if isinstance(message, Error):
            pending.future.set_exception(command_error(message))
            return
        result = result_type(pending.name)
        try:
            if result is None:
                raise ValueError(f"no result type for {pending.name!r}")
            pending.future.set_result(msgspec.json.decode(message.result, type=result))
        except (ValueError, msgspec.ValidationError) as exc:
            log.error("malformed result of %s from the server: %s", pending.name, exc)
            pending.future.set_exception(ProtocolCommandError(ErrorReason.BAD_MESSAGE, str(exc)))

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._want_snapshot = False
        self.grace_period = snapshot.data.site.grace_period
        # The decoded snapshot becomes the console's state (its views are the rows): build
        # the views without a collection walking it halfway, then keep it out of later ones.
        with collector_paused(freeze=True):
            self._deliver_batch(FeedBatch([snapshot]))
        # All in: a snapshot in parts reported its progress, and "Loading" waits to hear the end.
        self._set_loading(n := len(snapshot.data.sessions), n)

    def _deliver_batch(self, batch: FeedBatch) -> None:
        self.last_seq = batch[-1].seq
        try:
            self._deliver(batch)
        except Exception:
            # A listener's bug must not take the connection down with it.
            log.exception("an event listener failed")

    async def _reconnect(self, *, immediate: bool) -> ClientConnection | None:
        """Retry with backoff until resumed; None when the session ended."""
        # After a 4408 (too slow) or to fetch a snapshot, the first try is at once: nobody
        # else is dropped at the same moment.  After anything else (a server restart drops
        # every console at once) each try waits its jittered delay, the first one too.
        self.servers.lost(immediate=immediate)
        while True:
            step = self.servers.next_try()
            where = f" to {step.url}" if len(self.servers.urls) > 1 else ""
            self._set_state(BackendState.RECONNECTING, f"reconnecting{where}… (attempt {step.attempt}, next in {round(step.delay, 1):g} s)")
            await asyncio.sleep(step.delay)
            want_snapshot = self._want_snapshot
            last_seq = SNAPSHOT_PLEASE if want_snapshot else self.last_seq
            try:
                resume: _SignIn = functools.partial(Resume, token=self.token or "", last_seq=last_seq, protocol=PROTOCOL_VERSION)
                ws = await self._handshake(resume, step.url, need_snapshot=want_snapshot)
            except LoginError as exc:  # e.g. another server that does not know this login session: say so
                moved = f"Now on the server {step.url} ({self._live_url} stopped answering). " if step.url != self._live_url else ""
                self._end_session(CLOSE_NOT_AUTHENTICATED, moved + str(exc))
                return None
            except IncompatibleServer as exc:
                # Retrying cannot help (the server was upgraded meanwhile),
                # and neither can signing in again: the console needs an update.
                self._end_session(CloseCode.UNSUPPORTED_PROTOCOL, str(exc), needs_login=False)
                return None
            except SignInError as exc:
                log.info("reconnect attempt %d (%s) failed: %s", step.attempt, step.url, exc)
                continue
            await self._go_live(ws)
            return ws

    def _end_session(self, code: int, detail: str | None, *, needs_login: bool = True) -> None:
        """The server ended the login session (4000/4401): the rep must sign in again.

        (4426: the server no longer speaks this console's protocol; signing in again would not help.)
        """
        self.close_code = code
        self.needs_login = needs_login
        self.disconnected_since = None
        self._ws = None
        if code == CLOSE_LOGGED_OUT:
            text = "Signed out: this login session was logged out."
        else:
            text = detail or "Signed out: the server no longer accepts this sign-in."
        self._fail_pending("Signed out of the server; the command was not sent.")
        self._set_state(BackendState.CLOSED, text)

    def __repr__(self) -> str:
        return f"<WebSocketBackend {self.url} {self.state.value}>"


# Decoding a frame this big allocates enough objects to trigger collections
# that walk everything decoded so far: pause the collector meanwhile, and
# freeze the result (a snapshot, or a long replay after a resume), which
# becomes the console's state: else the next young collection walks it all.
# It is acyclic data: reference counting still frees it when it is replaced.
_BIG_FRAME = 256 * 1024


def _decode(raw: str | bytes) -> RepReply:
    """A frame from the server, typed.  Raises ProtocolError."""
    if len(raw) < _BIG_FRAME:
        return parse_rep_reply(raw)
    with collector_paused(freeze=True):
        return parse_rep_reply(raw)


async def _recv(ws: ClientConnection) -> RepReply:
    raw = await ws.recv(decode=False)
    try:
        return _decode(raw)
    except ProtocolError as exc:
        raise ServerProtocolError(f"The server sent a frame this console cannot read: {exc.detail}") from exc


def _type(message: object) -> str:
    config = getattr(message, "__struct_config__", None)
    return str(config.tag) if config is not None else type(message).__name__


def _close_text(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "no close frame"
    return f"code {frame.code}" + (f": {frame.reason}" if frame.reason else "")


def _close_text_of(ws: ClientConnection) -> str:
    code = ws.close_code
    if code is None:
        return "no close code"
    return f"code {code}" + (f": {ws.close_reason}" if ws.close_reason else "")
