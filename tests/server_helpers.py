"""Scaffolding for the queue server tests: a site, a real server, real clients.

* :func:`site_toml` / :func:`write_site`: the standard test site (the same
  directory as engine_helpers' site) as a TOML file, with cheap password
  hashes so that a login takes milliseconds, not half a second;
* :func:`serving`: a real :class:`~repconsole.server.app.Server` on a free
  loopback port, in-process;
* :class:`RepClient`, :class:`CustomerClient`, :class:`RecorderClient`
  (``/cobrowse``) and :class:`ViewClient` (``/cobrowse/watch``): the test
  suite's one typed client of each endpoint (the server tests, the console tests
  against a server process, the browser tests' reps and customers all use
  them): they send protocol Structs (:mod:`repconsole.protocol`) and return
  typed messages.  Every message they send and receive is validated against
  docs/protocol.schema.json (the docs are promises: an independent client is
  written from them), every frame received must also decode strictly with
  ``parse_rep_reply``/``parse_customer_reply`` and the typed message must
  stand for exactly the frame; a rep client checks that every events frame's
  ``prev`` is the last seq it saw, so no test can pass on a feed with a gap.
  ``send_raw`` and ``valid=False`` send what the schema forbids, on purpose.
  A client reads when a test waits (:meth:`~_Client.until`, ``reply``,
  ``wait_event``...), or, after :meth:`~_Client.listen`, all the time in a
  task of its own: for a test whose loop is busy elsewhere (Qt's) and that
  polls what the client was told (``CustomerClient.chat``/``state``);
* :func:`run`: run a coroutine with a time limit in the scalable unit.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import jsonschema
import msgspec
from conftest import TIMEOUT_SCALE
from msgspec import UNSET
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from repconsole.protocol import (
    CHUNK_CHARS,
    COBROWSE_COMMANDS,
    COMMANDS,
    PROTOCOL_VERSION,
    SNIPPET_COMMANDS,
    Attach,
    Attached,
    Chat,
    ChatEvent,
    CobrowseChunk,
    CobrowseState,
    CobrowseStatus,
    Command,
    CustomerLine,
    CustomerReply,
    CustomerState,
    EmptyResult,
    Error,
    Event,
    Events,
    Intake,
    Leave,
    Login,
    PageInfo,
    Pointer,
    ProtocolError,
    Record,
    RecorderReply,
    RepReply,
    Result,
    Resume,
    RrwebType,
    Say,
    SayResult,
    SessionEvent,
    SessionGoneEvent,
    SessionView,
    Snapshot,
    SnapshotData,
    SnapshotPart,
    SnapshotPlease,
    Snippets,
    Start,
    Started,
    Status,
    StopSharing,
    Via,
    Watching,
    Welcome,
    encode,
    parse_customer_reply,
    parse_recorder_reply,
    parse_rep_reply,
    request_key,
)
from repconsole.server.app import Server
from repconsole.server.auth import Argon2Params, hash_password
from repconsole.server.config import load_config
from repconsole.server.snippets import SNIPPETS_VERSION

__all__ = [
    "CHEAP",
    "PASSWORDS",
    "CustomerClient",
    "RecorderClient",
    "RepClient",
    "ViewClient",
    "eventually",
    "plain",
    "run",
    "schema_validator",
    "serving",
    "session_event",
    "site_toml",
    "validate",
    "wire",
    "write_site",
]

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "docs" / "protocol.schema.json"
# Cheap hashes: argon2id at its least cost (8 KiB, one pass); the real cost is tested once, in test_server_auth.
CHEAP = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {rep: f"{rep}-secret-pw" for rep in ("alice", "bob", "carol", "dave", "erin")}
T = TypeVar("T")


@cache
def _hashes() -> dict[str, str]:
    return {rep: hash_password(pw, CHEAP) for rep, pw in PASSWORDS.items()}


def site_toml(*, grace_period: float = 60.0, server: str = "", teams_extra: str = "", extra: str = "") -> str:
    """The standard test site.

    net "Networking": alice, bob, erin - bill "Billing": carol, erin - hw "Hardware": dave -
    vault "Vault": nobody, persistent, the fallback queue.
    """
    h = _hashes()
    return f"""\
[site]
grace_period = {grace_period}
fallback_queue = "team:vault"

[server]
customer_starts_per_minute = 0
customer_grace = 0
{server}

[teams.net]
name = "Networking"

[teams.bill]
name = "Billing"

[teams.hw]
name = "Hardware"

[teams.vault]
name = "Vault"
persistent = true
{teams_extra}

[[reps]]
id = "alice"
name = "Alice Ng"
teams = ["net"]
password_hash = "{h['alice']}"

[[reps]]
id = "bob"
name = "Bob Ortiz"
teams = ["net"]
password_hash = "{h['bob']}"

[[reps]]
id = "carol"
name = "Carol Diaz"
teams = ["bill"]
password_hash = "{h['carol']}"

