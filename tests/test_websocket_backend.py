"""The WebSocket client backend against a small protocol-speaking fake server.

:class:`FakeServer` implements the ``/rep`` endpoint of docs/protocol.md
over a real :class:`QueueEngine` (the simulator's site, a manual clock):
login and resume with tokens, snapshots, ``events`` frames with ``prev`` in
the engine's global numbering, commands answered once per id, logout and
the close codes.  It reads and writes every message through
:mod:`repconsole.protocol` (its Structs, ``parse_rep`` and ``encode``), and
routes events with the one routing filter the real server uses
(:func:`repconsole.core.feed.route_for`).  It also has knobs to misbehave on
purpose: cut every connection, refuse connections for a while ("the server
is down"), execute a command and drop the connection instead of replying,
forget its event log so that a resume gets a fresh snapshot, speak only
protocol versions the console does not.

Most tests are plain asyncio (the backend is Qt-free); the last ones build
the real window over the backend, in qasync, as the console runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import TIMEOUT_SCALE, timeout
from msgspec import UNSET
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from repconsole.backend import KINDS, BackendState, create_backend
from repconsole.backend.websocket import (
    SNAPSHOT_PLEASE,
    Backoff,
    FeedBatch,
    IncompatibleServer,
    LoginError,
    NotConnectedError,
    ProtocolCommandError,
    ServerProtocolError,
    ServerUnreachable,
    WebSocketBackend,
    server_endpoint,
)
from repconsole.backend.world import ME, World, build_site
from repconsole.core.clock import ManualClock
from repconsole.core.commands import execute
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.feed import route_for
from repconsole.core.state import ConsoleState
from repconsole.protocol import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    CloseCode,
    Command,
    CommandName,
    Error,
    ErrorReason,
    EventKind,
    Events,
    Login,
    Logout,
    MessageType,
    ProtocolError,
    RepRequest,
    Result,
    Resume,
    ResumeReason,
    Snapshot,
    SnapshotData,
    SnapshotPart,
    Welcome,
    decode,
    encode,
    parse_rep,
)

PASSWORD = "correct horse"
SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "protocol.schema.json"


def _client_validator() -> Any:
    """What a rep console may send, per docs/protocol.schema.json."""
    import jsonschema

    defs = json.loads(SCHEMA.read_text(encoding="utf-8"))["$defs"]
    return jsonschema.Draft202012Validator({"$ref": "#/$defs/rep_client", "$defs": defs})


CLIENT_SCHEMA = _client_validator()


# ---------------------------------------------------------------- waiting without sleeping


class Pulse:
    """Wakes waiters whenever something happened (a frame, a batch, a state)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def until(self, predicate: Callable[[], bool], seconds: float = 5.0) -> None:
        """Return once ``predicate()`` holds; TimeoutError after ``seconds``."""
        async with asyncio.timeout(seconds * TIMEOUT_SCALE):
            while not predicate():
                self._event.clear()
                await self._event.wait()


# ---------------------------------------------------------------- the fake server


@dataclass
class _Conn:
    ws: ServerConnection
    rep: str
    token: str
    prev: int = 0  # the seq of the last event this connection was sent
    position: int = 0  # how far into the server's log this connection has looked


def _error(rid: Any, reason: ErrorReason | Reason, detail: str, **data: Any) -> bytes:
    return encode(Error(id=rid, reason=reason, detail=detail, data=data))


