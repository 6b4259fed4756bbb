"""The queue server's memory over many handled sessions: a soak.

    python -m bench.bench_soak               # warm-up of 7,000 sessions, then 5 runs of 4,000 (20,000 measured)
    python -m bench.bench_soak --quick       # warm-up of 500, 5 runs of 300: a smoke run (the resume ring still fills: ~6 KiB a session)
    python -m bench.bench_soak --tracemalloc # the same, the server under tracemalloc: where what stays was allocated

One ``repconsole-server`` process (a subprocess on a free loopback port,
with its own data directory in /tmp, the default ``[server]`` settings but
no limit on starts per address) on a site of 2 teams of 4 reps.  Each rep's
console logs in once and reads every frame it is sent.  Then sessions are
handled, ``--concurrency`` at a time, each over real WebSockets with the typed
protocol (:mod:`repconsole.protocol`), as a customer page and a console do:

1. every other session starts with a **session key**: its rep makes one
   (``generate_key``) and the customer's page starts with it (``/customer``
   ``start`` via ``key``: the rep's personal queue); the others start from
   the issue form (via ``issue``: the rep's team queue, where the team's 4
   consoles see it);
2. the rep accepts it (``accept``, by the id the page was given);
3. ``--lines`` chat lines, the customer and the rep in turn (``say`` on both
   endpoints; the rep's second line is ``reps_only``), each answered before
   the next;
4. the rep ends it (``end``), or every other time the customer leaves
   (``leave``); the page reads until the server closes it.

Measured: the server's RSS (``VmRSS`` of /proc/PID/status), idle (consoles
logged in, no session yet), after the **warm-up**, and before and after each
**run**, a second after the last session of each.  The warm-up fills what is
bounded by count (the resume ring keeps at most 50,000 events, ~8 a
session), so a run's growth is what a handled session leaves behind for
good, plus what is bounded by time (the resume ring's 300 s, session keys
kept a day after they expire).  Printed: RSS growth per handled session,
the median of the runs with min-max, and over all of them; as an anchor in
the same run, RSS after all runs as a ratio of the RSS after the warm-up, and
the growth per connection of a bare ``websockets`` echo server under the same
connection churn (a connection per session, as many frames as a page sends,
as many at a time; twice a run's count after half of one to warm up).

Target: <= 10 KiB per handled session.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.bench_server import ServerProc, bench_password_hash, login, open_ws, raise_fd_limit
from repconsole.protocol import (
    COMMANDS,
    Command,
    CommandName,
    CustomerReply,
    CustomerState,
    Error,
    Intake,
    KeyResult,
    Leave,
    MessageType,
    Result,
    Say,
    Start,
    Started,
    Status,
    Via,
    encode,
    parse_customer_reply,
    parse_rep_reply,
)

__all__ = ["main", "site_toml"]

TARGET_KIB_PER_SESSION = 10.0
TEAMS = 2
REPS_PER_TEAM = 4
SETTLE = 1.0  # seconds after a run's last session before RSS is read: the last closes and timers


def team_id(t: int) -> str:
    return f"soak{t}"


def rep_id(t: int, i: int) -> str:
    return f"soak{t}-{i}"


def site_toml() -> str:
    """2 teams of 4 reps (no session cap worth the name), one issue per team, hashes at the bench's cost."""
    h = bench_password_hash()
    parts = ["[site]\nmax_sessions_default = 1000\n", "\n[server]\ncustomer_starts_per_minute = 0\n"]
    for t in range(TEAMS):
        parts.append(f'\n[teams.{team_id(t)}]\nname = "Soak team {t}"\n')
    for t in range(TEAMS):
        for i in range(REPS_PER_TEAM):
            parts.append(f'\n[[reps]]\nid = "{rep_id(t, i)}"\nname = "Soak Rep {t}-{i}"\nteams = ["{team_id(t)}"]\npassword_hash = "{h}"\n')
    for t in range(TEAMS):
        parts.append(f'\n[[issues]]\ncode = "{team_id(t)}"\nname = "Soak issue {t}"\ncategory = "Soak"\nteam = "{team_id(t)}"\n')
    return "".join(parts)