[[reps]]
id = "dave"
name = "Dave Kim"
teams = ["hw"]
password_hash = "{h['dave']}"

[[reps]]
id = "erin"
name = "Erin Wu"
teams = ["net", "bill"]
max_sessions = 3
password_hash = "{h['erin']}"

[[issues]]
code = "vpn"
name = "VPN won't connect"
category = "Network"
team = "net"

[[issues]]
code = "invoice"
name = "Invoice question"
category = "Billing"
team = "bill"

[[issues]]
code = "printer"
name = "Printer offline"
category = "Hardware"
team = "hw"

[[buttons]]
id = "btn-alice"
description = "Alice's desk button"
target = "rep:alice"

[[buttons]]
id = "btn-net"
description = "Networking Support Button"
target = "team:net"

[[links]]
id = "link-alice"
name = "Help from Alice"
target = "rep:alice"

[[links]]
id = "link-bill"
name = "Billing help link"
target = "team:bill"
{extra}
"""


def write_site(directory: Path, **options: Any) -> Path:
    path = directory / "site.toml"
    path.write_text(site_toml(**options), encoding="utf-8")
    return path


def run(coro: Coroutine[Any, Any, T], seconds: float = 30.0) -> T:
    """Run ``coro`` to completion within ``seconds`` (scaled), then check that it left nothing running.

    ``asyncio.run`` would cancel the tasks left and wait for them, and for the worker threads, with
    no limit: a task that swallows its cancellation hung a CI run until its 90 minutes were up.
    Here such a task, or a thread still busy after a few seconds, fails the test and is named."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, seconds * TIMEOUT_SCALE))
    finally:
        try:
            loop.run_until_complete(_wind_down(loop))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task still running and wait for them and the default executor, within limits."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    if tasks:
        # Long enough for a loop whose cancellation redis-py lost to see its stop flag: a Redis read
        # gives up after its socket timeout (5 s) and the loop pauses a second before it looks again.
        done, pending = await asyncio.wait(tasks, timeout=15 * TIMEOUT_SCALE)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: asyncio.run would only log it too
        if pending:
            raise AssertionError("tasks that did not end when cancelled:\n" + "\n".join(_stack_of(t) for t in pending))
    await loop.shutdown_asyncgens()
    try:
        async with asyncio.timeout(10 * TIMEOUT_SCALE):
            await loop.shutdown_default_executor()
    except TimeoutError:
        busy = [t.name for t in threading.enumerate() if t.name.startswith("asyncio_")]
        raise AssertionError(f"worker threads still busy after the run: {busy}") from None


def _stack_of(task: asyncio.Task[Any]) -> str:
    out = io.StringIO()
    task.print_stack(file=out)
    return out.getvalue()