@dataclass
class FakeServer:
    """The ``/rep`` endpoint of protocol.md over a real engine, with knobs to misbehave.

    Attributes:
        engine: the queue engine (tests drive it directly, then ``publish()``).
        received: every message received, in order, as the protocol parsed it.
        sent_json: every frame received, as the JSON it was (what the schema
            checks, and the only way to see that a field with a default was
            really sent).
        violations: messages that do not match the protocol's schema.
        executed: (id, name) of every command actually executed.
        accepting: False: the server is "down", every connection is closed at once.
        lose_reply_to: command names to execute and then drop the connection
            instead of replying (once each).
        protocol_errors: command name → protocol reason to answer with.
        oldest_resumable: a resume from a ``last_seq`` below this gets a snapshot.
        speaks: the protocol versions this server serves; a login or resume
            in another gets ``unsupported_protocol`` and a 4426 close.
        events_after_reply: answer a command first and send its events only at
            the next ``publish()``, as the real server's fan-out may.
        snapshot_rows: send a snapshot in parts of this many sessions (0: in one frame).
        misnumber_part: send this part number in place of the second part's (0: do not).
    """

    pulse: Pulse
    clock: ManualClock = field(default_factory=lambda: ManualClock(1_800_000_000.0))
    received: list[RepRequest] = field(default_factory=list)
    sent_json: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    executed: list[tuple[Any, str]] = field(default_factory=list)
    accepting: bool = True
    lose_reply_to: set[str] = field(default_factory=set)
    protocol_errors: dict[str, ErrorReason] = field(default_factory=dict)
    oldest_resumable: int = 0
    speaks: range = range(MIN_PROTOCOL_VERSION, PROTOCOL_VERSION + 1)
    events_after_reply: bool = False
    snapshot_rows: int = 0
    misnumber_part: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self.engine = QueueEngine(self.clock, rng=random.Random(5))
        build_site(self.engine)
        self.world = World(random.Random(6))
        self.passwords = {ME: PASSWORD, "priya": "curry"}
        self.tokens: dict[str, str] = {}
        self.answers: dict[tuple[str, Any], bytes] = {}
        self.conns: list[_Conn] = []
        self.log: list[Event] = []
        self.engine.subscribe(self.log.append)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _record(self, frame: str | bytes) -> RepRequest | ProtocolError:
        """Keep what came, checked against the schema; the message, or why it cannot be served."""
        plain = decode(frame)
        self.sent_json.append(plain)
        self.violations.extend(f"{plain}: {e.message}" for e in CLIENT_SCHEMA.iter_errors(plain))
        try:
            message = parse_rep(frame)
        except ProtocolError as exc:
            self.violations.append(f"{plain}: {exc}")
            self.pulse.notify()
            return exc
        self.received.append(message)
        self.pulse.notify()
        return message

    def received_commands(self, name: str) -> list[Command]:
        return [m for m in self.received if isinstance(m, Command) and m.name == name]

    def received_of(self, kind: type[RepRequest]) -> list[Any]:
        return [m for m in self.received if isinstance(m, kind)]

    def customer(self, issue: str = "vpn") -> str:
        return self.engine.start_with_issue(issue, self.world.intake()).id

    def forget_log(self) -> None:
        """As after a restart: no resume can be served from the log any more."""
        self.oldest_resumable = self.engine.seq + 1

    # ---------------------------------------------------------------- sending

    async def publish(self) -> None:
        """Send every connection the new events its rep may see, as one frame each."""
        frames = []
        for conn in list(self.conns):
            frame = self._frame(conn)
            if frame is not None:
                frames.append((conn, frame))
        for conn, frame in frames:
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send(frame, text=True)

    def _frame(self, conn: _Conn) -> bytes | None:
        events = [wire for event in self.log[conn.position :] if (wire := route_for(event, conn.rep)) is not None]
        conn.position = len(self.log)
        if not events:
            return None
        frame = encode(Events(conn.prev, events))
        conn.prev = events[-1].seq
        return frame

    async def cut(self, code: int = CloseCode.SERVER_ERROR, reason: str = "") -> None:
        """Close every rep connection with ``code``."""
        for conn in list(self.conns):
            await conn.ws.close(code, reason)

    # ---------------------------------------------------------------- serving

    async def handler(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != "/rep":
            await ws.close(1008, "no such endpoint")
            return
        if not self.accepting:
            await ws.close(1013, "try again later")
            self.pulse.notify()
            return
        conn = await self._sign_in(ws)
        if conn is None:
            return
        self.conns.append(conn)
        self.engine.rep_connected(conn.rep)
        self.pulse.notify()
        try:
            await self.publish()
            async for raw in ws:
                message = self._record(raw)
                match message:
                    case ProtocolError():
                        await ws.send(encode(message.reply()), text=True)
                    case Logout():
                        self.tokens.pop(conn.token, None)
                        for other in [c for c in self.conns if c.token == conn.token]:
                            await other.ws.close(CloseCode.LOGGED_OUT, "logged out")
                        return
                    case Command():
                        await self._command(conn, message)
                    case _:
                        await ws.send(_error(message.id, ErrorReason.ALREADY_LOGGED_IN, "this connection is logged in"), text=True)
        except ConnectionClosed:
            pass
        finally:
            self.conns.remove(conn)
            if not any(c.rep == conn.rep for c in self.conns):
                self.engine.rep_disconnected(conn.rep)
            self.pulse.notify()

    async def _refuse(self, ws: ServerConnection, reply: bytes, code: int, reason: str) -> None:
        await ws.send(reply, text=True)
        await ws.close(code, reason)

    async def _sign_in(self, ws: ServerConnection) -> _Conn | None:
        message = self._record(await ws.recv())
        if isinstance(message, ProtocolError):
            # As the real server would not: a console must never send one.
            await self._refuse(ws, encode(message.reply()), CloseCode.NOT_AUTHENTICATED, "no login")
            return None
        if not isinstance(message, Login | Resume):
            await self._refuse(ws, _error(message.id, ErrorReason.NOT_LOGGED_IN, "log in or resume first"), CloseCode.NOT_AUTHENTICATED, "no login")
            return None
        mid = message.id
        if message.protocol not in self.speaks:
            detail = f"this server speaks protocol version {self.speaks.start}, the console speaks version {message.protocol}: update the console"
            await self._refuse(ws, _error(mid, ErrorReason.UNSUPPORTED_PROTOCOL, detail), CloseCode.UNSUPPORTED_PROTOCOL, ErrorReason.UNSUPPORTED_PROTOCOL)
            return None
        if isinstance(message, Login):
            rep = message.username
            if self.passwords.get(rep) != message.password:
                await self._refuse(ws, _error(mid, ErrorReason.BAD_CREDENTIALS, "wrong username or password"), CloseCode.NOT_AUTHENTICATED, "bad credentials")
                return None
            token = secrets.token_urlsafe(24)
            self.tokens[token] = rep
            resumed, last_seq = False, None
        else:
            last_seq = message.last_seq  # the parser checked it: a whole number, 0 or more
            token = message.token
            rep = self.tokens.get(token, "")
            if not rep:
                await self._refuse(ws, _error(mid, ErrorReason.TOKEN_UNKNOWN, "unknown token: log in again"), CloseCode.NOT_AUTHENTICATED, "unknown token")
                return None
            # As the real server: only a seq it handed out and still holds
            # every later event of can be resumed from.
            resumed = self.oldest_resumable <= last_seq <= self.engine.seq
        welcome = Welcome(
            mid, rep, token, resumed, self.clock() + 86400, self.clock(), 300, PROTOCOL_VERSION,
            ResumeReason.OUTSIDE_RESUME_WINDOW if not resumed and isinstance(message, Resume) else UNSET,
        )  # fmt: skip
        await ws.send(encode(welcome), text=True)
        conn = _Conn(ws, rep, token)
        if resumed:
            assert last_seq is not None
            conn.prev = last_seq
            conn.position = next((i for i, e in enumerate(self.log) if e.seq > last_seq), len(self.log))
        else:
            snapshot = self.engine.snapshot(rep)
            conn.prev = snapshot.seq
            conn.position = len(self.log)
            await self._send_snapshot(ws, snapshot)
        return conn

    async def _send_snapshot(self, ws: ServerConnection, snapshot: SnapshotData) -> None:
        """As docs/protocol.md says: a snapshot frame with the first sessions, then its parts."""
        sessions, rows = snapshot.sessions, self.snapshot_rows or max(1, len(snapshot.sessions))
        cuts = [sessions[i:i + rows] for i in range(0, len(sessions), rows)] or [[]]
        first = msgspec.structs.replace(snapshot, sessions=cuts[0])
        await ws.send(encode(Snapshot(snapshot.seq, first, len(cuts), len(sessions))), text=True)
        for part, cut in enumerate(cuts[1:], start=1):
            number = self.misnumber_part if part == 1 and self.misnumber_part else part
            await ws.send(encode(SnapshotPart(snapshot.seq, number, cut)), text=True)

    async def _command(self, conn: _Conn, message: Command) -> None:
        mid, name = message.id, message.name
        key = (conn.token, mid)
        reply = self.answers.get(key)
        if reply is None:
            if name in self.protocol_errors:
                reply = _error(mid, self.protocol_errors[name], "")
            else:
                try:
                    result = execute(self.engine, conn.rep, name, message.args)
                except CommandError as exc:
                    reply = encode(exc.error(mid))
                else:
                    reply = encode(Result(mid, msgspec.Raw(encode(result))))
                    self.executed.append((mid, name))
            self.answers[key] = reply
        if not self.events_after_reply:
            await self.publish()
        if name in self.lose_reply_to:
            self.lose_reply_to.discard(name)
            await conn.ws.close(CloseCode.SERVER_ERROR, "lost the reply")
            return
        await conn.ws.send(reply, text=True)


@contextlib.asynccontextmanager
async def serving(pulse: Pulse) -> AsyncIterator[FakeServer]:
    server = FakeServer(pulse)
    async with serve(server.handler, "127.0.0.1", 0, compression=None) as ws_server:
        server.port = ws_server.sockets[0].getsockname()[1]
        yield server
        for conn in list(server.conns):
            await conn.ws.close()


# ---------------------------------------------------------------- the console side


class Mirror:
    """What a console does with the backend's feed: apply every batch, with its prev."""

    def __init__(self, backend: WebSocketBackend, pulse: Pulse) -> None:
        self.state = ConsoleState()
        self.batches: list[FeedBatch] = []
        self.states: list[tuple[BackendState, str]] = []
        self.errors: list[Exception] = []
        self._pulse = pulse
        backend.add_event_listener(self._on_backend_events)
        backend.add_state_listener(self._on_backend_state)

    def _on_backend_events(self, batch: FeedBatch) -> None:
        self.batches.append(batch)
        try:
            self.state.apply(batch)
        except Exception as exc:  # recorded, and the test fails on it
            self.errors.append(exc)
        self._pulse.notify()

    def _on_backend_state(self, state: BackendState, detail: str) -> None:
        self.states.append((state, detail))
        self._pulse.notify()

    def seqs(self) -> list[int]:
        return [e.seq for b in self.batches for e in b if not isinstance(e, Snapshot)]

    def snapshots(self) -> int:
        """How many batches started with a snapshot."""
        return sum(1 for b in self.batches if isinstance(b[0], Snapshot))

    def matches(self, engine: QueueEngine) -> bool:
        snap = engine.snapshot(ME)
        return set(self.state.sessions) == {s.id for s in snap.sessions} and self.state.seq <= snap.seq


@dataclass
class Scene:
    pulse: Pulse
    server: FakeServer
    backend: WebSocketBackend
    mirror: Mirror

    async def until(self, predicate: Callable[[], bool], seconds: float = 5.0) -> None:
        await self.pulse.until(predicate, seconds)

    async def changed(self) -> None:
        """Publish what the engine did and wait until the console applied it."""
        await self.server.publish()
        await self.until(lambda: self.mirror.state.seq >= self._visible_seq())

    def _visible_seq(self) -> int:
        seqs = [e.seq for e in self.server.log if ME in e.audience or ME in e.gone]
        return seqs[-1] if seqs else -1


def scenario(body: Callable[[Scene], Awaitable[None]], *, backoff: tuple[float, ...] = (0.05,), login: bool = True) -> None:
    """Run ``body`` with a fake server and a signed-in backend, on a fresh asyncio loop."""

    async def main() -> None:
        pulse = Pulse()
        async with serving(pulse) as server:
            for _ in range(6):
                server.customer("vpn")
            backend = WebSocketBackend(server.url, ME, PASSWORD, backoff=backoff, connect_timeout=5)
            mirror = Mirror(backend, pulse)
            try:
                if login:
                    await backend.start()
                await body(Scene(pulse, server, backend, mirror))
                assert not mirror.errors, mirror.errors
                assert not server.violations, server.violations
            finally:
                await backend.stop()

    asyncio.run(asyncio.wait_for(main(), 30 * TIMEOUT_SCALE))


# ---------------------------------------------------------------- sign-in, snapshot, feed


def test_the_factory_knows_the_server_kind_and_still_fails_loudly() -> None:
    assert KINDS == ("simulator", "server")
    backend = create_backend("server", url="ws://localhost:8765", username="alex", password="x")
    assert isinstance(backend, WebSocketBackend)
    assert backend.kind == "server"
    assert backend.description == "Server ws://localhost:8765"
    assert backend.endpoint == "ws://localhost:8765/rep"
    with pytest.raises(ValueError, match="unknown backend kind 'telepathy'"):
        create_backend("telepathy")
    with pytest.raises(ValueError, match="ws:// or wss://"):
        create_backend("server", url="http://localhost:8765", username="alex")
    assert server_endpoint("wss://example.org/queue/rep") == "wss://example.org/queue/rep"


def test_login_delivers_the_snapshot_as_the_first_batch() -> None:
    async def body(s: Scene) -> None:
        assert s.backend.state is BackendState.LIVE
        login = s.server.received[0]
        assert isinstance(login, Login) and login.username == ME
        first = s.mirror.batches[0]
        assert [type(e) for e in first] == [Snapshot] and first.prev is None
        assert first[0].data.seq == first[0].seq
        assert s.mirror.state.seq == first[0].seq
        assert s.mirror.state.rep_id == ME
        assert s.mirror.matches(s.server.engine)
        assert len(s.mirror.state.rows["team:network"]) == 6
        assert s.backend.rep == ME and s.backend.token in s.server.tokens
        assert s.backend.grace_period == 30.0
        assert s.mirror.states[0][0] is BackendState.CONNECTING
        assert s.mirror.states[-1] == (BackendState.LIVE, f"signed in as {ME}")

    scenario(body)


def test_bad_credentials_raise_a_login_error_and_close() -> None:
    async def body(s: Scene) -> None:
        backend = WebSocketBackend(s.server.url, ME, "wrong", connect_timeout=5)
        with pytest.raises(LoginError, match="Wrong username or password") as info:
            await backend.start()
        assert info.value.reason == "bad_credentials"
        assert backend.state is BackendState.CLOSED
        assert backend.state_detail == "Wrong username or password."
        assert not backend.needs_login  # never signed in: nothing to sign in *again* to
        await backend.login(PASSWORD)  # the rep retries with the right one
        assert backend.state is BackendState.LIVE
        await backend.stop()
        await backend.stop()  # twice is fine

    scenario(body, login=False)


def test_the_console_says_which_protocol_it_speaks_in_login_and_resume() -> None:
    async def body(s: Scene) -> None:
        # As sent, not as parsed: the parser would fill in the default (1) for a console that said nothing.
        login = s.server.sent_json[0]
        assert isinstance(s.server.received[0], Login) and login["protocol"] == PROTOCOL_VERSION == 4
        await s.server.cut()
        await s.until(lambda: s.server.received_of(Resume) != [] and s.backend.state is BackendState.LIVE)
        index = next(i for i, m in enumerate(s.server.received) if isinstance(m, Resume))
        assert s.server.sent_json[index]["protocol"] == PROTOCOL_VERSION
        # A saved token's resume says it too.
        other = WebSocketBackend(s.server.url, ME, token=s.backend.token, connect_timeout=5)
        await other.start()
        assert isinstance(s.server.received[-1], Resume) and s.server.sent_json[-1]["protocol"] == PROTOCOL_VERSION
        await other.stop()

    scenario(body)


def _upgraded(server: FakeServer) -> None:
    """The server no longer speaks the console's version."""
    server.speaks = range(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2)


def test_a_server_that_no_longer_speaks_the_protocol_is_incompatible_and_not_retried() -> None:
    async def body(s: Scene) -> None:
        _upgraded(s.server)
        backend = WebSocketBackend(s.server.url, ME, PASSWORD, backoff=(0.05,), connect_timeout=5)
        with pytest.raises(IncompatibleServer) as info:
            await backend.start()
        detail = f"this server speaks protocol version {PROTOCOL_VERSION + 1}, the console speaks version {PROTOCOL_VERSION}: update the console"
        assert str(info.value) == detail, "the server's own words"
        assert backend.state is BackendState.CLOSED and backend.state_detail == detail
        assert not backend.needs_login, "signing in again would not help"
        await asyncio.sleep(0.3 * TIMEOUT_SCALE)  # six backoffs: nothing is tried again
        assert len(s.server.received) == 1 and isinstance(s.server.received[0], Login)
        await backend.stop()

    scenario(body, login=False)


def test_a_server_upgraded_while_the_console_was_away_ends_the_reconnect() -> None:
    async def body(s: Scene) -> None:
        _upgraded(s.server)
        await s.server.cut()
        await s.until(lambda: s.backend.state is BackendState.CLOSED)
        detail = f"this server speaks protocol version {PROTOCOL_VERSION + 1}, the console speaks version {PROTOCOL_VERSION}: update the console"
        assert s.backend.state_detail == detail
        assert s.backend.close_code == 4426 and not s.backend.needs_login
        with pytest.raises(NotConnectedError):
            await s.backend.get_next()
        await asyncio.sleep(0.3 * TIMEOUT_SCALE)  # six backoffs: nothing is tried again
        assert len(s.server.received_of(Resume)) == 1

    scenario(body)


def test_an_unreachable_server_is_reported_as_such() -> None:
    async def body(s: Scene) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, never listening: refused
            backend = WebSocketBackend(f"ws://127.0.0.1:{port}", ME, PASSWORD, connect_timeout=5)
            with pytest.raises(ServerUnreachable, match=f"Cannot reach the server at ws://127.0.0.1:{port}"):
                await backend.start()
        assert backend.state is BackendState.CLOSED

    scenario(body, login=False)


def test_a_big_snapshot_is_decoded_and_applied_without_the_collector_then_frozen() -> None:
    """A busy site's snapshot is millions of objects: no collection may walk them while
    they are built, nor afterwards (they are the console's state, alive for the shift)."""
    collector_on_while_applying: list[bool] = []

    async def body(s: Scene) -> None:
        for _ in range(600):
            s.server.customer("vpn")
        backend = WebSocketBackend(s.server.url, ME, PASSWORD, connect_timeout=5)
        mirror = Mirror(backend, s.pulse)
        backend.add_event_listener(lambda batch: collector_on_while_applying.append(gc.isenabled()))
        gc.unfreeze()
        try:
            await backend.start()
            assert isinstance(mirror.batches[0][0], Snapshot) and mirror.matches(s.server.engine)
            assert len(mirror.state.rows["team:network"]) == 606
            assert collector_on_while_applying == [False]
            assert gc.isenabled()
            # What was decoded is frozen: the views are untracked by design, their lists and dicts are not.
            assert gc.get_freeze_count() > 606 * 4
            # A small frame (an event batch) goes through the collector as usual.
            s.server.customer("vpn")
            await s.server.publish()
            await s.until(lambda: len(mirror.state.rows["team:network"]) == 607)
            assert collector_on_while_applying[-1] is True
        finally:
            await backend.stop()
            gc.unfreeze()

    scenario(body)


def test_a_snapshot_in_parts_is_joined_and_delivered_once_with_loading_progress() -> None:
    """docs/protocol.md, Snapshot: a snapshot frame with the first sessions, then snapshot_part
    frames; the console delivers one snapshot with every session, in order, and its loading
    listeners hear how many sessions are in meanwhile (the window's "Loading N customers")."""

    async def body(s: Scene) -> None:
        for _ in range(10):
            s.server.customer("vpn")
        s.server.snapshot_rows = 4
        backend = WebSocketBackend(s.server.url, ME, PASSWORD, connect_timeout=5)
        mirror = Mirror(backend, s.pulse)
        progress: list[tuple[int, int]] = []
        backend.add_loading_listener(lambda done, total: progress.append((done, total)))
        try:
            await backend.start()
            expected = s.server.engine.snapshot(ME)
            [first] = [b for b in mirror.batches if isinstance(b[0], Snapshot)]
            snapshot = first[0]
            assert isinstance(snapshot, Snapshot) and snapshot.seq == expected.seq
            assert [v.id for v in snapshot.data.sessions] == [v.id for v in expected.sessions] and len(expected.sessions) == 16
            assert mirror.matches(s.server.engine) and len(mirror.state.rows["team:network"]) == 16
            # The last part delivers the snapshot, then says all are in (the window's "Loading" hides on it).
            assert progress == [(4, 16), (8, 16), (12, 16), (16, 16)]
            # Events follow from the snapshot's seq, as for a snapshot in one frame.
            s.server.customer("vpn")
            await s.server.publish()
            await s.until(lambda: len(mirror.state.rows["team:network"]) == 17)
        finally:
            await backend.stop()

    scenario(body)


def test_a_snapshot_part_out_of_order_fails_the_sign_in_rather_than_being_guessed_at() -> None:
    async def body(s: Scene) -> None:
        s.server.snapshot_rows, s.server.misnumber_part = 2, 2
        backend = WebSocketBackend(s.server.url, ME, PASSWORD, connect_timeout=5)
        with pytest.raises(ServerProtocolError, match=r"snapshot part 2 of event \d+ came, part 1 of the snapshot of event \d+ was due"):
            await backend.start()
        assert backend.state is BackendState.CLOSED

    scenario(body, login=False)


def test_a_saved_token_resumes_into_a_fresh_snapshot() -> None:
    async def body(s: Scene) -> None:
        token = s.backend.token
        assert token is not None
        other = WebSocketBackend(s.server.url, ME, token=token, connect_timeout=5)
        mirror = Mirror(other, s.pulse)
        await other.start()
        resume = s.server.received[-1]
        assert isinstance(resume, Resume) and resume.token == token and resume.last_seq == SNAPSHOT_PLEASE
        assert isinstance(mirror.batches[0][0], Snapshot) and mirror.matches(s.server.engine)
        await other.stop()

    scenario(body)


def test_events_frames_become_batches_with_prev_that_the_state_applies() -> None:
    async def body(s: Scene) -> None:
        before = s.mirror.state.seq
        sid = s.server.customer("vpn")
        s.server.engine.start_with_issue("printer", s.server.world.intake())  # hardware: not mine
        other = s.server.customer("vpn")
        await s.changed()
        batch = s.mirror.batches[-1]
        assert isinstance(batch, FeedBatch) and batch.prev == before
        assert [e.data.session.id for e in batch] == [sid, other]
        assert batch[1].seq - batch[0].seq == 2, "the global numbering skips what the rep may not see"
        assert sid in s.mirror.state.rows["team:network"]
        assert s.backend.last_seq == batch[-1].seq == s.mirror.state.seq

    scenario(body)


# ---------------------------------------------------------------- commands


def test_commands_return_results_and_errors_become_command_errors() -> None:
    async def body(s: Scene) -> None:
        sid = next(iter(s.mirror.state.rows["team:network"]))
        session = await s.backend.accept(sid)
        assert session.owner == ME and session.chat is not UNSET
        assert s.server.received_commands(CommandName.ACCEPT)[0].args == {"session": sid}

        taken = s.server.customer("vpn")
        s.server.engine.accept("priya", taken)
        with pytest.raises(CommandError) as info:
            await s.backend.accept(taken)
        assert info.value.reason is Reason.ALREADY_TAKEN and info.value.data["by"] == "priya"
        assert info.value.detail == "Already taken by Priya Raman."

        with pytest.raises(CommandError) as info:
            await s.backend.call("teleport", session=sid)
        assert info.value.reason is Reason.UNKNOWN_COMMAND
        assert len(s.server.violations) == 1 and "teleport" in s.server.violations[0]
        s.server.violations.clear()  # that one was on purpose

        s.server.protocol_errors[CommandName.HOLD] = ErrorReason.NOT_LOGGED_IN
        with pytest.raises(ProtocolCommandError) as perr:
            await s.backend.hold(sid)
        assert perr.value.code == ErrorReason.NOT_LOGGED_IN and perr.value.reason is Reason.INVALID
        assert perr.value.detail == "Not signed in to the server."

        ids = [m.id for m in s.server.received]
        assert len(ids) == len(set(ids)), "request ids are unique within the login session"

    scenario(body)


def test_commands_fail_fast_when_not_signed_in() -> None:
    async def body(s: Scene) -> None:
        with pytest.raises(NotConnectedError, match="Not connected to the server"):
            await s.backend.say("S1", "hello")

    scenario(body, login=False)


# ---------------------------------------------------------------- reconnecting


def test_a_cut_connection_reconnects_and_resumes_with_the_missed_events_once_in_order() -> None:
    async def body(s: Scene) -> None:
        sid = next(iter(s.mirror.state.rows["team:network"]))
        await s.backend.accept(sid)
        await s.changed()
        applied = s.mirror.state.seq
        s.server.accepting = False
        await s.server.cut(CloseCode.SERVER_ERROR, "server error")
        await s.until(lambda: s.backend.state is BackendState.RECONNECTING)
        assert s.backend.disconnected_since is not None
        assert s.mirror.states[-1][1].startswith("reconnecting… (attempt ")
        # The world goes on while the console is away.
        missed = [s.server.customer("vpn") for _ in range(3)]
        s.server.engine.customer_say(sid, "hello? anyone there?")
        await s.server.publish()  # to nobody
        await s.until(lambda: "next in" in s.mirror.states[-1][1] and "attempt 3" in s.mirror.states[-1][1])
        s.server.accepting = True
        await s.until(lambda: s.backend.state is BackendState.LIVE)
        await s.changed()

        resume = s.server.received_of(Resume)[-1]
        assert resume.last_seq == applied and resume.token == s.backend.token
        seqs = s.mirror.seqs()
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "each event once, in order"
        after = [b for b in s.mirror.batches if b.prev is not None and b.prev >= applied]
        assert after[0].prev == applied
        assert all(m in s.mirror.state.rows["team:network"] for m in missed)
        assert s.mirror.state.chats[sid][-1].text == "hello? anyone there?"
        assert s.mirror.matches(s.server.engine)
        assert s.backend.disconnected_since is None
        states = [st for st, _ in s.mirror.states]
        assert states[-2:] == [BackendState.RECONNECTING, BackendState.LIVE]

    scenario(body)


def test_chat_lines_typed_while_disconnected_are_sent_once_each_in_order_after_the_reconnect() -> None:
    async def body(s: Scene) -> None:
        sid = next(iter(s.mirror.state.rows["team:network"]))
        await s.backend.accept(sid)
        s.server.accepting = False
        await s.server.cut()
        await s.until(lambda: s.backend.state is BackendState.RECONNECTING)
        first = asyncio.ensure_future(s.backend.say(sid, "one"))
        second = asyncio.ensure_future(s.backend.team_say("network", "two"))
        third = asyncio.ensure_future(s.backend.say(sid, "three"))
        # Let the three calls reach the outbox (one pass of the loop runs each
        # task up to its first wait, in order); then a command that cannot wait.
        await asyncio.sleep(0)
        with pytest.raises(NotConnectedError, match="reconnecting"):
            await s.backend.hold(sid)
        assert not first.done() and not s.server.received_commands(CommandName.SAY)
        s.server.accepting = True
        lines = await asyncio.wait_for(asyncio.gather(first, second, third), 5 * TIMEOUT_SCALE)
        assert [line.text for line in lines] == ["one", "two", "three"]
        sent = [m for m in s.server.received_of(Command) if m.name in (CommandName.SAY, CommandName.TEAM_SAY)]
        assert [m.args["text"] for m in sent] == ["one", "two", "three"]
        assert len({m.id for m in sent}) == 3
        chat = [line.text for line in s.server.engine.session(sid).chat if line.author == ME]
        assert chat == ["one", "three"]
        assert not s.server.received_commands(CommandName.HOLD)

    scenario(body)


def test_a_command_whose_reply_was_lost_is_resent_with_the_same_id_and_done_once() -> None:
    async def body(s: Scene) -> None:
        sid = next(iter(s.mirror.state.rows["team:network"]))
        s.server.lose_reply_to.add(CommandName.ACCEPT)
        session = await s.backend.accept(sid)  # the reply is lost, the connection drops, resume
        assert session.owner == ME
        sent = s.server.received_commands(CommandName.ACCEPT)
        assert len(sent) == 2 and sent[0].id == sent[1].id, "the retry reuses the id"
        assert [name for _, name in s.server.executed].count(CommandName.ACCEPT) == 1
        assert any(st is BackendState.RECONNECTING for st, _ in s.mirror.states)

    scenario(body)


def test_too_slow_4408_resumes_at_once_without_backoff() -> None:
    async def body(s: Scene) -> None:
        await s.server.cut(CloseCode.TOO_SLOW, "too slow")
        await s.until(lambda: s.backend.state is BackendState.RECONNECTING)
        assert s.mirror.states[-1][1] == "reconnecting… (attempt 1, next in 0 s)"
        await s.until(lambda: s.backend.state is BackendState.LIVE, 5)

    scenario(body, backoff=(60,))


def test_the_reconnect_backoff_has_full_jitter() -> None:
    backoff = Backoff(0.5, 30.0, rng=random.Random(13))
    assert [backoff.ceiling(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.ceiling(10_000) == 30  # no overflow, however long the server is away
    # 2,000 consoles dropped at once: their first retries spread evenly over [0, ceiling].
    for attempt in (0, 3, 7):
        ceiling = backoff.ceiling(attempt)
        delays = [backoff.delay(attempt) for _ in range(2000)]
        assert all(0 <= d <= ceiling for d in delays)
        bins = [0] * 10
        for d in delays:
            bins[min(int(d / ceiling * 10), 9)] += 1
        assert all(150 <= n <= 250 for n in bins), (attempt, bins)  # 200 each, evenly
        assert max(delays) - min(delays) > 0.95 * ceiling
    # Explicit ceilings are jittered the same way; the generator is the one injected.
    fixed = Backoff(ceilings=(1, 2), rng=random.Random(1))
    again = random.Random(1)
    assert [fixed.delay(n) for n in range(4)] == [again.uniform(0, c) for c in (1, 2, 2, 2)]
    for bad in ((), (-1.0,)):
        with pytest.raises(ValueError):
            Backoff(ceilings=bad)


class _Fraction(random.Random):
    """A generator whose every uniform(a, b) is that fraction of the way from a to b."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.fraction


def test_after_a_server_restart_even_the_first_retry_waits_its_jittered_delay() -> None:
    async def body(s: Scene) -> None:
        rng = _Fraction(0.25)
        backend = WebSocketBackend(s.server.url, ME, PASSWORD, backoff=Backoff(0.4, 10.0, rng=rng), connect_timeout=5)
        try:
            await backend.start()
            s.server.accepting = False  # the server is restarting: nothing to resume yet
            await s.server.cut(CloseCode.GOING_AWAY, "restarting")
            async with asyncio.timeout(5 * TIMEOUT_SCALE):
                while len(rng.calls) < 2:  # this backend is not the scene's: polled
                    await asyncio.sleep(0.01)
            assert rng.calls[:2] == [(0.0, 0.4), (0.0, 0.8)]
            assert backend.state_detail in ("reconnecting… (attempt 1, next in 0.1 s)", "reconnecting… (attempt 2, next in 0.2 s)")
            s.server.accepting = True
            async with asyncio.timeout(5 * TIMEOUT_SCALE):
                while backend.state is not BackendState.LIVE:
                    await asyncio.sleep(0.01)
        finally:
            await backend.stop()

    scenario(body)


def test_outside_the_resume_window_a_fresh_snapshot_replaces_the_state() -> None:
    async def body(s: Scene) -> None:
        gone = next(iter(s.mirror.state.rows["team:network"]))
        s.server.accepting = False
        await s.server.cut()
        await s.until(lambda: s.backend.state is BackendState.RECONNECTING)
        s.server.engine.accept("priya", gone)
        fresh = s.server.customer("vpn")
        s.server.forget_log()
        s.server.accepting = True
        snapshots = s.mirror.snapshots()
        await s.until(lambda: s.backend.state is BackendState.LIVE)
        assert s.mirror.snapshots() == snapshots + 1
        rows = s.mirror.state.rows["team:network"]
        assert fresh in rows and gone not in rows
        assert s.mirror.matches(s.server.engine)
        await s.changed()  # and the feed goes on from the new snapshot
        newer = s.server.customer("vpn")
        await s.changed()
        assert newer in s.mirror.state.rows["team:network"]

    scenario(body)


def test_resync_reconnects_for_a_fresh_snapshot() -> None:
    async def body(s: Scene) -> None:
        s.backend.resync()
        s.backend.resync()  # the window may ask twice: one resync
        await s.until(lambda: len(s.mirror.batches) >= 2 and s.backend.state is BackendState.LIVE)
        assert isinstance(s.mirror.batches[1][0], Snapshot)
        resumes = s.server.received_of(Resume)
        assert len(resumes) == 1 and resumes[0].last_seq == SNAPSHOT_PLEASE
        assert s.mirror.matches(s.server.engine)

    scenario(body)


def test_a_malformed_events_frame_is_not_guessed_at_a_fresh_snapshot_follows() -> None:
    async def body(s: Scene) -> None:
        snapshots = s.mirror.snapshots()
        for conn in s.server.conns:
            # Malformed on purpose (a seq that is not a number): written by hand.
            await conn.ws.send(json.dumps({"type": MessageType.EVENTS, "prev": conn.prev, "events": [{"seq": "soon", "kind": EventKind.SESSION}]}))
        await s.until(lambda: s.mirror.snapshots() == snapshots + 1)
        await s.until(lambda: s.backend.state is BackendState.LIVE)
        assert [m.last_seq for m in s.server.received_of(Resume)] == [SNAPSHOT_PLEASE]
        assert s.mirror.matches(s.server.engine)

    scenario(body)


# ---------------------------------------------------------------- the login session ends


def test_4401_closes_with_the_auth_detail_and_fails_waiting_commands() -> None:
    async def body(s: Scene) -> None:
        s.server.tokens.clear()  # the token was revoked
        s.server.accepting = False
        await s.server.cut()
        await s.until(lambda: s.backend.state is BackendState.RECONNECTING)
        waiting = asyncio.ensure_future(s.backend.say("S1", "still there?"))
        await asyncio.sleep(0)  # into the outbox
        s.server.accepting = True
        await s.until(lambda: s.backend.state is BackendState.CLOSED)
        assert s.backend.state_detail == "Your sign-in is no longer valid. Sign in again."
        assert s.backend.needs_login and s.backend.close_code == 4401
        with pytest.raises(NotConnectedError, match="Signed out"):
            await waiting
        with pytest.raises(NotConnectedError, match="Sign in again"):
            await s.backend.get_next()
        await s.backend.login(PASSWORD)  # signing in again: a fresh snapshot
        assert s.backend.state is BackendState.LIVE and not s.backend.needs_login
        assert isinstance(s.mirror.batches[-1][0], Snapshot)

    scenario(body)


def test_a_4401_close_while_live_ends_the_session_too() -> None:
    async def body(s: Scene) -> None:
        await s.server.cut(CloseCode.NOT_AUTHENTICATED, "session revoked by an administrator")
        await s.until(lambda: s.backend.state is BackendState.CLOSED)
        assert s.backend.state_detail == "Signed out by the server: session revoked by an administrator."
        assert s.backend.needs_login

    scenario(body)


def test_logout_closes_with_4000() -> None:
    async def body(s: Scene) -> None:
        token = s.backend.token
        await s.backend.logout()
        assert isinstance(s.server.received[-1], Logout)
        assert token not in s.server.tokens
        assert s.backend.state is BackendState.CLOSED
        assert s.backend.state_detail == "Signed out: this login session was logged out."
        assert s.backend.close_code == 4000 and s.backend.needs_login

    scenario(body)


# ================================================================ the window over the backend


def _run(qtbot, coro: Awaitable[Any], seconds: float = 5.0) -> Any:  # type: ignore[no-untyped-def]
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout(seconds))
    return task.result()


@pytest.fixture
def fake(qtbot, aloop) -> Iterator[FakeServer]:  # type: ignore[no-untyped-def]
    """A fake server on the qasync loop, serving while the test runs."""
    server = FakeServer(Pulse())
    for _ in range(5):
        server.customer("vpn")
    with serving_in_qt(qtbot, aloop, server):
        yield server


@contextlib.contextmanager
def serving_in_qt(qtbot, aloop, server: FakeServer) -> Iterator[FakeServer]:  # type: ignore[no-untyped-def]
    """Serve ``server`` on the qasync loop while the block runs; it must have seen no protocol violation."""
    stop = asyncio.Event()
    ready: asyncio.Future[None] = aloop.create_future()

    async def serve_until_stopped() -> None:
        async with serve(server.handler, "127.0.0.1", 0, compression=None) as ws_server:
            server.port = ws_server.sockets[0].getsockname()[1]
            ready.set_result(None)
            await stop.wait()
            for conn in list(server.conns):
                await conn.ws.close()

    task = asyncio.ensure_future(serve_until_stopped())
    qtbot.waitUntil(ready.done, timeout=timeout(5))
    yield server
    stop.set()
    qtbot.waitUntil(task.done, timeout=timeout(5))
    assert not server.violations, server.violations


def _window(qtbot, backend: WebSocketBackend, settings: Path):  # type: ignore[no-untyped-def]
    from repconsole.ui.app import build_window

    window = build_window(backend, settings)
    qtbot.addWidget(window)
    window.show()
    return window


def _close(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    window.quit_guard.close_now()
    _run(qtbot, window.shutdown())


def _live_window(qtbot, fake: FakeServer, settings: Path):  # type: ignore[no-untyped-def]
    """The window signed in to ``fake`` as ME, live, showing the Networking queue's five customers; and its backend."""
    backend = WebSocketBackend(fake.url, ME, PASSWORD, backoff=(0.05,), connect_timeout=5)
    window = _window(qtbot, backend, settings)
    window.start_soon()
    qtbot.waitUntil(lambda: window.state.seq >= 0 and backend.state is BackendState.LIVE, timeout=timeout(5))
    window.queue_list.select("team:network")
    qtbot.waitUntil(lambda: window.model.rowCount() == 5, timeout=timeout(2))
    return window, backend


def test_the_window_greys_the_queue_while_reconnecting_and_recovers(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window, backend = _live_window(qtbot, fake, tmp_path / "s")
    assert window.backend_label.text() == f"Server {fake.url} · live"

    fake.accepting = False
    _run(qtbot, fake.cut())
    qtbot.waitUntil(lambda: backend.state is BackendState.RECONNECTING, timeout=timeout(3))
    assert window.backend_label.text() == f"Server {fake.url} · reconnecting"
    assert window.stale_label.isVisible() and window.stale_label.text().startswith("reconnecting… (attempt")
    assert not window.table.isEnabled() and not window.queue_list.isEnabled()
    assert window.grace_label.text().startswith("Connection lost: your sessions are kept for ")
    # A line typed now waits in the outbox; Get Next fails with a clear message.
    with qtbot.waitSignal(window.commandFailed, timeout=timeout(3)) as blocker:
        window.get_next_button.click()
    assert "reconnecting" in blocker.args[1]
    fresh = fake.customer("vpn")
    fake.accepting = True
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE, timeout=timeout(5))
    _run(qtbot, fake.publish())
    qtbot.waitUntil(lambda: window.model.row_by_id(fresh) is not None, timeout=timeout(3))
    assert window.backend_label.text() == f"Server {fake.url} · live"
    assert not window.stale_label.isVisible() and window.table.isEnabled()
    assert window.grace_label.text() == ""
    _close(qtbot, window)


def test_the_window_accepts_and_chats_over_the_backend(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window, _ = _live_window(qtbot, fake, tmp_path / "s")
    sid = window.model.row_ids()[0]
    window.accept_row(sid)
    qtbot.waitUntil(lambda: sid in window.session_tabs, timeout=timeout(3))
    assert fake.engine.session(sid).owner == ME
    tab = window.session_tabs[sid]
    tab.input_edit.setText("Hello from the server console")
    from PySide6.QtCore import Qt

    qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: any(line.text == "Hello from the server console" for line in fake.engine.session(sid).chat), timeout=timeout(3))
    _close(qtbot, window)


def test_an_outage_shows_in_the_tab_and_a_line_typed_then_is_pending_until_sent_once(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    window, backend = _live_window(qtbot, fake, tmp_path / "s")
    sid = window.model.row_ids()[0]
    window.accept_row(sid)
    qtbot.waitUntil(lambda: sid in window.session_tabs, timeout=timeout(3))
    tab = window.session_tabs[sid]
    assert not tab.outage_banner.isVisibleTo(tab)

    fake.accepting = False
    _run(qtbot, fake.cut())
    qtbot.waitUntil(lambda: backend.state is BackendState.RECONNECTING, timeout=timeout(3))
    assert tab.outage_banner.isVisibleTo(tab) and "Not connected to the server" in tab.outage_banner.text()
    tab.input_edit.setText("Still here, one moment")
    qtbot.keyClick(tab.input_edit, Qt.Key.Key_Return)
    assert tab.chat_view.pending_texts() == ["Still here, one moment"], "shown at once, as pending"
    assert tab.input_edit.text() == ""

    fake.accepting = True
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE, timeout=timeout(5))
    qtbot.waitUntil(lambda: not tab.chat_view.pending_texts(), timeout=timeout(3))
    _run(qtbot, fake.publish())
    assert not tab.outage_banner.isVisibleTo(tab)
    assert [line.text for line in fake.engine.session(sid).chat].count("Still here, one moment") == 1
    assert tab.chat_view.toPlainText().count("Still here, one moment") == 1, "never shown twice"
    _close(qtbot, window)


def test_a_session_accepted_is_the_reps_in_its_tab_before_its_event_arrives(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window, _ = _live_window(qtbot, fake, tmp_path / "s")
    fake.events_after_reply = True
    sid = window.model.row_ids()[0]
    window.accept_row(sid)
    qtbot.waitUntil(lambda: sid in window.session_tabs, timeout=timeout(3))
    tab = window.session_tabs[sid]
    assert window.state.sessions[sid].owner is None, "the event has not arrived"
    assert tab.is_owner() and tab.input_edit.isEnabled(), "the result says the session is the rep's"
    _run(qtbot, fake.publish())
    qtbot.waitUntil(lambda: window.state.sessions[sid].owner == ME, timeout=timeout(3))
    assert window.session_tabs.get(sid) is tab and tab.is_owner()
    _close(qtbot, window)


def test_the_login_dialog_shows_a_wrong_password_and_lets_the_rep_retry(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLineEdit

    from repconsole.ui.login import sign_in

    backend = WebSocketBackend(fake.url, ME, backoff=(0.05,), connect_timeout=5)
    window = _window(qtbot, backend, tmp_path / "s")
    window.hide()
    signing = asyncio.ensure_future(sign_in(backend))
    qtbot.waitUntil(lambda: _dialog() is not None, timeout=timeout(3))
    dialog = _dialog()
    # The first sign-in can change the server; only signing in again cannot.
    assert dialog.server_edit.text() == fake.url and not dialog.server_edit.isReadOnly()
    assert dialog.username_edit.text() == ME
    assert dialog.password_edit.echoMode() is QLineEdit.EchoMode.Password
    assert dialog.sign_in_button.text() == "Sign in"

    dialog.password_edit.setText("wrong")
    qtbot.mouseClick(dialog.sign_in_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error_label.text() != "", timeout=timeout(3))
    assert dialog.error_label.text() == "Wrong username or password."
    assert dialog.password_edit.text() == "" and not dialog.busy and dialog.isVisible()

    dialog.password_edit.setText(PASSWORD)
    with qtbot.waitSignal(dialog.signInRequested, timeout=timeout(2)):
        qtbot.keyClick(dialog.password_edit, Qt.Key.Key_Return)
    assert dialog.busy and not dialog.sign_in_button.isEnabled() and dialog.sign_in_button.text() == "Signing in…"
    qtbot.waitUntil(signing.done, timeout=timeout(5))
    assert signing.result() is True
    assert backend.state is BackendState.LIVE and window.state.rep_id == ME
    _close(qtbot, window)


def _dialog():  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication

    from repconsole.ui.login import LoginDialog

    found = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
    return found[0] if found else None


def test_the_login_dialog_reports_an_unreachable_server_and_cancel_gives_up(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import socket

    from repconsole.ui.login import sign_in

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
        backend = WebSocketBackend(url, ME, connect_timeout=5)
        signing = asyncio.ensure_future(sign_in(backend))
        qtbot.waitUntil(lambda: _dialog() is not None, timeout=timeout(3))
        dialog = _dialog()
        dialog.password_edit.setText(PASSWORD)
        dialog.sign_in_button.click()
        qtbot.waitUntil(lambda: dialog.error_label.text() != "", timeout=timeout(5))
    assert dialog.error_label.text().startswith(f"Cannot reach the server at {url}")
    assert dialog.password_edit.text() == PASSWORD, "an unreachable server keeps the typed password"
    dialog.reject()
    qtbot.waitUntil(signing.done, timeout=timeout(3))
    assert signing.result() is False


def test_signed_out_by_the_server_shows_the_login_dialog_again(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from repconsole.ui.app import keep_signed_in
    from repconsole.ui.login import LoginDialog

    backend = WebSocketBackend(fake.url, ME, PASSWORD, backoff=(0.05,), connect_timeout=5)
    window = _window(qtbot, backend, tmp_path / "s")
    keep_signed_in(window, backend)
    window.start_soon()
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE, timeout=timeout(5))
    _run(qtbot, fake.cut(CloseCode.LOGGED_OUT, "logged out"))
    qtbot.waitUntil(lambda: window.findChild(LoginDialog) is not None and window.findChild(LoginDialog).isVisible(), timeout=timeout(3))
    dialog = window.findChild(LoginDialog)
    assert "Signed out: this login session was logged out. Sign in again" in dialog.message_label.text()
    assert dialog.username_edit.isReadOnly() and dialog.username_edit.text() == ME
    assert dialog.server_edit.isReadOnly() and dialog.server_edit.text() == fake.url
    assert window.stale_label.isVisible() and not window.table.isEnabled()
    dialog.password_edit.setText(PASSWORD)
    dialog.sign_in_button.click()
    qtbot.waitUntil(lambda: backend.state is BackendState.LIVE and not window.stale_label.isVisible(), timeout=timeout(5))
    qtbot.waitUntil(lambda: not any(d.isVisible() for d in window.findChildren(LoginDialog)), timeout=timeout(2))
    assert window.table.isEnabled()
    _close(qtbot, window)


def test_the_first_sign_in_takes_a_typed_server_address_and_remembers_server_and_user(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from repconsole.settings import Settings
    from repconsole.ui.login import sign_in

    settings = Settings(tmp_path / "s")
    settings.preferences.startup.recent_servers = ["wss://old.example", fake.url + "/"]
    backend = WebSocketBackend("ws://wrong.invalid:1", "", backoff=(0.05,), connect_timeout=5)
    signing = asyncio.ensure_future(sign_in(backend, settings=settings))
    qtbot.waitUntil(lambda: _dialog() is not None, timeout=timeout(3))
    dialog = _dialog()
    combo = dialog.server_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["wss://old.example", fake.url + "/"], "the servers used before"
    dialog.server_combo.setCurrentText("http://not-a-queue-server")
    dialog.username_edit.setText(ME)
    dialog.password_edit.setText(PASSWORD)
    dialog.sign_in_button.click()
    assert dialog.error_label.text().startswith("Enter the server address: ws://host:port or wss://host, several separated by commas")
    assert "http://not-a-queue-server" in dialog.error_label.text() and not dialog.busy
    assert dialog.server_edit.text() == "http://not-a-queue-server", "what was typed stays to be corrected"
    dialog.server_combo.setCurrentIndex(1)  # picked from the history
    dialog.sign_in_button.click()
    qtbot.waitUntil(signing.done, timeout=timeout(5))
    assert signing.result() is True and backend.url == fake.url and backend.state is BackendState.LIVE
    startup = Settings.load(tmp_path / "s")[0].preferences.startup
    assert (startup.backend, startup.server_url, startup.user) == ("server", fake.url, ME)
    assert startup.recent_servers == [fake.url, "wss://old.example", fake.url + "/"]
    _run(qtbot, backend.stop())


def test_the_sign_in_dialog_takes_several_servers_signs_in_on_one_that_answers_and_remembers_the_list(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import socket

    from repconsole.settings import Settings
    from repconsole.ui.login import sign_in

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(tmp_path / "s")
    backend = WebSocketBackend("ws://wrong.invalid:1", "", backoff=(0.05,), connect_timeout=5)
    signing = asyncio.ensure_future(sign_in(backend, settings=settings))
    qtbot.waitUntil(lambda: _dialog() is not None, timeout=timeout(3))
    dialog = _dialog()
    typed = f"{dead}, http://bad.example"
    dialog.server_combo.setCurrentText(typed)
    dialog.username_edit.setText(ME)
    dialog.password_edit.setText(PASSWORD)
    dialog.sign_in_button.click()
    assert "http://bad.example" in dialog.error_label.text() and not dialog.busy and dialog.server_edit.text() == typed, "a bad address: said, and nothing lost"
    assert dialog.password_edit.text() == PASSWORD
    dialog.server_combo.setCurrentText(f"{dead},{fake.url}/")
    dialog.sign_in_button.click()
    qtbot.waitUntil(signing.done, timeout=timeout(5))
    assert signing.result() is True and backend.url == fake.url and backend.servers.urls == (dead, fake.url)
    startup = Settings.load(tmp_path / "s")[0].preferences.startup
    assert (startup.server_url, startup.recent_servers) == (f"{dead}, {fake.url}", [f"{dead}, {fake.url}"]), "the list survives a restart"
    _run(qtbot, backend.stop())


def test_the_login_dialog_offers_the_simulator_and_remembers_the_choice(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from repconsole.backend.simulator import SimulatorBackend
    from repconsole.preferences import StartupBackend
    from repconsole.settings import Settings
    from repconsole.ui.login import choose_backend

    settings = Settings(tmp_path / "s")
    settings.preferences.startup.backend = StartupBackend.SERVER
    settings.preferences.startup.server_url = "ws://queue.example:8765"
    settings.preferences.startup.user = "sam"
    opened: list = []
    choosing = asyncio.ensure_future(choose_backend(settings, lambda: SimulatorBackend(population=3, tick=0), opened=opened.append))
    qtbot.waitUntil(lambda: bool(opened), timeout=timeout(3))
    dialog = opened[0]
    # The last choice, server and user, prefilled.
    assert dialog.server_radio.isChecked() and dialog.server_edit.text() == "ws://queue.example:8765" and dialog.username_edit.text() == "sam"
    assert dialog.password_edit.hasFocus() or not dialog.isActiveWindow()
    dialog.grab().save("/tmp/s11-login-server.png")
    dialog.simulator_radio.setChecked(True)
    assert not dialog.password_edit.isEnabled() and not dialog.server_combo.isEnabled() and dialog.sign_in_button.text() == "Start"
    dialog.grab().save("/tmp/s11-login-simulator.png")
    dialog.sign_in_button.click()
    qtbot.waitUntil(choosing.done, timeout=timeout(3))
    assert isinstance(choosing.result(), SimulatorBackend)
    assert Settings.load(tmp_path / "s")[0].preferences.startup.backend is StartupBackend.SIMULATOR


def test_signing_in_from_the_login_dialog_hands_the_snapshot_to_the_window(qtbot, fake: FakeServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from repconsole.settings import Settings
    from repconsole.ui.login import EarlyFeed, choose_backend
    from repconsole.ui.mainwindow import MainWindow

    settings = Settings(tmp_path / "s")
    early = EarlyFeed()
    opened: list = []
    choosing = asyncio.ensure_future(choose_backend(settings, lambda: None, url=fake.url, early=early, opened=opened.append))  # type: ignore[arg-type,return-value]
    qtbot.waitUntil(lambda: bool(opened), timeout=timeout(3))
    dialog = opened[0]
    assert dialog.server_radio.isChecked(), "a server given on the command line is preselected"
    dialog.username_edit.setText(ME)
    dialog.password_edit.setText("wrong")
    dialog.sign_in_button.click()
    qtbot.waitUntil(lambda: dialog.error_label.text() != "", timeout=timeout(3))
    assert dialog.error_label.text() == "Wrong username or password." and not choosing.done()
    dialog.password_edit.setText(PASSWORD)
    dialog.sign_in_button.click()
    qtbot.waitUntil(choosing.done, timeout=timeout(5))
    backend = choosing.result()
    assert isinstance(backend, WebSocketBackend) and backend.state is BackendState.LIVE and early.batches
    window = MainWindow(backend, settings)
    qtbot.addWidget(window)
    early.hand_over(window.deliver)
    assert window.state.rep_id == ME and window.state.seq >= 0 and any(window.state.rows.values()) and early.batches == []
    window.show()
    window.start_soon()  # already signed in: starts nothing new
    assert Settings.load(tmp_path / "s")[0].preferences.startup.server_url == fake.url
    _close(qtbot, window)


# ================================================================ the command line


def test_the_command_line_takes_a_server_url_and_a_user() -> None:
    from repconsole.cli import build_parser
    from repconsole.ui.app import create_console_backend

    args = build_parser().parse_args(["--server", "ws://queue.example.com:8765", "--user", "alex"])
    backend = create_console_backend(args)
    assert isinstance(backend, WebSocketBackend)
    assert backend.url == "ws://queue.example.com:8765" and backend.username == "alex"
    assert create_console_backend(build_parser().parse_args(["--seed", "3"])).kind == "simulator"


def test_the_command_line_takes_several_servers_repeated_or_with_commas(tmp_path: Path) -> None:
    from repconsole.cli import build_parser
    from repconsole.settings import Settings
    from repconsole.ui.app import _servers_text, create_console_backend

    args = build_parser().parse_args(["--server", "ws://a.example:1, ws://b.example:2/", "--server", "wss://c.example", "--server", "ws://a.example:1"])
    assert args.server == ["ws://a.example:1", "ws://b.example:2", "wss://c.example", "ws://a.example:1"]
    backend = create_console_backend(args)
    assert isinstance(backend, WebSocketBackend)
    assert backend.servers.urls == ("ws://a.example:1", "ws://b.example:2", "wss://c.example"), "a repeat counts once"
    assert backend.url == "ws://a.example:1"
    assert backend.endpoint == "ws://a.example:1/rep" and backend.description == "Server ws://a.example:1"
    # The preferences keep the list as one line: the same servers, however they were typed.
    settings = Settings(tmp_path)
    settings.preferences.startup.server_url = "ws://a.example:1,ws://b.example:2 wss://c.example/"
    assert _servers_text(backend.servers.urls) == _servers_text(settings.preferences.startup.server_url)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", "http://queue.example.com:8765"], "must be a ws:// or wss:// URL"),
        (["--server", "ws://queue.example.com:87x"], "bad port"),
        (["--server", "ws://:8765"], "no host"),
        (["--server", "ws://a.example:1,http://b.example:2"], "must be a ws:// or wss:// URL, e.g. ws://localhost:8765 (got 'http://b.example:2')"),
        (["--server", " , "], "no server address given"),
        (["--user", "alex"], "--user needs --server"),
    ],
)
def test_the_command_line_rejects_a_bad_server_option(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from repconsole.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_console_with_server_opens_the_sign_in_dialog_and_quits_cleanly(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    # Nothing listens there: the dialog waits for the rep; --quit-after closes the console.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-m", "repconsole", "--server", "ws://127.0.0.1:9", "--user", "alex", "--quit-after", "0.5", "--settings-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30 * TIMEOUT_SCALE,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_login_opens_the_dialog_first_and_so_does_a_server_in_the_preferences(tmp_path: Path) -> None:
    from repconsole.cli import build_parser
    from repconsole.preferences import StartupBackend
    from repconsole.settings import Settings
    from repconsole.ui.app import _wants_login

    parser = build_parser()
    settings = Settings(tmp_path)
    assert _wants_login(parser.parse_args(["--login"]), settings)
    assert not _wants_login(parser.parse_args([]), settings), "the simulator, as before"
    settings.preferences.startup.backend = StartupBackend.SERVER
    assert _wants_login(parser.parse_args([]), settings)
    assert not _wants_login(parser.parse_args(["--server", "ws://h:1"]), settings), "--server signs in to that server"
