"""The queue server under load: thousands of consoles, tens of thousands waiting.

    python -m bench.bench_server             # 2,000 consoles, 20,000 waiting, 200 commands/s for 30 s
    python -m bench.bench_server --quick     # 200 consoles, 2,000 waiting, 10 s

One ``repconsole-server`` process (a subprocess, data directory in /tmp) on
a site of 40 teams of 50 reps.  Everything talks to it over loopback
WebSocket, as in production:

1. **Waiting customers** arrive through ``/customer`` (a few hundred sockets
   at a time; ``customer_grace = 0``, so a session stays waiting after its
   page closes): 20,000, spread over the 40 team queues.
2. **Consoles** log in: 2,000 logins, one per rep.  1,960 of them are held
   by two load-generator processes (raw ``websockets`` connections that
   read every frame, typed by :mod:`repconsole.protocol`, and time what
   they are looking for); the other 40, one
   per team, are the *workers* of the driver (this process).
3. **Load**: the driver sends 200 commands a second for 30 s, round robin
   over the workers: 30% customer arrivals (``/customer`` start), 30%
   accepts (Get Next), 10% transfers to another team, 20% ends, 10% team
   chat lines.  Every command is sent at its scheduled time, not after the
   previous one's answer.

Printed:

* **delivery latency**, p50/p99 (and max), from the moment the triggering
  command was sent to the moment a console received the resulting event, over
  every console that received one: arrivals (the ``session`` event in the
  team's 49 passive consoles; the send time rides in the customer's name),
  accepts (the ``session_gone`` at the other members; joined by session id
  with the send time the driver recorded), transfers (the ``session`` event
  at the receiving team; the send time rides in the note) and team chat (the
  send time rides in the text).  Clocks: one machine, ``time.time()``.
* the **server's CPU** during the load, in % of one core (utime + stime from
  /proc/PID/stat), and the load generators' and driver's, to show how busy
  the two cores were;
* the server's **RSS per connection**: (RSS with every console logged in -
  RSS with the customers waiting and only the 40 workers logged in) / the
  passive consoles, from /proc/PID/status; the RSS after the load too.
  Password hashes are made at the cost the server runs at
  (``--password-cost``, :data:`PASSWORD_COST`: argon2id at its least), so a
  login is not a re-hash at OWASP's cost, and the workers' logins have
  started the hashing threads before the first reading: what is measured
  is connections, not password hashing;
* the round trip of the driver's commands (send to result) under that load.

Targets: p99 delivery <= 100 ms; <= 32 KiB per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from repconsole.protocol import (
    COMMANDS,
    PROTOCOL_VERSION,
    Command,
    CommandName,
    Error,
    EventKind,
    Events,
    GoneReason,
    Intake,
    Login,
    MessageType,
    RepReply,
    Result,
    SessionEvent,
    SessionGoneEvent,
    SessionResult,
    Start,
    Started,
    StepKind,
    TeamChatEvent,
    Via,
    Welcome,
    encode,
    parse_customer_reply,
    parse_rep_reply,
)

__all__ = ["ServerProc", "main", "percentile", "site_toml", "start_server"]

PASSWORD = "bench-secret-pw"
# The argon2id cost of the bench's hashes, and of its servers (repconsole-server --password-cost):
# argon2id at its least, so that a login costs the server microseconds of hashing, not 35 ms.
PASSWORD_COST = "m=8,t=1,p=1"
TARGET_P99_MS = 100.0
TARGET_KIB_PER_CONNECTION = 32.0
# The deliveries timed are named after what a console receives, except team
# chat, which is named after its event kind.
TEAM_CHAT = EventKind.TEAM_CHAT.value
MIX = ["arrive", "accept", "arrive", "end", "accept", "transfer", "arrive", "accept", "end", "team_say"]  # 10 slots: 30/30/10/20/10 %



class _Head(msgspec.Struct):
    """Just a frame's type (and a snapshot's number of frames): the snapshot at login is checked, not read
    (a console's reading is not what is measured)."""

    type: MessageType
    parts: int = 1


_head = msgspec.json.Decoder(_Head)


# ---------------------------------------------------------------- the site and the server


def rep_id(team: int, i: int) -> str:
    return f"t{team:02d}-{i:03d}"


def team_id(team: int) -> str:
    return f"t{team:02d}"


def bench_password_hash() -> str:
    """PASSWORD hashed at the cost the bench's servers run at (:data:`PASSWORD_COST`).

    A server re-hashes, at a rep's first login, every hash not made at its own
    cost; a bench that seeded cheap hashes into a server at OWASP's cost timed
    that one-off migration (35 ms of CPU and 19 MiB a login) instead of the server.
    """
    from repconsole.server.auth import Argon2Params, hash_password

    m, t, p = (int(part.split("=")[1]) for part in PASSWORD_COST.split(","))
    return hash_password(PASSWORD, Argon2Params(time_cost=t, memory_cost=m, parallelism=p))


def site_toml(teams: int, reps_per_team: int, *, max_sessions: int = 1000) -> str:
    """``teams`` teams of ``reps_per_team`` reps, one issue per team (code = team id), cheap hashes."""
    h = bench_password_hash()
    parts = [
        "[site]\ngrace_period = 600\n",
        f"max_sessions_default = {max_sessions}\n",
        "\n[server]\ncustomer_starts_per_minute = 0\ncustomer_grace = 0\n",
    ]
    for t in range(teams):
        parts.append(f'\n[teams.{team_id(t)}]\nname = "Team {t:02d}"\n')
    for t in range(teams):
        for i in range(reps_per_team):
            parts.append(f'\n[[reps]]\nid = "{rep_id(t, i)}"\nname = "Rep {rep_id(t, i)}"\nteams = ["{team_id(t)}"]\npassword_hash = "{h}"\n')
    for t in range(teams):
        parts.append(f'\n[[issues]]\ncode = "{team_id(t)}"\nname = "Issue {t}"\ncategory = "Bench"\nteam = "{team_id(t)}"\n')
    return "".join(parts)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# Run the real server's entry point with two probes: how long each garbage
# collection takes, and how late the event loop runs a 20 ms timer.  Each is
# printed ("DIAG ...") when it exceeds 20 ms.
_DIAGNOSED = """
import asyncio, gc, sys, time
_gc_t0 = [0.0]
def _gc(phase, info):
    if phase == "start":
        _gc_t0[0] = time.perf_counter()
    else:
        ms = (time.perf_counter() - _gc_t0[0]) * 1000
        if ms >= 20:
            print(f"DIAG gc {time.time():.3f} gen={info['generation']} ms={ms:.0f} tracked={len(gc.get_objects(2))}", flush=True)
gc.callbacks.append(_gc)
from repconsole.server import app
_start_server = app.Server.start
async def _lag():
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.02)
        late = (time.perf_counter() - t - 0.02) * 1000
        if late >= 20:
            print(f"DIAG lag {time.time():.3f} ms={late:.0f}", flush=True)
async def _start(self):
    await _start_server(self)
    self._diag = asyncio.ensure_future(_lag())
app.Server.start = _start
from repconsole.server.cli import main
sys.exit(main(sys.argv[1:]))
"""


class ServerProc:
    """``repconsole-server`` in a subprocess; its output is drained (and kept) by a thread.

    With ``diagnose``, it runs with probes for garbage-collection pauses and
    event-loop lag (see :attr:`diagnostics`).
    """

    def __init__(
        self, config: Path, data: Path, *extra: str, diagnose: bool = False, entry: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.lines: list[str] = []
        if entry is None:
            entry = ["-c", _DIAGNOSED] if diagnose else ["-m", "repconsole.server"]
        self.proc = subprocess.Popen(
            [sys.executable, *entry, "--port", "0", "--config", str(config), "--data", str(data), "--log-level", "warning",
             "--password-cost", PASSWORD_COST, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.port = 0
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                match = re.search(r"listening on ws://\S+:(\d+)", line)
                if match:
                    self.port = int(match[1])
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(120) or not self.port:
            self.stop()
            raise RuntimeError("repconsole-server did not start:\n" + "\n".join(self.lines[-30:]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def problems(self) -> list[str]:
        return [line for line in self.lines if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]

    def diagnostics(self, since: float = 0.0) -> list[tuple[str, float, dict[str, str]]]:
        """(kind, time, fields) of every DIAG line printed after ``since``."""
        found = []
        for line in self.lines:
            if line.startswith("DIAG "):
                kind, at, *rest = line.split()[1:]
                if float(at) >= since:
                    found.append((kind, float(at), dict(f.split("=", 1) for f in rest)))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(config: Path, data: Path, *, diagnose: bool = False) -> ServerProc:
    return ServerProc(config, data, diagnose=diagnose)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# ---------------------------------------------------------------- clients


async def open_ws(port: int, path: str) -> ClientConnection:
    return await connect(f"ws://127.0.0.1:{port}/{path}", compression=None, max_size=None, open_timeout=60, ping_interval=None, close_timeout=5)


async def login(port: int, rep: str) -> tuple[ClientConnection, int]:
    """A logged-in console; returns it and the size of its snapshot (all its frames)."""
    ws = await open_ws(port, "rep")
    await ws.send(encode(Login(1, rep, PASSWORD, PROTOCOL_VERSION)), text=True)
    welcome = parse_rep_reply(await ws.recv(decode=False))
    if not isinstance(welcome, Welcome):
        raise RuntimeError(f"login of {rep} refused: {welcome}")
    snapshot = await ws.recv(decode=False)
    head = _head.decode(snapshot)
    if head.type is not MessageType.SNAPSHOT:
        raise RuntimeError(f"{rep}: expected a snapshot, got {snapshot[:100]!r}")
    size = len(snapshot)
    for _ in range(head.parts - 1):  # a big snapshot's other parts (snapshot_part frames)
        size += len(await ws.recv(decode=False))
    return ws, size


async def arrive(port: int, issue: str, name: str) -> str:
    """A customer starts a session and closes the page (customer_grace 0: the session keeps waiting)."""
    ws = await open_ws(port, "customer")
    try:
        await ws.send(encode(Start(1, Via.ISSUE, Intake(customer_name=name), issue=issue)), text=True)
        while True:
            msg = parse_customer_reply(await ws.recv(decode=False))
            if isinstance(msg, Started) and msg.id == 1:
                return msg.session
            if isinstance(msg, Result | Error) and msg.id == 1:
                raise RuntimeError(f"start refused: {msg}")
    finally:
        await ws.close()


async def seed(port: int, count: int, teams: int, concurrency: int = 200) -> float:
    """``count`` waiting customers over /customer, round robin over the teams.  Returns the seconds it took."""
    started = time.perf_counter()
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < count:
            await arrive(port, team_id(i % teams), f"Waiting customer {i}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


# ---------------------------------------------------------------- load generator (a subprocess)


def _on_frame(frame: bytes, now: float, samples: dict[str, list[tuple[float, float]]], gone: list[tuple[str, float]]) -> None:
    msg = parse_rep_reply(frame)  # typed: faster than plain dicts, and checked
    if not isinstance(msg, Events):
        return
    for e in msg.events:
        match e:
            case SessionEvent():
                s = e.data.session
                last = s.timeline[-1].kind if s.timeline else None
                if last is StepKind.ARRIVED and s.customer_name.startswith("t="):
                    sent = float(s.customer_name[2:])
                    samples["arrival"].append((sent, now - sent))
                elif last is StepKind.TRANSFERRED and s.transfer_note.startswith("t="):
                    sent = float(s.transfer_note[2:])
                    samples["transfer"].append((sent, now - sent))
            case SessionGoneEvent():
                if e.data.reason is GoneReason.TAKEN:
                    gone.append((e.data.id, now))
            case TeamChatEvent():
                text = e.data.line.text
                if text.startswith("t="):
                    sent = float(text[2:])
                    samples[TEAM_CHAT].append((sent, now - sent))


async def _loadgen(port: int, reps: list[str], out: Path) -> None:
    """Log every console in (25 at a time) and read each one's frames from its login on."""
    samples: dict[str, list[tuple[float, float]]] = {"arrival": [], "transfer": [], TEAM_CHAT: []}
    gone: list[tuple[str, float]] = []
    frames = [0]
    started = time.perf_counter()
    sem = asyncio.Semaphore(25)
    snapshot_bytes = [0]
    logged = [0]
    measuring = [False]

    async def console(rep: str) -> None:
        async with sem:
            ws, size = await login(port, rep)
        snapshot_bytes[0] += size
        logged[0] += 1
        try:
            while True:
                frame = await ws.recv(decode=False)
                if measuring[0]:
                    frames[0] += 1
                    _on_frame(frame, time.time(), samples, gone)
        except Exception:
            return

    readers = [asyncio.ensure_future(console(rep)) for rep in reps]
    while logged[0] < len(reps):
        failed = [r for r in readers if r.done() and r.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.sleep(0.05)
    measuring[0] = True
    print(f"READY {len(readers)} {snapshot_bytes[0]} {time.perf_counter() - started:.2f}", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(sys.stdin.readline()))
    await stop
    cpu = time.process_time()
    out.write_text(json.dumps({"samples": samples, "gone": gone, "frames": frames[0], "cpu": cpu}))
    print("DONE", flush=True)
    os._exit(0)  # no goodbye to 1,000 sockets: the server sees them drop


class LoadGen:
    def __init__(self, port: int, reps: list[str], out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_server", "--loadgen", str(port), str(out), *reps],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        self.ready: tuple[int, int, float] | None = None

    def wait_ready(self) -> tuple[int, int, float]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"load generator failed: {line!r}")
        _, n, size, seconds = line.split()
        self.ready = (int(n), int(size), float(seconds))
        return self.ready

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("STOP\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.proc.wait(60)
        if not line.startswith("DONE"):
            raise RuntimeError(f"load generator did not finish: {line!r}")
        return json.loads(self.out.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- the driver


class Worker:
    """One team's working rep, driven by this process: commands and their round trips."""

    def __init__(self, team: int, ws: ClientConnection) -> None:
        self.team = team
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, tuple[asyncio.Future[Result | Error], float]] = {}
        self.owned: list[str] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                msg: RepReply = parse_rep_reply(await self.ws.recv(decode=False))
                if isinstance(msg, Result | Error) and isinstance(msg.id, int):
                    hit = self.pending.pop(msg.id, None)
                    if hit is not None and not hit[0].done():
                        hit[0].set_result(msg)
        except Exception:
            for fut, _ in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("worker connection lost"))

    async def call(self, name: CommandName, rtts: list[float], **args: Any) -> tuple[Result | Error, float]:
        rid = next(self.ids)
        fut: asyncio.Future[Result | Error] = asyncio.get_running_loop().create_future()
        sent = time.time()
        self.pending[rid] = (fut, sent)
        await self.ws.send(encode(Command(rid, name, args)), text=True)
        reply = await fut
        rtts.append(time.time() - sent)
        return reply, sent


async def drive(port: int, workers: list[Worker], teams: int, rate: float, seconds: float, rng: random.Random) -> dict[str, Any]:
    accept_sent: dict[str, float] = {}
    rtts: dict[str, list[float]] = {k: [] for k in set(MIX)}
    refused: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * seconds)
    late = [0.0]

    async def act(kind: str, w: Worker) -> None:
        if kind in ("transfer", "end") and not w.owned:
            kind = "accept"
        if kind == "arrive":
            t = time.time()
            await arrive(port, team_id(w.team), f"t={t:.6f}")
            rtts["arrive"].append(time.time() - t)
            return
        if kind == "accept":
            reply, sent = await w.call(CommandName.GET_NEXT, rtts["accept"])
            if isinstance(reply, Result):
                result = msgspec.json.decode(reply.result, type=COMMANDS[CommandName.GET_NEXT].result)
                assert isinstance(result, SessionResult)
                sid = result.session.id
                accept_sent[sid] = sent
                w.owned.append(sid)
        elif kind == "transfer":
            sid = w.owned.pop(rng.randrange(len(w.owned)))
            target = rng.choice([t for t in range(teams) if t != w.team])
            reply, _ = await w.call(CommandName.TRANSFER, rtts["transfer"], session=sid, target=f"team:{team_id(target)}", note=f"t={time.time():.6f}")
        elif kind == "end":
            sid = w.owned.pop(rng.randrange(len(w.owned)))
            reply, _ = await w.call(CommandName.END, rtts["end"], session=sid)
        else:
            reply, _ = await w.call(CommandName.TEAM_SAY, rtts["team_say"], team=team_id(w.team), text=f"t={time.time():.6f}")
        if isinstance(reply, Error):
            refused[reply.reason] = refused.get(reply.reason, 0) + 1

    start = time.perf_counter()
    for k in range(total):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late[0] = max(late[0], -delay)
        task = asyncio.ensure_future(act(MIX[k % len(MIX)], workers[k % len(workers)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - start
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    return {"accept_sent": accept_sent, "rtts": rtts, "refused": refused, "sent": total, "seconds": sent_for, "late": late[0]}


# ---------------------------------------------------------------- main


def _fmt_ms(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    ms = [v * 1000 for v in values]
    return f"p50 {percentile(ms, 50):6.1f} ms   p99 {percentile(ms, 99):6.1f} ms   max {max(ms):7.1f} ms   ({len(ms):,} deliveries)"


async def _run(args: argparse.Namespace) -> None:
    teams, per_team = args.teams, args.consoles // args.teams
    consoles = teams * per_team
    rng = random.Random(1)
    fd_limit = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-server-"))
    config = work / "site.toml"
    config.write_text(site_toml(teams, per_team))
    print(f"== queue server under load: {consoles:,} consoles ({teams} teams of {per_team}), {args.waiting:,} waiting, "
          f"{args.rate:.0f} commands/s for {args.seconds:.0f} s (fd limit {fd_limit}) ==")  # fmt: skip
    server = start_server(config, work / "data", diagnose=args.diagnose)
    gens: list[LoadGen] = []
    try:
        rss_empty_site = server.rss_kib()
        took = await seed(server.port, args.waiting, teams)
        print(f"seeded {args.waiting:,} waiting customers through /customer in {took:.1f} s ({args.waiting / took:,.0f}/s)")
        rss0 = server.rss_kib()
        print(f"server RSS: {rss_empty_site / 1024:.1f} MiB with an empty site, {rss0 / 1024:.1f} MiB with {args.waiting:,} waiting and 0 consoles")

        # Consoles: one worker per team here, then the passive ones in the load generators.
        # The workers' logins also start the server's password-hashing threads, so that
        # the RSS per connection below is that of the passive consoles' connections alone.
        t0 = time.perf_counter()
        workers = []
        for t in range(teams):
            ws, _ = await login(server.port, rep_id(t, 0))
            workers.append(Worker(t, ws))
        rss_workers = server.rss_kib()
        passive = [rep_id(t, i) for t in range(teams) for i in range(1, per_team)]
        chunks = [passive[i :: args.loadgens] for i in range(args.loadgens)]
        gens = [LoadGen(server.port, chunk, work / f"loadgen-{n}.json") for n, chunk in enumerate(chunks)]
        readies = [g.wait_ready() for g in gens]
        logged = sum(r[0] for r in readies) + len(workers)
        snap_mb = sum(r[1] for r in readies) / 1e6
        print(f"{logged:,} consoles logged in in {time.perf_counter() - t0:.1f} s (snapshots: {snap_mb:,.0f} MB in all, "
              f"{snap_mb * 1e3 / max(1, logged - len(workers)):,.0f} kB each)")  # fmt: skip
        rss_logged = server.rss_kib()

        load_started = time.time()
        cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()
        gen_cpu0 = [cpu_seconds(g.proc.pid) for g in gens]
        me0 = time.process_time()
        result = await drive(server.port, workers, teams, args.rate, args.seconds, rng)
        wall = time.perf_counter() - wall0
        server_cpu = (cpu_seconds(server.pid) - cpu0) / wall * 100
        gen_cpu = [(cpu_seconds(g.proc.pid) - c) / wall * 100 for g, c in zip(gens, gen_cpu0, strict=True)]
        me_cpu = (time.process_time() - me0) / wall * 100
        rss_end = server.rss_kib()
        # Let the last events reach the consoles before they stop listening.
        await asyncio.sleep(0.5)
        outs = [g.finish() for g in gens]

        timed: dict[str, list[tuple[float, float]]] = {"arrival": [], "accept": [], "transfer": [], TEAM_CHAT: []}
        for out in outs:
            for kind, values in out["samples"].items():
                timed[kind].extend((sent, lat) for sent, lat in values)
            for sid, t in out["gone"]:
                sent = result["accept_sent"].get(sid)
                if sent is not None:
                    timed["accept"].append((sent, t - sent))
        samples = {kind: [lat for _, lat in values] for kind, values in timed.items()}
        everything = [v for values in samples.values() for v in values]
        print(f"load: {result['sent']:,} commands in {result['seconds']:.1f} s ({result['sent'] / result['seconds']:.0f}/s; "
              f"driver at most {result['late'] * 1000:.0f} ms behind schedule); refused: {result['refused'] or 'none'}")  # fmt: skip
        print("delivery latency, command sent -> event received by a console:")
        for kind in ("arrival", "accept", "transfer", TEAM_CHAT):
            print(f"  {kind:<10} {_fmt_ms(samples[kind])}")
        p99 = percentile(everything, 99) * 1000
        print(f"  {'all':<10} {_fmt_ms(everything)}   target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if p99 <= TARGET_P99_MS else 'MISSED'}")
        first = min((sent for values in timed.values() for sent, _ in values), default=0.0)
        worst: dict[int, float] = {}
        for values in timed.values():
            for sent, lat in values:
                second = int(sent - first)
                worst[second] = max(worst.get(second, 0.0), lat)
        slow = sorted(((s, lat) for s, lat in worst.items() if lat > TARGET_P99_MS / 1000), key=lambda x: x[0])
        if slow:
            print("  seconds of the load with a delivery over the target (second: worst): "
                  + ", ".join(f"{s}: {lat * 1000:.0f} ms" for s, lat in slow[:20]))  # fmt: skip
        print("command round trip (driver, under load): " + "; ".join(
            f"{k} p50 {percentile(v, 50) * 1000:.1f} / p99 {percentile(v, 99) * 1000:.1f} ms" for k, v in sorted(result["rtts"].items()) if v
        ))  # fmt: skip
        print(f"CPU during the load (% of one core): server {server_cpu:.0f}%, load generators "
              + ", ".join(f"{c:.0f}%" for c in gen_cpu) + f", driver {me_cpu:.0f}%  (2 cores in all)")  # fmt: skip
        per_conn = (rss_logged - rss_workers) / len(passive)
        print(f"server RSS: {rss_logged / 1024:.1f} MiB with {consoles:,} consoles logged in, {rss_end / 1024:.1f} MiB after the load "
              f"(+{(rss_end - rss_logged) / 1024:.1f} MiB: {result['sent'] * 3 // 10:,} new sessions, "
              "the events of the resume window, stored answers)")  # fmt: skip
        print(f"RSS per connection: {per_conn:.1f} KiB ((RSS with every console - RSS with the {len(workers)} workers') / {len(passive):,} "
              f"passive consoles; logins hash at {PASSWORD_COST})   "
              f"target <= {TARGET_KIB_PER_CONNECTION:.0f} KiB: {'met' if per_conn <= TARGET_KIB_PER_CONNECTION else 'MISSED'}")  # fmt: skip
        frames = sum(out["frames"] for out in outs)
        print(f"frames received by the passive consoles during the load: {frames:,} ({frames / wall:,.0f}/s)")
        if args.diagnose:
            diag = server.diagnostics(load_started)
            pauses = [(at - load_started, float(f["ms"]), f) for kind, at, f in diag if kind == "gc"]
            lags = [(at - load_started, float(f["ms"])) for kind, at, f in diag if kind == "lag"]
            print(f"server diagnostics during the load: {len(pauses)} garbage collections over 20 ms, longest "
                  f"{max((p[1] for p in pauses), default=0):.0f} ms (" + ", ".join(
                      f"t+{t:.0f}s gen{f['gen']} {ms:.0f} ms over {int(f['tracked']):,} objects" for t, ms, f in pauses[:8]) + ")")  # fmt: skip
            print(f"  event loop late by over 20 ms {len(lags)} times, worst {max((lag[1] for lag in lags), default=0):.0f} ms: "
                  + ", ".join(f"t+{t:.1f}s {ms:.0f} ms" for t, ms in sorted(lags, key=lambda x: -x[1])[:8]))  # fmt: skip
        if server.problems():
            first = server.lines.index(server.problems()[0])
            print("server reported problems:\n  " + "\n  ".join(server.lines[first : first + 40]))
    finally:
        for g in gens:
            g.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--loadgen":
        raise_fd_limit()
        port, out, reps = int(argv[1]), Path(argv[2]), argv[3:]
        asyncio.run(_loadgen(port, reps, out))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.bench_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--consoles", type=int, default=2000)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--waiting", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--loadgens", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="200 consoles, 2,000 waiting, 10 s")
    parser.add_argument("--diagnose", action="store_true", help="report the server's garbage-collection pauses and event-loop lag")
    args = parser.parse_args(argv)
    if args.quick:
        args.consoles, args.teams, args.waiting, args.seconds = 200, 10, 2000, 10.0
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