@asynccontextmanager
async def serving(config: Path, data: Path, **options: Any) -> AsyncIterator[Server]:
    """A real server for ``config`` on a free loopback port."""
    server = Server(load_config(config), data, port=0, hash_params=CHEAP, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# ------------------------------------------------------------- the schema


@cache
def schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def validate(direction: str, message: Any) -> None:
    """Check one message against ``#/$defs/<direction>`` (rep_client, rep_server, customer_client, customer_server)."""
    root = schema_validator().schema
    validator = jsonschema.Draft202012Validator({"$defs": root["$defs"], "$ref": f"#/$defs/{direction}"})
    errors = sorted(validator.iter_errors(message), key=lambda e: e.path)
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise AssertionError(f"{direction} message does not match the schema: {best.message}\n{json.dumps(message)[:2000]}")


# --------------------------------------------------------------- clients


def _seconds(s: float) -> float:
    return s * TIMEOUT_SCALE


def wire(message: msgspec.Struct, *, omit: tuple[str, ...] = ()) -> str:
    """A message as the text frame that carries it; ``omit`` leaves fields out, as an older client would."""
    if not omit:
        return encode(message).decode()
    value = msgspec.to_builtins(message)
    for name in omit:
        del value[name]
    return encode(value).decode()


def plain(message: Any) -> Any:
    """A typed message as the JSON values it stands for (a Result's ``result`` decoded or taken as it came)."""
    if isinstance(message, Result):
        raw = message.result
        result = msgspec.json.decode(raw) if isinstance(raw, msgspec.Raw) else msgspec.to_builtins(raw)
        return msgspec.to_builtins(msgspec.structs.replace(message, result=None)) | {"result": result}
    return msgspec.to_builtins(message)


class _Client:
    role: str  # the schema's name for the endpoint: <role>_client, <role>_server
    path: ClassVar[str | None] = None  # the endpoint's path, if not /<role>
    # Request ids are unique per login session, which outlives a connection
    # (a resume): one counter for every client keeps them unique.
    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[Any] = []  # every message, typed
        self.raw: list[str] = []  # every frame received, as it came
        # What the result of each request is decoded as, by request_key(id).
        self._results: dict[str, type[msgspec.Struct]] = {}
        self._reader: asyncio.Task[None] | None = None  # see listen()
        self._arrival: asyncio.Future[None] | None = None  # done when the reader has one more message
        self._ended: ConnectionClosed | None = None  # what ended the reader's connection

    @classmethod
    async def open(
        cls, server: Any, *, origin: str | None = None, query: str = "", headers: dict[str, str] | None = None, **options: Any
    ) -> Self:
        """Connect to the endpoint of ``server`` (anything with a ``port``: a :class:`Server`,
        a :class:`ServerProcess`, a :class:`Port`) on loopback; ``ssl=context`` connects with wss://;
        ``query`` is added to the address (``link=ID``); ``headers`` are sent with the handshake
        (a reverse proxy's ``X-Forwarded-For``); ``local_addr=("127.0.0.2", 0)`` connects from
        another loopback address."""
        headers = {**({"Origin": origin} if origin else {}), **(headers or {})} or None
        scheme = "wss" if options.get("ssl") else "ws"
        ws = await connect(
            f"{scheme}://127.0.0.1:{server.port}/{cls.path or cls.role}" + (f"?{query}" if query else ""),
            additional_headers=headers,
            max_size=None,  # a snapshot may be large; only the server limits what it receives
            compression=None,
            proxy=None,  # loopback: never through a proxy named in the environment
            open_timeout=_seconds(5),
            **options,
        )
        return cls(ws)

    def listen(self) -> Self:
        """Read in the background from now on: a task on the running loop pumps every message
        as it comes, and the waiting methods wait for it instead of reading (so a test may poll
        the client's attributes while its loop runs something else).  Never call ``pump``/``recv``
        on a listening client; :meth:`close` ends the task and raises any check it failed."""
        assert self._reader is None, "already listening"
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        try:
            while True:
                await self.pump(None)
                self._wake()
        except ConnectionClosed as exc:
            self._ended = exc
        finally:
            self._wake()

    def _wake(self) -> None:
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        self._arrival = None

    async def more(self, timeout: float = 3.0) -> None:
        """One more message: read it, or, listening, wait until the reader has one.

        Raises :class:`ConnectionClosed` once the connection is closed (and, listening, any
        check the reader failed)."""
        if self._reader is None:
            await self.pump(timeout)
            return
        if self._reader.done():
            self._reader.result()
            assert self._ended is not None
            raise self._ended
        if self._arrival is None:
            self._arrival = asyncio.get_running_loop().create_future()
        async with asyncio.timeout(_seconds(timeout)):
            await asyncio.shield(self._arrival)

    async def until(self, pred: Callable[[], bool], timeout: float = 3.0) -> None:
        """Read (or wait for the reader) until ``pred()`` holds."""
        async with asyncio.timeout(_seconds(timeout)):
            while not pred():
                await self.more(timeout)

    async def message(self, index: int, timeout: float = 3.0) -> Any:
        """The ``index``-th message received (0: the first), once it is here."""
        await self.until(lambda: len(self.received) > index, timeout)
        return self.received[index]

    def next_id(self) -> int:
        return next(_Client._ids)

    async def send(self, message: msgspec.Struct, *, omit: tuple[str, ...] = ()) -> None:
        """Send a protocol message, checked against the schema first."""
        frame = wire(message, omit=omit)
        validate(f"{self.role}_client", msgspec.json.decode(frame))
        await self.ws.send(frame)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame unchecked: a malformed one, on purpose."""
        await self.ws.send(frame)

    def _parse(self, frame: str) -> Any:
        raise NotImplementedError

    async def pump(self, timeout: float | None = 3.0) -> Any:
        """Read one message and account for it (the subclasses keep what they need)."""
        return await self.recv(timeout)

    async def recv(self, timeout: float | None = 3.0) -> Any:
        """The next message, typed (``timeout=None``: however long it takes).  The frame must match
        the schema, decode strictly into its Struct, and the Struct must stand for exactly the frame
        (nothing left out)."""
        async with asyncio.timeout(None if timeout is None else _seconds(timeout)):
            frame = await self.ws.recv()
        assert isinstance(frame, str), "the server sends text frames"
        self.raw.append(frame)
        value = msgspec.json.decode(frame)
        validate(f"{self.role}_server", value)
        try:
            message = self._parse(frame)
        except ProtocolError as exc:
            raise AssertionError(f"{exc}\n{frame[:2000]}") from None
        if isinstance(message, Result):
            message = self._typed_result(message)
        assert plain(message) == value, f"the typed message is not the frame:\n{message!r}\n{frame[:2000]}"
        self.received.append(message)
        return message

    def _typed_result(self, message: Result) -> Result:
        """A result with ``.result`` decoded as the type its request answers with (when the request was ours)."""
        kind = self._results.get(request_key(message.id))
        if kind is None:
            return message
        try:
            value = msgspec.json.decode(message.result, type=kind)
        except msgspec.ValidationError as exc:
            raise AssertionError(f"the result is not a {kind.__name__}: {exc}\n{bytes(message.result)[:2000]!r}") from None
        return msgspec.structs.replace(message, result=value)

    async def closed_with(self, timeout: float = 3.0) -> int | None:
        """Read until the server closes; the close code."""
        try:
            async with asyncio.timeout(_seconds(timeout)):
                while True:
                    await self.more(timeout)
        except ConnectionClosed:
            pass
        rcvd = self.ws.close_code
        return rcvd

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            async with asyncio.timeout(_seconds(3)):
                await self._reader  # it ends with the connection; raises a check it failed


class RepClient(_Client):
    """A console's connection: login, commands, and a checked event feed.

    Every reply is typed (:class:`Welcome`, :class:`Snapshot` and its
    :class:`SnapshotPart` frames (joined: ``snapshot`` is the whole, once its last part is in),
    :class:`Events`, :class:`Result`, :class:`Error`); the result of a
    command this client sent is decoded as its command's result type
    (``COMMANDS[name].result``), so ``reply.result.session.owner``.

    Attributes:
        seq: the last engine seq this client saw (snapshot or event).
        welcome: the last welcome.
        snapshot: the last snapshot's data.
        events: every event received, in order.
        replies: results and errors by request id.
    """

    role = "rep"

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.seq = -1
        self.token: str | None = None
        self.welcome: Welcome | None = None
        self.snapshot: SnapshotData | None = None
        self.snapshot_frames: list[Snapshot | SnapshotPart] = []  # the frames of the last snapshot
        self.events: list[Event] = []
        self.replies: dict[Any, Result | Error] = {}
        self.frames = 0
        self.page = PageFeed()
        self.snippets: Snippets | None = None  # the last snippets message (issue 14)

    def _parse(self, frame: str) -> RepReply:
        return parse_rep_reply(frame)

    async def send(self, message: msgspec.Struct, *, omit: tuple[str, ...] = ()) -> None:
        if isinstance(message, Command):
            self.expect(message.id, message.name)
        await super().send(message, omit=omit)

    @classmethod
    async def logged_in(cls, server: Server, rep: str, **options: Any) -> RepClient:
        client = await cls.open(server, **options)
        welcome = await client.login(rep)
        assert isinstance(welcome, Welcome), welcome
        return client

    @property
    def joining(self) -> bool:
        """A snapshot has begun and its last part is not in yet."""
        frames = self.snapshot_frames
        return bool(frames) and isinstance(frames[0], Snapshot) and len(frames) < frames[0].parts

    async def pump(self, timeout: float | None = 3.0) -> RepReply:
        """Read one message and account for it."""
        msg = await self.recv(timeout)
        # docs/protocol.md, Snapshot: parts 1 to parts - 1 follow the snapshot frame in order, nothing between.
        assert not self.joining or isinstance(msg, SnapshotPart), f"{msg!r} came between the parts of a snapshot"
        match msg:
            case Events():
                assert msg.prev == self.seq, f"gap: frame prev {msg.prev}, last seen {self.seq}"
                seqs = [e.seq for e in msg.events]
                assert seqs == sorted(set(seqs)) and (not seqs or seqs[0] > self.seq), seqs
                self.events.extend(msg.events)
                if seqs:
                    self.seq = seqs[-1]
                self.frames += 1
            case Snapshot():
                assert msg.parts >= 1 and msg.total is not UNSET, msg
                self.snapshot_frames = [msg]
                self._snapshot_whole()
            case SnapshotPart():
                head = self.snapshot_frames[0] if self.snapshot_frames else None
                assert isinstance(head, Snapshot) and (msg.seq, msg.part) == (head.seq, len(self.snapshot_frames)), (msg.seq, msg.part)
                self.snapshot_frames.append(msg)
                self._snapshot_whole()
            case Result() | Error() if msg.id is not UNSET:
                self.replies[msg.id] = msg
            case Welcome():
                self.welcome = msg
                self.token = msg.token
            case CobrowseChunk() | CobrowseStatus():
                self.page.take(msg)
            case Snippets():
                self.snippets = msg
        return msg

    def _snapshot_whole(self) -> None:
        """Once its last part is in: the snapshot's sessions are the first frame's, then each part's, ``total`` in all."""
        if self.joining:
            return
        head, *parts = self.snapshot_frames
        assert isinstance(head, Snapshot)
        sessions = [*head.data.sessions, *(s for part in parts if isinstance(part, SnapshotPart) for s in part.sessions)]
        assert len(sessions) == head.total, (len(sessions), head.total)
        self.snapshot = msgspec.structs.replace(head.data, sessions=sessions) if parts else head.data
        self.seq = head.seq

    async def login(
        self, rep: str, password: str | None = None, *, protocol: int | None = PROTOCOL_VERSION, valid: bool = True
    ) -> Welcome | Error:
        """Log in; returns the welcome (or the error).  A snapshot follows a welcome.

        ``protocol=None`` leaves the field out, as a console older than it does;
        ``valid=False`` sends a login the schema does not allow (``protocol=0``).
        """
        rid = self.next_id()
        message = Login(rid, rep, password or PASSWORDS[rep], PROTOCOL_VERSION if protocol is None else protocol)
        first = len(self.received)
        await self._send_checked(message, protocol is None, valid)
        reply = await self.message(first)
        assert isinstance(reply, Welcome | Error) and reply.id == rid, reply
        if isinstance(reply, Welcome):
            assert not reply.resumed
            snap = await self.message(first + 1)
            assert isinstance(snap, Snapshot), snap
            await self.until(lambda: not self.joining)
            await self._snippets_after(reply)
        return reply

    async def resume(
        self, token: str, last_seq: int, *, protocol: int | None = PROTOCOL_VERSION, valid: bool = True
    ) -> Welcome | Error:
        """Resume; returns the welcome (or the error).  The replay or a snapshot follows a welcome.

        ``protocol`` and ``valid`` as for :meth:`login`.
        """
        self.seq = last_seq
        message = Resume(self.next_id(), token, last_seq, PROTOCOL_VERSION if protocol is None else protocol)
        first = len(self.received)
        await self._send_checked(message, protocol is None, valid)
        reply = await self.message(first)
        assert isinstance(reply, Welcome | Error), reply
        if isinstance(reply, Welcome):
            follow = await self.message(first + 1)
            assert isinstance(follow, Events if reply.resumed else Snapshot), follow
            if isinstance(follow, Events):
                assert follow.prev == last_seq
            await self.until(lambda: not self.joining)
            await self._snippets_after(reply)
        return reply

    async def _snippets_after(self, welcome: Welcome) -> None:
        """A console of version 4 on gets its team snippets after the snapshot or replay: read up to them."""
        if welcome.protocol >= SNIPPETS_VERSION:
            start = len(self.received)
            await self.until(lambda: any(isinstance(m, Snippets) for m in self.received[start - 1 :]))

    async def _send_checked(self, message: Login | Resume, old: bool, valid: bool) -> None:
        omit = ("protocol",) if old else ()
        if valid:
            await self.send(message, omit=omit)
        else:
            await self.send_raw(wire(message, omit=omit))

    async def call(self, name: str, *, rid: Any = None, timeout: float = 3.0, valid: bool = True, **args: Any) -> Result | Error:
        """Send a command and return its reply (result or error); events meanwhile are kept.

        ``valid=False`` sends a command the schema does not allow (a test of the server's checks).
        """
        rid = self.next_id() if rid is None else rid
        self.replies.pop(rid, None)
        message = Command(rid, name, args)
        if valid:
            await self.send(message)
        else:
            self.expect(rid, name)
            await self.send_raw(wire(message))
        return await self.reply(rid, timeout)

    def expect(self, rid: Any, name: str) -> None:
        """Decode the result of request ``rid`` as command ``name``'s (:meth:`send` does it for a Command)."""
        spec = COMMANDS.get(name) or COBROWSE_COMMANDS.get(name) or SNIPPET_COMMANDS.get(name)
        if spec is not None:
            self._results[request_key(rid)] = spec.result

    async def reply(self, rid: Any, timeout: float = 3.0) -> Result | Error:
        await self.until(lambda: rid in self.replies, timeout)
        return self.replies[rid]

    async def ok(self, name: str, **args: Any) -> Any:
        """Run a command that must succeed; its result, typed (``COMMANDS[name].result``)."""
        reply = await self.call(name, **args)
        assert isinstance(reply, Result), reply
        return reply.result

    async def wait_event(self, pred: Callable[[Event], bool], timeout: float = 3.0) -> Event:
        """The first event (already received or coming) that satisfies ``pred``."""
        seen = 0
        async with asyncio.timeout(_seconds(timeout)):
            while True:
                for e in self.events[seen:]:
                    if pred(e):
                        return e
                seen = len(self.events)
                await self.more(timeout)

    async def drain(self, quiet: float = 0.1) -> None:
        """Read until nothing has arrived for ``quiet`` seconds (events go out at the next turn of the server's loop)."""
        while True:
            try:
                await self.more(quiet)
            except TimeoutError:
                return

    def sessions_seen(self) -> set[str]:
        """Every session id this client has been told anything about."""
        ids = {s.id for s in self.snapshot.sessions} if self.snapshot is not None else set()
        for e in self.events:
            match e:
                case SessionEvent():
                    ids.add(e.data.session.id)
                case SessionGoneEvent():
                    ids.add(e.data.id)
                case ChatEvent():
                    ids.add(e.data.session)
        return ids


def session_event(sid: str, pred: Callable[[SessionView], bool] = lambda s: True) -> Callable[[Event], bool]:
    """For :meth:`RepClient.wait_event`: a session event about ``sid`` whose session satisfies ``pred``."""
    return lambda e: isinstance(e, SessionEvent) and e.data.session.id == sid and pred(e.data.session)


class CustomerClient(_Client):
    """A customer page's connection.

    Attributes:
        session, token: from the last ``started``.
        statuses: every status, typed.
        lines: every chat line the page was sent.
    """

    role = "customer"
    _RESULTS: ClassVar[dict[type[msgspec.Struct], type[msgspec.Struct]]] = {Say: SayResult, Leave: EmptyResult}

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.session: str | None = None
        self.token: str | None = None
        self.statuses: list[Status] = []
        self.lines: list[CustomerLine] = []

    def _parse(self, frame: str) -> CustomerReply:
        return parse_customer_reply(frame)

    async def send(self, message: msgspec.Struct, *, omit: tuple[str, ...] = ()) -> None:
        result = self._RESULTS.get(type(message))
        if result is not None:
            self._results[request_key(message.id)] = result  # type: ignore[attr-defined]
        await super().send(message, omit=omit)

    async def pump(self, timeout: float | None = 3.0) -> CustomerReply:
        msg = await self.recv(timeout)
        match msg:
            case Status():
                self.statuses.append(msg)
            case Chat():
                self.lines.append(msg.line)
            case Started():
                self.session, self.token = msg.session, msg.token
        return msg

    @classmethod
    async def started(cls, server: Any, name: str = "Ann Lee", issue: str = "vpn", *, listen: bool = False, **options: Any) -> CustomerClient:
        """A page that has started a session with the issue form (``listen``: see :meth:`listen`)."""
        client = await cls.open(server, **options)
        if listen:
            client.listen()
        reply = await client.start(Via.ISSUE, issue, name)
        assert isinstance(reply, Started), reply
        return client

    async def start(self, via: str = Via.ISSUE, target: str = "vpn", name: str = "Ann Lee", **extra: Any) -> Started | Error:
        """Start a session ``via`` a way in (``target``: the issue, key, rep, button or link); the reply
        (the first message that comes after it)."""
        way = Via(via)
        first = len(self.received)
        await self.send(Start(self.next_id(), way, Intake(name), **{way.value: target}, **extra))
        reply = await self.message(first)
        assert isinstance(reply, Started | Error), reply
        return reply

    async def request(self, message: type[msgspec.Struct] | msgspec.Struct, timeout: float = 3.0, **fields: Any) -> CustomerReply:
        """Send ``message`` (or a message of that type with ``fields`` and a fresh id); its reply, typed."""
        if isinstance(message, type):
            message = message(id=self.next_id(), **fields)
        rid = message.id  # type: ignore[attr-defined]
        first = len(self.received)

        def answer() -> CustomerReply | None:
            return next((m for m in self.received[first:] if getattr(m, "id", UNSET) == rid), None)

        await self.send(message)
        await self.until(lambda: answer() is not None, timeout)
        reply = answer()
        assert reply is not None
        return reply

    def chat(self) -> list[str]:
        """The texts of the chat lines the page was sent, in order."""
        return [line.text for line in self.lines]

    def state(self) -> CustomerState | None:
        """What the page shows now: waiting, active or ended (None before the first status)."""
        return self.statuses[-1].state if self.statuses else None


# ----------------------------------------------------------- co-browsing

_page_clock = itertools.count(1_700_000_000_000, 25)


def page_snapshot(text: str = "Hello", *, pad: int = 0, width: int = 1280) -> list[dict[str, Any]]:
    """rrweb's first events of a page: Meta and a FullSnapshot whose only text is ``text`` (+ ``pad`` x's)."""
    node = {"type": 0, "id": 1, "childNodes": [{"type": 3, "id": 2, "textContent": text + "x" * pad}]}
    return [
        {"type": RrwebType.META, "timestamp": next(_page_clock), "data": {"href": "https://shop.example/", "width": width, "height": 800}},
        {"type": RrwebType.FULL_SNAPSHOT, "timestamp": next(_page_clock), "data": {"node": node, "initialOffset": {"left": 0, "top": 0}}},
    ]


def page_change(text: str = "changed", *, pad: int = 0) -> dict[str, Any]:
    """An rrweb incremental snapshot: the text node's new text."""
    data = {"source": 0, "texts": [{"id": 2, "value": text + "y" * pad}], "attributes": [], "removes": [], "adds": []}
    return {"type": RrwebType.INCREMENTAL_SNAPSHOT, "timestamp": next(_page_clock), "data": data}


class PageFeed:
    """What a watcher was sent of co-browsed pages, per session: statuses, and chunks joined into batches.

    The chunks of a batch must come in order, one batch at a time, all stamped alike.
    """

    def __init__(self) -> None:
        self.statuses: dict[str, list[CobrowseStatus]] = {}
        self.batches: dict[str, list[tuple[int, float, list[Any]]]] = {}  # (number, at, events)
        self.chunks = 0
        self._parts: dict[str, list[CobrowseChunk]] = {}

    def take(self, msg: CobrowseChunk | CobrowseStatus) -> None:
        if isinstance(msg, CobrowseStatus):
            self.statuses.setdefault(msg.session, []).append(msg)
            return
        self.chunks += 1
        parts = self._parts.setdefault(msg.session, [])
        assert msg.part == len(parts), f"chunk {msg.part} of batch {msg.batch} out of order after {len(parts)}"
        assert all((c.batch, c.parts, c.at) == (msg.batch, msg.parts, msg.at) for c in parts), msg
        parts.append(msg)
        if len(parts) == msg.parts:
            del self._parts[msg.session]
            events = json.loads("".join(c.data for c in parts))
            assert isinstance(events, list)
            self.batches.setdefault(msg.session, []).append((msg.batch, msg.at, events))

    def events(self, session: str) -> list[Any]:
        return [e for _, _, events in self.batches.get(session, []) for e in events]

    def types(self, session: str) -> list[int]:
        return [e["type"] for e in self.events(session)]

    def texts(self, session: str) -> list[str]:
        """The page's text as each event set it (a snapshot's text node, a change's new text)."""
        out = []
        for e in self.events(session):
            if e["type"] == RrwebType.FULL_SNAPSHOT:
                out.append(e["data"]["node"]["childNodes"][0]["textContent"])
            elif e["type"] == RrwebType.INCREMENTAL_SNAPSHOT:
                out.extend(t["value"] for t in e["data"]["texts"])
        return out

    def state(self, session: str) -> CobrowseState | None:
        statuses = self.statuses.get(session)
        return statuses[-1].state if statuses else None


class RecorderClient(_Client):
    """A customer page's recorder (``/cobrowse``): attach with the customer's token, then batches of rrweb events.

    Attributes:
        attached: the last ``attached``.
        asks, watching, pointers, errors: what the server told it, typed, in order.
    """

    role = "recorder"
    path = "cobrowse"

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.attached: Attached | None = None
        self.asks: list[SnapshotPlease] = []
        self.watching: list[Watching] = []
        self.pointers: list[Pointer] = []
        self.errors: list[Error] = []
        self.batch = 0

    def _parse(self, frame: str) -> RecorderReply | Error:
        return parse_recorder_reply(frame)

    async def pump(self, timeout: float | None = 3.0) -> RecorderReply | Error:
        msg = await self.recv(timeout)
        match msg:
            case Attached():
                self.attached = msg
            case SnapshotPlease():
                self.asks.append(msg)
            case Watching():
                self.watching.append(msg)
            case Pointer():
                self.pointers.append(msg)
            case Error():
                self.errors.append(msg)
        return msg

    @classmethod
    async def attached_to(cls, server: Any, token: str, **options: Any) -> RecorderClient:
        """A recorder attached with the customer's ``token``."""
        client = await cls.open(server, **options)
        reply = await client.attach(token)
        assert isinstance(reply, Attached), reply
        return client

    async def attach(self, token: str, page_url: str = "https://shop.example/", title: str = "Shop") -> Attached | Error:
        """Attach; the reply (``attached``, or the error the server closes after)."""
        first = len(self.received)
        self.batch = 0
        await self.send(Attach(self.next_id(), token, page_url, title))
        reply = await self.message(first)
        assert isinstance(reply, Attached | Error), reply
        return reply

    async def record(self, events: list[Any] | str, *, n: int = CHUNK_CHARS, batch: int | None = None) -> int:
        """Send a batch (events, or the text of one) in parts of ``n`` characters.  Its number."""
        text = events if isinstance(events, str) else json.dumps(events, separators=(",", ":"), ensure_ascii=False)
        number = self.batch if batch is None else batch
        self.batch = number + 1
        pieces = [text[i : i + n] for i in range(0, len(text), n)] or [""]
        for i, piece in enumerate(pieces):
            await self.send(Record(number, i, len(pieces), piece))
        return number

    async def page_info(self, url: str, title: str = "") -> None:
        await self.send(PageInfo(url, title))

    async def stop(self) -> None:
        await self.send(StopSharing())


class ViewClient(_Client):
    """A rep's live view in a browser (``/cobrowse/watch?ticket=…``): it only listens.

    Attributes:
        page: what it was sent of the page.
        errors: the errors it was sent.
    """

    role = "rep"  # what it is sent is what a console is sent of a page
    path = "cobrowse/watch"

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.page = PageFeed()
        self.errors: list[Error] = []

    def _parse(self, frame: str) -> RepReply:
        return parse_rep_reply(frame)

    async def pump(self, timeout: float | None = 3.0) -> RepReply:
        msg = await self.recv(timeout)
        match msg:
            case CobrowseChunk() | CobrowseStatus():
                self.page.take(msg)
            case Error():
                self.errors.append(msg)
        return msg

    @classmethod
    async def redeem(cls, server: Any, url: str, **options: Any) -> ViewClient:
        """Open the live view's socket with the ticket of a ``cobrowse_ticket`` address."""
        import urllib.parse

        query = urllib.parse.urlsplit(url).query
        return await cls.open(server, query=query, **options)


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 3.0) -> None:
    """Poll ``check`` until it holds."""
    async with asyncio.timeout(_seconds(timeout)):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