# ---------------------------------------------------------------- the server under tracemalloc


# The real entry point, with tracemalloc on; SIGUSR1 writes a snapshot to
# $SOAK_SNAPSHOT.<n> (n = 0, 1, ...) and prints "SNAPSHOT <path>".
_TRACED = """
import os, signal, sys, tracemalloc
tracemalloc.start(int(os.environ.get("SOAK_FRAMES", "6")))
_count = [0]
def _snap(signum, frame):
    path = f"{os.environ['SOAK_SNAPSHOT']}.{_count[0]}"
    _count[0] += 1
    tracemalloc.take_snapshot().dump(path)
    print(f"SNAPSHOT {path}", flush=True)
signal.signal(signal.SIGUSR1, _snap)
from repconsole.server.cli import main
sys.exit(main(sys.argv[1:]))
"""


class TracedServer(ServerProc):
    """The server with tracemalloc on: :meth:`snapshot` asks it for one."""

    def __init__(self, config: Path, data: Path, snapshots: Path) -> None:
        super().__init__(config, data, entry=["-c", _TRACED], env={"SOAK_SNAPSHOT": str(snapshots)})

    def snapshot(self, timeout: float = 120.0) -> tracemalloc.Snapshot:
        before = len([line for line in self.lines if line.startswith("SNAPSHOT ")])
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [line for line in self.lines if line.startswith("SNAPSHOT ")]
            if len(done) > before:
                return tracemalloc.Snapshot.load(done[-1].split(" ", 1)[1])
            time.sleep(0.1)
        raise RuntimeError("the server wrote no tracemalloc snapshot")


def print_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sessions: int, top: int = 15) -> None:
    """The allocation sites whose memory grew most between two snapshots, per handled session."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    total = sum(d.size_diff for d in diff)
    print(f"tracemalloc: {total / 1024:+,.0f} KiB traced over {sessions:,} sessions ({total / 1024 / sessions:+.2f} KiB each); the top sites:")
    for d in diff[:top]:
        frames = [f for f in d.traceback if "/repconsole/" in f.filename] or list(d.traceback)
        where = " < ".join(f"{_short(f.filename)}:{f.lineno}" for f in frames[-3:][::-1])
        print(f"  {d.size_diff / 1024:+9,.0f} KiB {d.count_diff:+8,} blocks  {d.size_diff / sessions:+8.0f} B/session  {where}")


def _short(filename: str) -> str:
    for marker in ("/repconsole/", "/site-packages/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ---------------------------------------------------------------- consoles and pages


class _Head(msgspec.Struct):
    """A frame's type and id: a console reads every frame and decodes in full only the answers it waits for."""

    type: MessageType
    id: int | str | None = None


_head = msgspec.json.Decoder(_Head)


class Console:
    """A rep's console: logged in once, commands by id, every frame read."""

    def __init__(self, rep: str, team: str, ws: ClientConnection) -> None:
        self.rep = rep
        self.team = team
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Result | Error]] = {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, port: int, rep: str, team: str) -> Console:
        ws, _ = await login(port, rep)
        return cls(rep, team, ws)

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.ws.recv(decode=False)
                head = _head.decode(frame)
                if head.type in (MessageType.RESULT, MessageType.ERROR) and isinstance(head.id, int):
                    fut = self.pending.pop(head.id, None)
                    msg = parse_rep_reply(frame)
                    if fut is not None and not fut.done() and isinstance(msg, Result | Error):
                        fut.set_result(msg)
        except ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"the console of {self.rep} lost its connection"))

    async def call(self, name: CommandName, **args: object) -> Result:
        rid = next(self.ids)
        fut: asyncio.Future[Result | Error] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(encode(Command(rid, name, dict(args))), text=True)
        reply = await fut
        if isinstance(reply, Error):
            raise RuntimeError(f"{self.rep}: {name} {args} refused: {reply.reason} ({reply.detail})")
        return reply

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


