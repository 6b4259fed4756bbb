"""Typed clients of a real queue server, for the console and browser tests.

* :class:`CustomerPage`: what a support page does on ``/customer``: start a
  session, chat, leave; a reader task keeps every reply (typed);
* :class:`RepLine`: a rep's raw connection on ``/rep`` (no console, no
  state): log in, run commands, wait for events; every events frame's
  ``prev`` must be the last seq it saw, so no test passes on a feed with a gap.

Every message is built as its :mod:`repconsole.protocol` Struct, written
with ``encode`` (and checked against docs/protocol.schema.json), and read
with ``parse_customer_reply`` / ``parse_rep_reply``: no test writes or
reads a ``"type"`` by hand.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
from conftest import TIMEOUT_SCALE
from server_helpers import validate
from websockets.asyncio.client import ClientConnection, connect

from repconsole.protocol import (
    COMMANDS,
    Chat,
    Command,
    CommandResult,
    CustomerReply,
    CustomerState,
    Error,
    Event,
    Events,
    Intake,
    Leave,
    Login,
    RepReply,
    Result,
    Say,
    Snapshot,
    SnapshotData,
    Start,
    Started,
    Status,
    Via,
    Welcome,
    decode,
    encode,
    parse_customer_reply,
    parse_rep_reply,
)

__all__ = ["CustomerPage", "RepLine"]


def _seconds(s: float) -> float:
    return s * TIMEOUT_SCALE


async def _open(url: str) -> ClientConnection:
    # A snapshot may be large; only the server limits what it receives.
    return await connect(url, proxy=None, compression=None, max_size=None, open_timeout=_seconds(5))


async def _send(ws: ClientConnection, role: str, message: msgspec.Struct) -> None:
    frame = encode(message)
    validate(f"{role}_client", decode(frame))
    await ws.send(frame, text=True)


class CustomerPage:
    """A support page on ``/customer``.

    Attributes:
        replies: every message the server sent, in order.
        session: the session id, once started.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.replies: list[CustomerReply] = []
        self.session = ""
        self.token = ""
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[CustomerReply]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, name: str, issue: str = "vpn") -> str:
        """Start a session with the issue form; returns its id."""
        self.ws = await _open(self.url + "/customer")
        self._reader = asyncio.ensure_future(self._read(self.ws))
        reply = await self._request(Start(next(self._ids), Via.ISSUE, Intake(customer_name=name), issue=issue))
        assert isinstance(reply, Started), reply
        self.session, self.token = reply.session, reply.token
        return self.session

    async def say(self, text: str) -> Result | Error:
        reply = await self._request(Say(next(self._ids), text))
        assert isinstance(reply, Result | Error), reply
        return reply

    async def leave(self) -> Result | Error:
        reply = await self._request(Leave(next(self._ids)))
        assert isinstance(reply, Result | Error), reply
        return reply

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    def chat(self) -> list[str]:
        """The texts of the chat lines the page was sent."""
        return [m.line.text for m in self.replies if isinstance(m, Chat)]

    def status(self) -> Status | None:
        statuses = [m for m in self.replies if isinstance(m, Status)]
        return statuses[-1] if statuses else None

    def state(self) -> CustomerState | None:
        """What the page shows now: waiting, active or ended (None before the first status)."""
        status = self.status()
        return status.state if status is not None else None

    async def _request(self, message: Start | Say | Leave, timeout: float = 5.0) -> CustomerReply:
        assert self.ws is not None
        future = self._waiting[message.id] = asyncio.get_running_loop().create_future()
        await _send(self.ws, "customer", message)
        async with asyncio.timeout(_seconds(timeout)):
            return await future

    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            message = parse_customer_reply(frame)
            self.replies.append(message)
            rid = getattr(message, "id", None)
            future = self._waiting.pop(rid, None)
            if future is not None and not future.done():
                future.set_result(message)


class RepLine:
    """A rep's connection on ``/rep``, read on demand (:meth:`pump`).

    Attributes:
        seq: the last engine seq this client saw (snapshot or event).
        snapshot: the last snapshot's data.
        events: every event received, in order.
        replies: results and errors by request id.
    """

    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seq = -1
        self.welcome: Welcome | None = None
        self.snapshot: SnapshotData | None = None
        self.events: list[Event] = []
        self.replies: dict[Any, Result | Error] = {}

    @classmethod
    async def logged_in(cls, port: int, rep: str, password: str) -> RepLine:
        client = cls(await _open(f"ws://127.0.0.1:{port}/rep"))
        rid = next(cls._ids)
        await _send(client.ws, "rep", Login(rid, rep, password))
        welcome = await client.pump()
        assert isinstance(welcome, Welcome) and welcome.id == rid and not welcome.resumed, welcome
        snapshot = await client.pump()
        assert isinstance(snapshot, Snapshot), snapshot
        return client

    async def pump(self, timeout: float = 3.0) -> RepReply:
        """Read one message and account for it."""
        async with asyncio.timeout(_seconds(timeout)):
            frame = await self.ws.recv()
        assert isinstance(frame, str), "the server sends text frames"
        message = parse_rep_reply(frame)
        match message:
            case Events(prev=prev, events=events):
                assert prev == self.seq, f"gap: frame prev {prev}, last seen {self.seq}"
                seqs = [e.seq for e in events]
                assert seqs == sorted(set(seqs)) and (not seqs or seqs[0] > self.seq), seqs
                self.events.extend(events)
                if seqs:
                    self.seq = seqs[-1]
            case Snapshot():
                self.snapshot = message.data
                self.seq = message.seq
            case Welcome():
                self.welcome = message
            case Result(id=rid) | Error(id=str() | int() as rid):
                self.replies[rid] = message
        return message

    async def call(self, name: str, *, timeout: float = 3.0, **args: Any) -> Result | Error:
        """Send a command and return its reply (result or error); events meanwhile are kept."""
        rid = next(self._ids)
        await _send(self.ws, "rep", Command(rid, name, args))
        async with asyncio.timeout(_seconds(timeout)):
            while rid not in self.replies:
                await self.pump(timeout)
        return self.replies[rid]

    async def ok(self, name: str, **args: Any) -> Any:
        """Run a command that must succeed; its result, typed (the command's result Struct)."""
        reply = await self.call(name, **args)
        assert isinstance(reply, Result), reply
        result: CommandResult = msgspec.json.decode(reply.result, type=COMMANDS[name].result)
        return result

    async def wait_event(self, pred: Callable[[Event], bool], timeout: float = 3.0) -> Event:
        """The first event (already received or coming) that satisfies ``pred``."""
        seen = 0
        async with asyncio.timeout(_seconds(timeout)):
            while True:
                for e in self.events[seen:]:
                    if pred(e):
                        return e
                seen = len(self.events)
                await self.pump(timeout)

    async def drain(self, quiet: float = 0.1) -> None:
        """Read until nothing has arrived for ``quiet`` seconds (the batch window is 10 ms)."""
        while True:
            try:
                await self.pump(quiet)
            except TimeoutError:
                return

    async def close(self) -> None:
        await self.ws.close()