# ------------------------------------------- crowds, subprocess servers, logs
# (added for the race, authz, resume, crash and fuzz tests)

CROWD_PASSWORD = "crowd-secret-pw"


@cache
def _crowd_hash() -> str:
    return hash_password(CROWD_PASSWORD, CHEAP)


def crowd_rep(team: str, i: int) -> str:
    """The id of the ``i``-th rep of ``team`` in a :func:`crowd_site_toml` site."""
    return f"{team}-{i:03d}"


def crowd_site_toml(
    teams: dict[str, int],
    *,
    max_sessions: int | None = None,
    grace_period: float = 60.0,
    server: str = "",
    extra: str = "",
) -> str:
    """A site of ``{team id: number of reps}``: every rep in exactly one team,
    all with the password :data:`CROWD_PASSWORD` (one cheap hash), one issue
    per team whose code is the team id.  Customer limits and grace are off,
    as in :func:`site_toml`.  Team names are ``Team <id>``, rep names
    ``Rep <id>``."""
    h = _crowd_hash()
    parts = [f"[site]\ngrace_period = {grace_period}\n"]
    if max_sessions is not None:
        parts.append(f"max_sessions_default = {max_sessions}\n")
    parts.append(f"\n[server]\ncustomer_starts_per_minute = 0\ncustomer_grace = 0\n{server}\n")
    for team in teams:
        parts.append(f'\n[teams.{team}]\nname = "Team {team}"\n')
    for team, count in teams.items():
        for i in range(count):
            rep = crowd_rep(team, i)
            parts.append(f'\n[[reps]]\nid = "{rep}"\nname = "Rep {rep}"\nteams = ["{team}"]\npassword_hash = "{h}"\n')
    for team in teams:
        parts.append(f'\n[[issues]]\ncode = "{team}"\nname = "Issue of {team}"\ncategory = "Crowd"\nteam = "{team}"\n')
    parts.append(extra)
    return "".join(parts)