class Page:
    """A customer's page: one connection, requests answered in order, what is pushed kept."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ended = False

    async def request(self, message: Start | Say | Leave) -> CustomerReply:
        await self.ws.send(encode(message), text=True)
        while True:
            msg = parse_customer_reply(await self.ws.recv(decode=False))
            if isinstance(msg, Status) and msg.state is CustomerState.ENDED:
                self.ended = True
            if isinstance(msg, Started | Result | Error) and msg.id == message.id:
                if isinstance(msg, Error):
                    raise RuntimeError(f"the page's {type(message).__name__} was refused: {msg.reason} ({msg.detail})")
                return msg

    async def until_closed(self) -> None:
        """Read until the server closes the connection (it does once the session ended)."""
        try:
            while True:
                msg = parse_customer_reply(await self.ws.recv(decode=False))
                if isinstance(msg, Status) and msg.state is CustomerState.ENDED:
                    self.ended = True
        except ConnectionClosed:
            pass
        if not self.ended:
            raise RuntimeError("the page was closed before it heard that its session ended")


async def handle_session(port: int, console: Console, n: int, lines: int, text: str) -> None:
    """One customer's whole session, from the page's start to its close."""
    intake = Intake(customer_name=f"Soak customer {n}", company="Soak Ltd", details=text)
    if n % 2 == 0:
        made = await console.call(CommandName.GENERATE_KEY, valid_for=600.0)
        key = msgspec.json.decode(made.result, type=COMMANDS[CommandName.GENERATE_KEY].result)
        assert isinstance(key, KeyResult)
        start = Start(1, Via.KEY, intake, key=key.key.key)
    else:
        start = Start(1, Via.ISSUE, intake, issue=console.team)
    ws = await open_ws(port, "customer")
    try:
        page = Page(ws)
        started = await page.request(start)
        assert isinstance(started, Started)
        sid = started.session
        await console.call(CommandName.ACCEPT, session=sid)
        for k in range(lines):
            if k % 2 == 0:
                await page.request(Say(10 + k, f"{text} ({k})"))
            else:
                await console.call(CommandName.SAY, session=sid, text=f"{text} [{k}]", reps_only=k == 3)
        if n % 4 < 2:
            await console.call(CommandName.END, session=sid)
        else:
            await page.request(Leave(99))
        await page.until_closed()
    finally:
        await ws.close()


async def handle(port: int, consoles: Sequence[Console], first: int, count: int, concurrency: int, lines: int, text: str) -> float:
    """Sessions ``first`` to ``first + count - 1``, ``concurrency`` at a time.  Returns the seconds it took."""
    numbers = iter(range(first, first + count))
    started = time.perf_counter()

    async def flow() -> None:
        for n in numbers:
            await handle_session(port, consoles[n % len(consoles)], n, lines, text)

    await asyncio.gather(*(flow() for _ in range(concurrency)))
    return time.perf_counter() - started


# ---------------------------------------------------------------- the anchor: a bare websockets echo server

_ECHO = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=64 * 1024) as server:
        print(f"listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


async def echo_churn(port: int, count: int, concurrency: int, frames: int, text: str) -> None:
    """``count`` connections, ``concurrency`` at a time, each ``frames`` messages echoed, then closed."""
    numbers = iter(range(count))

    async def flow() -> None:
        for n in numbers:
            ws = await open_ws(port, "")
            try:
                for k in range(frames):
                    await ws.send(encode(Say(k, f"{text} {n}")), text=True)
                    await ws.recv(decode=False)
            finally:
                await ws.close()

    await asyncio.gather(*(flow() for _ in range(concurrency)))


def start_echo() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        proc.kill()
        raise RuntimeError(f"the echo server did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, int(line.rsplit(":", 1)[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------- main


async def _run(args: argparse.Namespace) -> bool:
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-soak-"))
    config = work / "site.toml"
    config.write_text(site_toml())
    text = "x" * args.chars
    measured = args.runs * args.sessions
    print(f"== queue server soak: warm-up of {args.warmup:,} sessions, then {args.runs} runs of {args.sessions:,} "
          f"({measured:,} measured); {args.concurrency} at a time, {args.lines} chat lines of {args.chars} characters each ==")  # fmt: skip
    server: ServerProc = TracedServer(config, work / "data", work / "snapshot") if args.tracemalloc else ServerProc(config, work / "data")
    echo: subprocess.Popen[str] | None = None
    consoles: list[Console] = []
    try:
        port = server.port
        consoles = [await Console.open(port, rep_id(t, i), team_id(t)) for t in range(TEAMS) for i in range(REPS_PER_TEAM)]
        await asyncio.sleep(SETTLE)
        idle = rss_kib(server.pid)
        took = await handle(port, consoles, 0, args.warmup, args.concurrency, args.lines, text)
        await asyncio.sleep(SETTLE)
        warm = rss_kib(server.pid)
        print(f"server RSS: {idle / 1024:.1f} MiB idle ({len(consoles)} consoles logged in), {warm / 1024:.1f} MiB after the warm-up "
              f"({args.warmup:,} sessions in {took:.1f} s, {args.warmup / took:,.0f}/s)")  # fmt: skip
        traced = server.snapshot() if isinstance(server, TracedServer) else None
        start = rss_kib(server.pid)  # after the snapshot, which takes memory of its own
        growth: list[float] = []
        first = args.warmup
        for run in range(args.runs):
            before = rss_kib(server.pid)
            took = await handle(port, consoles, first, args.sessions, args.concurrency, args.lines, text)
            first += args.sessions
            await asyncio.sleep(SETTLE)
            after = rss_kib(server.pid)
            growth.append((after - before) / args.sessions)
            print(f"  run {run + 1}: {args.sessions:,} sessions in {took:.1f} s ({args.sessions / took:,.0f}/s): "
                  f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, {growth[-1]:+.2f} KiB per session")  # fmt: skip
        end = rss_kib(server.pid)
        if traced is not None and isinstance(server, TracedServer):
            print_growth(traced, server.snapshot(), measured)
        median = statistics.median(growth)
        overall = (end - start) / measured
        print(f"RSS growth per handled session: median {median:+.2f} KiB (min {min(growth):+.2f}, max {max(growth):+.2f}) over {args.runs} runs; "
              f"{overall:+.2f} KiB over all {measured:,}   target <= {TARGET_KIB_PER_SESSION:.0f} KiB: "
              f"{'met' if median <= TARGET_KIB_PER_SESSION and overall <= TARGET_KIB_PER_SESSION else 'MISSED'}")  # fmt: skip
        print(f"anchor: RSS after all runs {end / 1024:.1f} MiB = {end / start:.2f}x the RSS after the warm-up, {end / idle:.2f}x idle")

        echo, echo_port = start_echo()
        frames = args.lines + 2  # a page's start, its lines and its goodbye: about as many frames as a session's page sends
        churn = 2 * args.sessions
        await echo_churn(echo_port, args.sessions // 2, args.concurrency, frames, text)
        echo_before = rss_kib(echo.pid)
        await echo_churn(echo_port, churn, args.concurrency, frames, text)
        echo_growth = (rss_kib(echo.pid) - echo_before) / churn
        print(f"anchor: a bare websockets echo server under the same churn ({churn:,} connections of {frames} frames, {args.concurrency} "
              f"at a time, after {args.sessions // 2:,} to warm up): {echo_growth:+.2f} KiB per connection")  # fmt: skip
        problems = server.problems()
        if problems:
            print("server reported problems:\n  " + "\n  ".join(problems[:20]))
        return not problems
    finally:
        for console in consoles:
            console.reader.cancel()
        if echo is not None:
            echo.kill()
            echo.wait()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=7000, help="sessions before the first measurement (default 7,000)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs (default 5)")
    parser.add_argument("--sessions", type=int, default=4000, help="sessions per run (default 4,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="sessions handled at a time (default 32)")
    parser.add_argument("--lines", type=int, default=4, help="chat lines per session, customer and rep in turn (default 4)")
    parser.add_argument("--chars", type=int, default=60, help="characters per chat line and in the intake's details (default 60)")
    parser.add_argument("--tracemalloc", action="store_true", help="run the server under tracemalloc and print where what stayed was allocated")
    parser.add_argument("--quick", action="store_true", help="a smoke run: warm-up 500, 5 runs of 300 (too few to fill the resume ring: its growth counts)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.warmup, args.sessions = 500, 300
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
