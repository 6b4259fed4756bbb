"""Co-browsing load for bench_cobrowse: a raw rep connection, and shared pages streaming.

    python -m bench.cobrowse_streams PORT SESSIONS WATCHERS   # the streamer process

:class:`RepConn` is a rep's ``/rep`` connection that times what it reads.
The streamer process (:class:`Streamer` starts it) holds ``SESSIONS``
browser-sharing sessions on a running server: each started through
``/customer`` with a help link (``link-cb-NNN``, to watcher rep
``cb-NNN``), accepted and watched by one of ``WATCHERS`` consoles, its page
a recorder on ``/cobrowse`` replaying the shipped rrweb recording of the demo
shop (``resources/cobrowse/shop.rrweb.json``) at its recorded pace, looped,
from a different place for each session, in batches of 100 ms as the
snippet sends them.  It streams while told ``GO`` on stdin, is silent after
``PAUSE``, and on ``STOP`` prints what it sent and what was relayed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection

from bench.bench_server import bench_password_hash, login, open_ws, raise_fd_limit
from repconsole.protocol import (
    CHUNK_CHARS,
    Attach,
    Attached,
    CobrowseChunk,
    Command,
    CommandName,
    Error,
    Events,
    Intake,
    Record,
    RepReply,
    Result,
    SessionEvent,
    SnapshotPlease,
    Start,
    Started,
    Via,
    encode,
    parse_customer_reply,
    parse_recorder_reply,
    parse_rep_reply,
)

__all__ = ["RepConn", "Streamer", "watcher_id", "watchers_toml"]

WATCHER_TEAM = "cb"

# ---------------------------------------------------------------- a console, raw


class RepConn:
    """A rep's ``/rep`` connection: commands, the queue events it names, and the co-browse frames it reads.

    Attributes:
        frames: every ``cobrowse`` frame: (time read, bytes).
        batches: every whole batch: (time its last part was read, session, text).
        sessions: customer name -> session id, from the feed.
    """

    def __init__(self, ws: ClientConnection, *, keep_text: bool = True) -> None:
        self.ws = ws
        self.keep_text = keep_text
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Result | Error]] = {}
        self.frames: list[tuple[float, int]] = []
        self.batches: list[tuple[float, str, str]] = []
        self.sessions: dict[str, str] = {}
        self._parts: dict[str, tuple[int, list[str]]] = {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def login(cls, port: int, rep: str, **options: Any) -> RepConn:
        ws, _ = await login(port, rep)
        return cls(ws, **options)

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.ws.recv(decode=False)
                now = time.time()
                msg: RepReply = parse_rep_reply(raw)
                match msg:
                    case CobrowseChunk():
                        self.frames.append((now, len(raw)))
                        if self.keep_text:
                            self._take(now, msg)
                    case Result() | Error() if isinstance(msg.id, int):
                        fut = self.pending.pop(msg.id, None)
                        if fut is not None and not fut.done():
                            fut.set_result(msg)
                    case Events():
                        for e in msg.events:
                            if isinstance(e, SessionEvent):
                                self.sessions[e.data.session.customer_name] = e.data.session.id
        except Exception:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("rep connection lost"))

    def _take(self, now: float, c: CobrowseChunk) -> None:
        if c.part == 0:
            self._parts[c.session] = (c.batch, [])
        batch, got = self._parts.get(c.session, (-1, []))
        if batch != c.batch or len(got) != c.part:
            return
        got.append(c.data)
        if len(got) == c.parts:
            del self._parts[c.session]
            self.batches.append((now, c.session, "".join(got)))

    async def call(self, name: str, **args: Any) -> Result | Error:
        rid = next(self.ids)
        fut: asyncio.Future[Result | Error] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(encode(Command(rid, name, args)), text=True)
        return await asyncio.wait_for(fut, 60)

    async def ok(self, name: str, **args: Any) -> Any:
        reply = await self.call(name, **args)
        if isinstance(reply, Error):
            raise RuntimeError(f"{name} {args}: {reply}")
        return msgspec.json.decode(reply.result)

    async def until(self, check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"never: {what}")
            await asyncio.sleep(0.01)

    def bytes_between(self, t0: float, t1: float) -> int:
        return sum(size for at, size in self.frames if t0 <= at < t1)

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


def watchers_toml(watchers: int) -> str:
    h = bench_password_hash()
    parts = [f'\n[teams.{WATCHER_TEAM}]\nname = "Co-browsing"\n']
    for i in range(watchers):
        parts.append(f'\n[[reps]]\nid = "{watcher_id(i)}"\nname = "Watcher {i}"\nteams = ["{WATCHER_TEAM}"]\npassword_hash = "{h}"\n')
    for i in range(watchers):
        parts.append(f'\n[[links]]\nid = "link-{watcher_id(i)}"\nname = "Stream {i}"\ntarget = "rep:{watcher_id(i)}"\n')
    return "".join(parts)


def watcher_id(i: int) -> str:
    return f"{WATCHER_TEAM}-{i:03d}"


def _recording_batches() -> tuple[list[tuple[float, str, bool]], float]:
    """The shipped recording as the snippet would send it: (offset s, text of a batch, it opens a page), and its length (s).

    Events are grouped in windows of 100 ms (the snippet's flush); a page's
    Meta and FullSnapshot always open a batch.
    """
    from repconsole import resources

    doc = json.loads(resources.read_bytes("cobrowse/shop.rrweb.json"))
    events = doc["events"]
    first = events[0]["timestamp"]
    groups: list[tuple[float, list[Any]]] = []
    for e in events:
        at = (e["timestamp"] - first) / 1000
        if not groups or e["type"] == 4 or at - groups[-1][0] >= 0.1:
            groups.append((at, [e]))
        else:
            groups[-1][1].append(e)
    batches = [(at, json.dumps(es, separators=(",", ":"), ensure_ascii=False), es[0]["type"] == 4) for at, es in groups]
    return batches, doc["duration_ms"] / 1000 + 0.5


class _Stream:
    """One session's recorder: attached, replaying the recording from ``offset`` while ``go`` is set."""

    def __init__(self, ws: ClientConnection, batches: list[tuple[float, str, bool]], length: float, offset: float) -> None:
        self.ws, self.batches, self.length = ws, batches, length
        self.number = 0
        self.sent = 0
        self.asks = 0
        self.errors: list[str] = []
        # Where the loop starts: the batch at the offset; first, the page's snapshot before it.
        self.index = next((i for i, (at, _, _) in enumerate(batches) if at >= offset), 0)
        self.snapshot = max(i for i, (_, _, opens) in enumerate(batches[: self.index + 1]) if opens)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                msg = parse_recorder_reply(await self.ws.recv(decode=False))
                if isinstance(msg, SnapshotPlease):
                    self.asks += 1
                    await self.send(self._full())  # a recorder answers with a fresh snapshot of its page
                elif isinstance(msg, Error):
                    self.errors.append(msg.reason)
        except Exception:
            return

    def _full(self) -> str:
        return self.batches[self.snapshot][1]  # its page's Meta and FullSnapshot

    async def send(self, text: str) -> None:
        pieces = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
        for n, piece in enumerate(pieces):
            await self.ws.send(encode(Record(self.number, n, len(pieces), piece)), text=True)
        self.number += 1
        self.sent += len(text)

    async def run(self, go: asyncio.Event) -> None:
        await self.send(self._full())
        if self.index == self.snapshot:
            self.index += 1
        while True:
            if self.index >= len(self.batches):
                self.index = 0
            base = time.monotonic() - self.batches[self.index][0]  # when the recording's 0 s is, on this clock
            while self.index < len(self.batches):
                at, text, opens = self.batches[self.index]
                if not go.is_set():
                    await go.wait()
                    base = time.monotonic() - at  # resumed: this batch is due now, the next ones at the recording's pace
                delay = base + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if not go.is_set():
                        continue  # paused while it waited: it goes once resumed
                if opens:
                    self.snapshot = self.index
                await self.send(text)
                self.index += 1


async def _streamer(port: int, sessions: int, watchers: int) -> None:
    """The streamer process: ``sessions`` shared pages, each watched; GO / PAUSE / STOP on stdin."""
    batches, length = _recording_batches()
    reps = [await RepConn.login(port, watcher_id(i), keep_text=False) for i in range(watchers)]
    streams: list[_Stream] = []
    customers: list[ClientConnection] = []
    rng = random.Random(7)
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> _Stream:
        async with sem:
            customer = await open_ws(port, "customer")
            customers.append(customer)
            link = f"link-{watcher_id(i % watchers)}"
            await customer.send(encode(Start(1, Via.LINK, Intake(customer_name=f"Streamer {i}"), link=link, page_url="https://shop.example/")), text=True)
            while True:
                msg = parse_customer_reply(await customer.recv(decode=False))
                if isinstance(msg, Started):
                    break
                if isinstance(msg, Error):
                    raise RuntimeError(f"start refused: {msg}")
            rep = reps[i % watchers]
            await rep.ok(CommandName.ACCEPT.value, session=msg.session)
            await rep.ok("cobrowse_watch", session=msg.session)
            ws = await open_ws(port, "cobrowse")
            await ws.send(encode(Attach(1, msg.token, "https://shop.example/", "Acme Store")), text=True)
            reply = parse_recorder_reply(await ws.recv(decode=False))
            if not isinstance(reply, Attached):
                raise RuntimeError(f"attach refused: {reply}")
            return _Stream(ws, batches, length, rng.uniform(0, length))

    t0 = time.perf_counter()
    streams = list(await asyncio.gather(*(one(i) for i in range(sessions))))
    go = asyncio.Event()
    tasks = [asyncio.ensure_future(s.run(go)) for s in streams]
    await asyncio.sleep(2)  # every first snapshot sent and relayed
    print(f"READY {len(streams)} {time.perf_counter() - t0:.1f}", flush=True)
    loop = asyncio.get_running_loop()
    marks: list[tuple[str, float]] = []
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        word = line.strip()
        marks.append((word, time.time()))
        if word == "GO":
            go.set()
        elif word == "PAUSE":
            go.clear()
        else:
            break
        print("OK", flush=True)
    frames = [f for r in reps for f in r.frames]
    streaming = 0.0
    relayed = 0
    for (word, start), (_, end) in itertools.pairwise(marks):
        if word == "GO":
            streaming += end - start
            relayed += sum(size for at, size in frames if start <= at < end)
    print(json.dumps({
        "sessions": len(streams), "sent": sum(s.sent for s in streams), "relayed_streaming": relayed, "streaming_seconds": streaming,
        "asks": sum(s.asks for s in streams), "errors": sorted({e for s in streams for e in s.errors}),
        "per_session_rate": sum(len(encode(Record(0, 0, 1, t))) for _, t, _ in batches) / length, "failed": sum(1 for t in tasks if t.done()),
    }), flush=True)  # fmt: skip
    os._exit(0)


class Streamer:
    def __init__(self, port: int, sessions: int, watchers: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.cobrowse_streams", str(port), str(sessions), str(watchers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def ready(self) -> tuple[int, float]:
        line = self._line()
        if not line.startswith("READY"):
            raise RuntimeError(f"the streamer failed: {line!r}")
        _, n, seconds = line.split()
        return int(n), float(seconds)

    def tell(self, word: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        line = self._line()
        return json.loads(line) if word == "STOP" else line

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    raise_fd_limit()
    asyncio.run(_streamer(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