def write_crowd_site(directory: Path, teams: dict[str, int], **options: Any) -> Path:
    path = directory / "site.toml"
    path.write_text(crowd_site_toml(teams, **options), encoding="utf-8")
    return path


async def crowd_login(server: Any, rep: str, **options: Any) -> RepClient:
    """A :class:`RepClient` logged in as a crowd rep (``server`` needs only ``.port``)."""
    client = await RepClient.open(server, **options)
    welcome = await client.login(rep, CROWD_PASSWORD)
    assert isinstance(welcome, Welcome), welcome
    return client


class Port:
    """What the clients need of a server: its port (for a server in another process)."""

    def __init__(self, port: int) -> None:
        self.port = port


def server_program() -> list[str]:
    import shutil
    import sys

    script = shutil.which("repconsole-server", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "repconsole.server"]


class ServerProcess:
    """``repconsole-server`` in a subprocess; its output (logs included) is kept in :attr:`lines`.

    Attributes:
        port: the port it printed once listening.
        lines: everything it printed (stdout and stderr), as it came.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.port = 0
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self, listening: asyncio.Future[int]) -> None:
        import re

        pattern = re.compile(r"^repconsole-server: listening on wss?://[^ ]*:(\d+)$")
        assert self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            match = pattern.match(line)
            if match and not listening.done():
                listening.set_result(int(match.group(1)))
        if not listening.done():
            listening.set_exception(AssertionError("the server exited:\n" + "\n".join(self.lines)))

    def problems(self) -> list[str]:
        """Lines of its output that report an error or a traceback."""
        return [line for line in self.lines if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]

    async def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        if self._reader is not None:
            await self._reader

    async def terminate(self) -> int:
        if self.process.returncode is None:
            self.process.terminate()
        try:
            async with asyncio.timeout(_seconds(15)):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code


@asynccontextmanager
async def server_process(config: Path, data: Path, *args: str, ready: float = 20.0) -> AsyncIterator[ServerProcess]:
    """A ``repconsole-server`` process on a free port; killed on exit if still running."""
    process = await asyncio.create_subprocess_exec(
        *server_program(), "--port", "0", "--config", str(config), "--data", str(data), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    proc = ServerProcess(process)
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    proc._reader = asyncio.ensure_future(proc._read(listening))
    try:
        async with asyncio.timeout(_seconds(ready)):
            proc.port = await listening
        yield proc
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if not proc._reader.done():
            proc._reader.cancel()


class LogProblems:
    """Collects ERROR (and worse) log records and any record with a traceback, while installed.

    Use as a context manager around an in-process server; :attr:`records`
    holds what was caught, formatted.
    """

    def __init__(self) -> None:
        import logging

        self.records: list[str] = []
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR or record.exc_info:
                    outer.records.append(logging.Formatter("%(levelname)s %(name)s: %(message)s").format(record))

        self._handler = _Handler(level=logging.DEBUG)

    def __enter__(self) -> LogProblems:
        import logging

        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.getLogger().removeHandler(self._handler)
