"""The queue server under load: thousands of consoles, tens of thousands waiting, beside a bare broadcast.

    python -m bench.bench_server             # 2,000 consoles, 20,000 waiting, 200 commands/s, 5 runs of 30 s
    python -m bench.bench_server --quick     # 200 consoles, 2,000 waiting, 2 runs of 10 s
    python -m bench.bench_server --consoles 500 --teams 10

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

**The anchor**: in the same run, a **bare** ``websockets`` server (a
subprocess: no engine, no store, no batching) holds the same number of
consoles, in two load generators of its own and 40 workers, and gets the
same load: the driver runs each action on an engine of its own (the same
site and waiting customers) and sends the bare server the reply and the
events the real server would send, encoded as its fan-out encodes them; the
bare server writes each event at once to its audience with one
``websockets.broadcast()``, and answers.  The runs of the two alternate
(``--runs``, 5 by default).  The bare server times its delivery as the real
server's fan-out does (the loop thread's ``time.thread_time()`` around each
action's framing and ``broadcast()`` calls; events counted once per
connection written to) and serves the two totals at ``GET /metrics`` under
the real server's names (``repconsole_fanout_cpu_seconds_total``,
``repconsole_fanout_events_total``); the driver scrapes both servers before
and after each run (the real one on its main port, with a bench token).

Printed, per run and as the median over the runs (min–max), for both and as
ratios:

* **delivery latency**, p50/p99, from the moment the triggering
  command was sent to the moment a console received the resulting event, over
  every console that received one: arrivals (the ``session`` event in the
  team's 49 passive consoles; the send time rides in the customer's name),
  accepts (the ``session_gone`` at the other members; joined by session id
  with the send time the driver recorded), transfers (the ``session`` event
  at the receiving team; the send time rides in the note) and team chat (the
  send time rides in the text).  Clocks: one machine, ``time.time()``.
* the **whole process's CPU per 1,000 delivered events** (utime + stime from
  /proc/PID/stat over the run, per event the passive consoles received).
  This is the server's whole cost: the real one also runs the engine, the
  SQLite store and the customers' pages, which the bare server leaves to the
  driver's engine (the bare server has none), so this ratio cannot reach the
  goal by cheaper fan-out alone;
* beside it, the **delivery path (fan-out): encode + frame + write, thread
  CPU per 1,000 delivered events**: the loop thread's CPU in
  ``Fanout.flush`` (grouping, framing with each connection's ``prev``, the
  ``broadcast()`` writes; a backlog written at ``Fanout.ready``), not the
  encoding of each event at commit (shared with the store's log; the bare
  server gets its events encoded by the driver), against the bare server's
  framing and ``broadcast()`` calls; per 1,000 events as each server counts
  them (once per connection written to, the workers' too), and the ratio;
* for the real server, pooled over the runs: latency per kind, the round
  trip of the driver's commands, the CPU of the server, load generators and
  driver (how busy the two cores were), and its **RSS per connection**:
  (RSS with the consoles logged in - RSS with 0 consoles and the customers
  already waiting) / consoles, from /proc/PID/status.
* password hashes are made at the cost the server runs at
  (``--password-cost``, :data:`PASSWORD_COST`: argon2id at its least), so a
  login is not a re-hash at OWASP's cost: what is measured is connections
  and events, not password hashing.

Targets: p99 delivery <= 100 ms; against the bare broadcast, p99 <= 1.5x and
CPU per 1,000 delivered events <= 1.3x (printed for the whole process and for
the delivery path); <= 32 KiB per connection.
(The reconnect storm after a restart, beside a bare server: ``bench_storm``.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from repconsole.core.intake import Intake as CoreIntake
from repconsole.protocol import (
    COMMANDS,
    PROTOCOL_VERSION,
    Command,
    CommandName,
    CustomerState,
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
    Status,
    StepKind,
    TeamChatEvent,
    Via,
    Welcome,
    encode,
    parse_customer_reply,
    parse_rep_reply,
)

__all__ = ["BareProc", "ServerProc", "cpu_seconds", "fanout_counters", "main", "percentile", "raise_fd_limit", "rep_id", "seed", "site_toml", "start_server"]

PASSWORD = "bench-secret-pw"
# The argon2id cost of the bench's hashes, and of its servers (repconsole-server --password-cost):
# argon2id at its least, so that a login costs the server microseconds of hashing, not 35 ms.
PASSWORD_COST = "m=8,t=1,p=1"
TARGET_P99_MS = 100.0
TARGET_P99_RATIO = 1.5  # against the bare broadcast, same run
TARGET_CPU_RATIO = 1.3
TARGET_KIB_PER_CONNECTION = 32.0
# The delivery path's counters (repconsole.server.metrics; the bare server serves them too), and the
# token the bench's server reads /metrics with on its main port.
FANOUT_CPU = "repconsole_fanout_cpu_seconds_total"
FANOUT_EVENTS = "repconsole_fanout_events_total"
METRICS_TOKEN = "bench-metrics-token-0123456789"
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
import threading
_beat = [time.perf_counter(), time.thread_time()]  # when the loop last ran the probe, and its thread's CPU then
async def _lag():
    while True:
        t = time.perf_counter()
        _beat[:] = t, time.thread_time()
        await asyncio.sleep(0.02)
        late = (time.perf_counter() - t - 0.02) * 1000
        if late >= 20:
            print(f"DIAG lag {time.time():.3f} ms={late:.0f}", flush=True)
def _watch(main, clock):
    # Where the loop's thread is while the loop is late: its stack, sampled every 5 ms; and, when the
    # stall ends, how much of it the thread spent on a CPU (else it waited for one: a busy machine).
    stall = None
    while True:
        time.sleep(0.005)
        stale = time.perf_counter() - _beat[0]
        if stale <= 0.05:
            if stall is not None:
                wall, cpu = time.perf_counter() - stall[0], time.clock_gettime(clock) - stall[1]
                print(f"DIAG stall {time.time():.3f} ms={wall * 1000:.0f} cpu={cpu * 1000:.0f}", flush=True)
                stall = None
            continue
        if stall is None:
            stall = (_beat[0], _beat[1])
        frame, where = sys._current_frames().get(main), []
        try:  # the frames change under us: walk them by hand, and give up on a torn one
            while frame is not None and len(where) < 14:
                where.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{frame.f_code.co_name}")
                frame = frame.f_back
        except Exception:
            continue
        print(f"DIAG stack {time.time():.3f} stale={stale * 1000:.0f} at={'<'.join(where)}", flush=True)
async def _start(self):
    await _start_server(self)
    self._diag = asyncio.ensure_future(_lag())
    threading.Thread(target=_watch, args=(threading.get_ident(), time.pthread_getcpuclockid(threading.get_ident())), daemon=True).start()
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
                kind, at, rest = [*line.split(None, 3)[1:], ""][:3]
                if float(at) >= since:
                    # key=value fields; a stack's "at=" is the last and runs to the end of the line
                    # (frames such as "<frozen importlib._bootstrap>" have spaces).
                    head, _, where = rest.partition(" at=")
                    fields = dict(f.split("=", 1) for f in head.split() if "=" in f)
                    if where or rest.startswith("at="):
                        fields["at"] = where or rest[3:]
                    found.append((kind, float(at), fields))
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


def fanout_counters(port: int, token: str | None = None) -> tuple[float, int]:
    """A server's delivery-path counters from its ``GET /metrics`` (the real server's, or the bare one's
    under the same names): (thread CPU seconds, events delivered, once per connection)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers), timeout=30) as r:
        text = r.read().decode()
    found = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith((FANOUT_CPU + " ", FANOUT_EVENTS + " ")))
    return float(found[FANOUT_CPU]), int(float(found[FANOUT_EVENTS]))


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


def _on_frame(frame: bytes, now: float, samples: dict[str, list[tuple[float, float]]], gone: list[tuple[str, float]]) -> int:
    """Time what ``frame`` carries; returns how many events it delivered."""
    msg = parse_rep_reply(frame)  # typed: faster than plain dicts, and checked
    if not isinstance(msg, Events):
        return 0
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
    return len(msg.events)


async def _loadgen(port: int, reps: list[str], out: Path) -> None:
    """Log every console in (25 at a time) and read each one's frames from its login on.

    Then, on stdin: ``START`` (time what arrives from now on), ``STOP`` (write it to ``out``), ``QUIT``."""
    samples: dict[str, list[tuple[float, float]]] = {}
    gone: list[tuple[str, float]] = []
    counts = [0, 0]  # frames, events
    started = time.perf_counter()
    sem = asyncio.Semaphore(25)
    snapshot_bytes = [0]
    logged = [0]
    measuring = [False]

    def reset() -> None:
        samples.clear()
        samples.update({"arrival": [], "transfer": [], TEAM_CHAT: []})
        gone.clear()
        counts[:] = [0, 0]

    reset()

    async def console(rep: str) -> None:
        async with sem:
            ws, size = await login(port, rep)
        snapshot_bytes[0] += size
        logged[0] += 1
        try:
            while True:
                frame = await ws.recv(decode=False)
                if measuring[0]:
                    counts[0] += 1
                    counts[1] += _on_frame(frame, time.time(), samples, gone)
        except Exception:
            return

    readers = [asyncio.ensure_future(console(rep)) for rep in reps]
    while logged[0] < len(reps):
        failed = [r for r in readers if r.done() and r.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.sleep(0.05)
    print(f"READY {len(readers)} {snapshot_bytes[0]} {time.perf_counter() - started:.2f}", flush=True)
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: lines.put_nowait(sys.stdin.readline().strip()))
    while True:
        command = await lines.get()
        if command == "START":
            reset()
            measuring[0] = True
            print("STARTED", flush=True)
        elif command == "STOP":
            measuring[0] = False
            out.write_text(json.dumps({"samples": samples, "gone": gone, "frames": counts[0], "events": counts[1], "cpu": time.process_time()}))
            print("DONE", flush=True)
        else:
            os._exit(0)  # no goodbye to 1,000 sockets: the server sees them drop


class LoadGen:
    def __init__(self, port: int, reps: list[str], out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_server", "--loadgen", str(port), str(out), *reps],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        self.ready: tuple[int, int, float] | None = None

    def _say(self, command: str, answer: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line.startswith(answer):
            raise RuntimeError(f"load generator: {command} answered {line!r}")

    def wait_ready(self) -> tuple[int, int, float]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"load generator failed: {line!r}")
        _, n, size, seconds = line.split()
        self.ready = (int(n), int(size), float(seconds))
        return self.ready

    def start(self) -> None:
        self._say("START", "STARTED")

    def finish(self) -> dict[str, Any]:
        self._say("STOP", "DONE")
        return json.loads(self.out.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- the bare anchor


class _Delivery(msgspec.Struct, array_like=True):
    reps: list[str]
    seq: int
    item: msgspec.Raw


class _Trigger(msgspec.Struct):
    """What the driver sends the bare server: a login, or an action's reply and the events it delivers."""

    type: str
    id: int | str | None = None
    username: str = ""
    reply: msgspec.Raw = msgspec.Raw(b"")  # empty: none
    status: msgspec.Raw = msgspec.Raw(b"")
    deliver: list[_Delivery] = []


_trigger = msgspec.json.Decoder(_Trigger)


async def _bare_server(port_out: Path) -> None:
    """A bare ``websockets`` server: no engine, no store, no batching.  A console's login gets a
    welcome and an empty snapshot; every action of the driver carries its reply and the events
    it causes (encoded by the driver's own engine: the same payloads the real server sends),
    each written to its audience at once with one ``broadcast()``.

    Its delivery path is timed as the real server's fan-out is: the loop thread's CPU
    (``time.thread_time()``) around each action's framing and ``broadcast()`` calls, and the events
    written, once per connection; ``GET /metrics`` gives both, under the real server's names
    (:func:`fanout_counters`)."""
    from http import HTTPStatus

    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request, Response

    conns: dict[str, set[ServerConnection]] = {}
    delivery_cpu = [0.0]
    delivered = [0]

    def deliver(deliveries: list[_Delivery]) -> None:
        start = time.thread_time()
        for d in deliveries:
            targets = [ws for rep in d.reps for ws in conns.get(rep, ())]
            if targets:
                broadcast(targets, b'{"type":"events","prev":%d,"events":[%b]}' % (d.seq - 1, bytes(d.item)), text=True)
                delivered[0] += len(targets)
        delivery_cpu[0] += time.thread_time() - start

    def metrics(connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/metrics":
            return None  # a WebSocket handshake
        return connection.respond(HTTPStatus.OK, f"{FANOUT_CPU} {delivery_cpu[0]!r}\n{FANOUT_EVENTS} {delivered[0]}\n")

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the load generators leave without a goodbye
            await serve_one(ws)

    async def serve_one(ws: ServerConnection) -> None:
        first = _trigger.decode(await ws.recv(decode=False))
        if first.type == "login":
            rep = first.username
            conns.setdefault(rep, set()).add(ws)
            try:
                await ws.send(encode(Welcome(first.id or 1, rep, "bare", False, 0.0, time.time(), 300.0, 1)), text=True)
                await ws.send(b'{"type":"snapshot","seq":0,"data":{}}', text=True)
                async for raw in ws:
                    msg = _trigger.decode(raw)
                    deliver(msg.deliver)
                    if msg.reply:
                        await ws.send(bytes(msg.reply), text=True)
            finally:
                conns[rep].discard(ws)
        else:  # a customer's start
            deliver(first.deliver)
            if first.reply:
                await ws.send(bytes(first.reply), text=True)
            if first.status:
                await ws.send(bytes(first.status), text=True)
            await ws.wait_closed()

    # The real server's transport settings: no compression, the same write limit and listen backlog.
    async with serve(
        handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None, write_limit=64 * 1024, backlog=4096, process_request=metrics
    ) as server:
        port = server.sockets[0].getsockname()[1]
        port_out.write_text(str(port))
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


class BareProc:
    """A bench's bare server in a subprocess: ``python -m MODULE --bare-server PORT_FILE``."""

    def __init__(self, work: Path, module: str = "bench.bench_server") -> None:
        out = work / f"bare-{time.monotonic_ns()}.port"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--bare-server", str(out)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the bare server did not start: {line!r}")
        self.port = int(out.read_text())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class BareSite:
    """The bench's site as an engine in the driver: for each action, the reply and the events the
    real server would send (encoded as its fan-out encodes them), for the bare server to send."""

    def __init__(self, config: Path, waiting: int, teams: int) -> None:
        from repconsole.server.config import build_engine, load_config

        self.engine = build_engine(load_config(config), time.time)
        self.events: list[Any] = []
        self.engine.subscribe(self.events.append)
        for rep in list(self.engine.reps):
            self.engine.rep_connected(rep)
        for i in range(waiting):
            self.engine.start_with_issue(team_id(i % teams), CoreIntake(f"Waiting customer {i}"))
        self.events.clear()

    def _deliveries(self) -> list[tuple[list[str], int, msgspec.Raw]]:
        from repconsole.server.fanout import encode_event

        out = []
        for e in self.events:
            logged = encode_event(e)
            if logged.audience:
                out.append((sorted(logged.audience), logged.seq, msgspec.Raw(logged.item)))
            if logged.gone and logged.gone_item is not None:
                out.append((sorted(logged.gone), logged.seq, msgspec.Raw(logged.gone_item)))
        self.events.clear()
        return out

    def arrive(self, team: str, name: str) -> bytes:
        s = self.engine.start_with_issue(team, CoreIntake(name))
        started = encode(Started(1, s.id, "bare", False))
        assert s.queue is not None  # it has just arrived in a team queue
        status = encode(Status(CustomerState.WAITING, position=len(self.engine.waiting_in(s.queue))))
        return msgspec.json.encode({"type": "start", "id": 1, "reply": msgspec.Raw(started), "status": msgspec.Raw(status), "deliver": self._deliveries()})

    def command(self, rep: str, rid: int, name: CommandName, args: dict[str, Any]) -> tuple[bytes, Any]:
        from repconsole.core.commands import execute
        from repconsole.core.errors import CommandError

        try:
            result: Any = execute(self.engine, rep, name, args)
            reply = encode(Result(rid, msgspec.Raw(encode(result))))
        except CommandError as exc:
            result, reply = None, encode(exc.error(rid))
        trigger = msgspec.json.encode({"type": "command", "id": rid, "reply": msgspec.Raw(reply), "deliver": self._deliveries()})
        return trigger, result


async def bare_arrive(port: int, trigger: bytes) -> None:
    ws = await open_ws(port, "customer")
    try:
        await ws.send(trigger, text=True)
        while True:
            msg = parse_customer_reply(await ws.recv(decode=False))
            if isinstance(msg, Started):
                return
    finally:
        await ws.close()


# ---------------------------------------------------------------- the driver


class Worker:
    """One team's working rep, driven by this process: commands and their round trips."""

    def __init__(self, team: int, ws: ClientConnection) -> None:
        self.team = team
        self.rep = rep_id(team, 0)
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

    async def call(self, name: CommandName, rtts: list[float], bare: BareSite | None = None, **args: Any) -> tuple[Result | Error, float]:
        """Send a command (to the bare server: the reply and events the bare site made of it) and wait for its reply."""
        rid = next(self.ids)
        fut: asyncio.Future[Result | Error] = asyncio.get_running_loop().create_future()
        sent = time.time()
        self.pending[rid] = (fut, sent)
        if bare is None:
            await self.ws.send(encode(Command(rid, name, args)), text=True)
        else:
            await self.ws.send(bare.command(self.rep, rid, name, args)[0], text=True)
        reply = await fut
        rtts.append(time.time() - sent)
        return reply, sent


async def drive(
    port: int, workers: list[Worker], teams: int, rate: float, seconds: float, rng: random.Random, bare: BareSite | None = None
) -> dict[str, Any]:
    """The load: ``rate`` actions a second for ``seconds``, each sent at its time.  With ``bare``,
    to the bare server: the same actions, run by the bare site's engine here."""
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
            if bare is None:
                await arrive(port, team_id(w.team), f"t={t:.6f}")
            else:
                await bare_arrive(port, bare.arrive(team_id(w.team), f"t={t:.6f}"))
            rtts["arrive"].append(time.time() - t)
            return
        if kind == "accept":
            reply, sent = await w.call(CommandName.GET_NEXT, rtts["accept"], bare)
            if isinstance(reply, Result):
                result = msgspec.json.decode(reply.result, type=COMMANDS[CommandName.GET_NEXT].result)
                assert isinstance(result, SessionResult)
                sid = result.session.id
                accept_sent[sid] = sent
                w.owned.append(sid)
        elif kind == "transfer":
            sid = w.owned.pop(rng.randrange(len(w.owned)))
            target = rng.choice([t for t in range(teams) if t != w.team])
            reply, _ = await w.call(CommandName.TRANSFER, rtts["transfer"], bare, session=sid, target=f"team:{team_id(target)}", note=f"t={time.time():.6f}")
        elif kind == "end":
            sid = w.owned.pop(rng.randrange(len(w.owned)))
            reply, _ = await w.call(CommandName.END, rtts["end"], bare, session=sid)
        else:
            reply, _ = await w.call(CommandName.TEAM_SAY, rtts["team_say"], bare, team=team_id(w.team), text=f"t={time.time():.6f}")
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
        # Round robin over the workers, shifted by one each round: every worker (team) takes
        # every kind of action in turn (with 40 workers and 10 kinds, a plain round robin gave
        # each worker one kind for ever, and the accepting teams ran out of waiting customers).
        worker = workers[(k + k // len(workers)) % len(workers)]
        task = asyncio.ensure_future(act(MIX[k % len(MIX)], worker))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - start
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    return {"accept_sent": accept_sent, "rtts": rtts, "refused": refused, "sent": total, "seconds": sent_for, "late": late[0]}


class Phase:
    """One server under the load: its process, its consoles (load generators and workers), and each run's figures."""

    def __init__(
        self, name: str, port: int, pid: int, gens: list[LoadGen], workers: list[Worker], bare: BareSite | None, token: str | None = None
    ) -> None:
        self.name = name
        self.token = token  # for its /metrics
        self.port = port
        self.pid = pid
        self.gens = gens
        self.workers = workers
        self.bare = bare
        self.runs: list[dict[str, Any]] = []

    async def measure(self, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
        for g in self.gens:
            g.start()
        # Scraped outside the whole-process CPU's window: the scrape's own cost is not counted in it.
        fan_cpu0, fan_events0 = await asyncio.to_thread(fanout_counters, self.port, self.token)
        cpu0, wall0 = cpu_seconds(self.pid), time.perf_counter()
        began = time.time()
        gen_cpu0 = [cpu_seconds(g.proc.pid) for g in self.gens]
        me0 = time.process_time()
        result = await drive(self.port, self.workers, len(self.workers), args.rate, args.seconds, rng, self.bare)
        # Let the last events reach the consoles before they stop counting.
        await asyncio.sleep(0.5)
        wall = time.perf_counter() - wall0
        window = (began, time.time())  # the run, without the collection of its results that follows
        cpu = cpu_seconds(self.pid) - cpu0
        fan_cpu1, fan_events1 = await asyncio.to_thread(fanout_counters, self.port, self.token)
        fan_cpu, fan_events = fan_cpu1 - fan_cpu0, fan_events1 - fan_events0
        gen_cpu = [(cpu_seconds(g.proc.pid) - c) / wall * 100 for g, c in zip(self.gens, gen_cpu0, strict=True)]
        me_cpu = (time.process_time() - me0) / wall * 100
        outs = [g.finish() for g in self.gens]
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
        events = sum(out["events"] for out in outs)
        run = {
            "result": result, "timed": timed, "samples": samples, "all": everything, "events": events,
            "frames": sum(out["frames"] for out in outs), "cpu": cpu, "wall": wall, "gen_cpu": gen_cpu, "me_cpu": me_cpu, "window": window,
            "p50": percentile(everything, 50) * 1000, "p99": percentile(everything, 99) * 1000,
            "cpu_per_1k": cpu / max(1, events) * 1000 * 1000,  # ms of server CPU per 1,000 delivered events
            # The delivery path alone: the loop thread's CPU in the fan-out (framing and writes), per 1,000
            # events it wrote (its own count: every console, the workers too).
            "fan_cpu": fan_cpu, "fan_events": fan_events, "fan_per_1k": fan_cpu / max(1, fan_events) * 1000 * 1000,
        }  # fmt: skip
        self.runs.append(run)
        return run


# ---------------------------------------------------------------- main


def _fmt_ms(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    ms = [v * 1000 for v in values]
    return f"p50 {percentile(ms, 50):6.1f} ms   p99 {percentile(ms, 99):6.1f} ms   max {max(ms):7.1f} ms   ({len(ms):,} deliveries)"


def _med(values: Sequence[float], unit: str, digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


DELIVERY_PATH = "delivery path (fan-out): encode + frame + write, thread CPU"


def _report_run(n: int, phase: Phase, run: dict[str, Any]) -> None:
    r = run["result"]
    print(f"  run {n}, {phase.name:<17} p50 {run['p50']:5.1f} ms, p99 {run['p99']:6.1f} ms; whole process CPU {run['cpu'] / run['wall'] * 100:3.0f}% "
          f"= {run['cpu_per_1k']:5.1f} ms per 1,000 delivered events ({run['events']:,} events in {run['frames']:,} frames); "
          f"{r['sent']:,} actions, driver <= {r['late'] * 1000:.0f} ms late, refused {r['refused'] or 'none'}")  # fmt: skip
    print(f"         {'':<17} {DELIVERY_PATH}: {run['fan_per_1k']:6.2f} ms per 1,000 delivered events "
          f"({run['fan_cpu'] * 1000:,.0f} ms for {run['fan_events']:,} events, counted by the server)")  # fmt: skip


def _report_detail(server: ServerProc, phase: Phase, args: argparse.Namespace, load_started: float) -> None:
    """The real server's figures in detail, over every run."""
    samples: dict[str, list[float]] = {}
    rtts: dict[str, list[float]] = {}
    worst: dict[int, float] = {}
    for run in phase.runs:
        for kind, values in run["samples"].items():
            samples.setdefault(kind, []).extend(values)
        for kind, values in run["result"]["rtts"].items():
            rtts.setdefault(kind, []).extend(values)
        first = min((sent for values in run["timed"].values() for sent, _ in values), default=0.0)
        for values in run["timed"].values():
            for sent, lat in values:
                worst[int(sent - first)] = max(worst.get(int(sent - first), 0.0), lat)
    print(f"{phase.name}, every run pooled: delivery latency, command sent -> event received by a console:")
    for kind in ("arrival", "accept", "transfer", TEAM_CHAT):
        print(f"  {kind:<10} {_fmt_ms(samples.get(kind, []))}")
    everything = [v for values in samples.values() for v in values]
    p99 = percentile(everything, 99) * 1000
    print(f"  {'all':<10} {_fmt_ms(everything)}   target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if p99 <= TARGET_P99_MS else 'MISSED'}")
    slow = sorted((s, lat) for s, lat in worst.items() if lat > TARGET_P99_MS / 1000)
    if slow:
        print("  seconds of a run with a delivery over the target (second: worst): " + ", ".join(f"{s}: {lat * 1000:.0f} ms" for s, lat in slow[:20]))
    print("command round trip (driver, under load): " + "; ".join(
        f"{k} p50 {percentile(v, 50) * 1000:.1f} / p99 {percentile(v, 99) * 1000:.1f} ms" for k, v in sorted(rtts.items()) if v
    ))  # fmt: skip
    last = phase.runs[-1]
    print(f"CPU during the last run (% of one core): server {last['cpu'] / last['wall'] * 100:.0f}%, load generators "
          + ", ".join(f"{c:.0f}%" for c in last["gen_cpu"]) + f", driver {last['me_cpu']:.0f}%  (2 cores in all)")  # fmt: skip
    if args.diagnose:
        # Only what happened while this server ran a load: between runs the load generators
        # serialize every sample they took (a second or more of CPU each, on the same cores) and the
        # other server runs; an idle server's probe then measures only how busy the machine is.
        # (Counted over the whole bench, the worst lags fell at the run boundaries, one run apart.)
        windows = [run["window"] for run in phase.runs]
        diag = [d for d in server.diagnostics(load_started) if any(t0 <= d[1] <= t1 for t0, t1 in windows)]
        pauses = [(at - load_started, float(f["ms"]), f) for kind, at, f in diag if kind == "gc"]
        lags = [(at - load_started, float(f["ms"])) for kind, at, f in diag if kind == "lag"]
        print(f"server diagnostics during its runs: {len(pauses)} garbage collections over 20 ms, longest "
              f"{max((p[1] for p in pauses), default=0):.0f} ms (" + ", ".join(
                  f"t+{t:.0f}s gen{f['gen']} {ms:.0f} ms over {int(f['tracked']):,} objects" for t, ms, f in pauses[:8]) + ")")  # fmt: skip
        print(f"  event loop late by over 20 ms {len(lags)} times, worst {max((lag[1] for lag in lags), default=0):.0f} ms: "
              + ", ".join(f"t+{t:.1f}s {ms:.0f} ms" for t, ms in sorted(lags, key=lambda x: -x[1])[:8]))  # fmt: skip
        # Where the loop's thread was while it was late (sampled every 5 ms past 50 ms): the most
        # often seen innermost frames, as "file:line:function<caller<...".
        stalls = [(float(f["ms"]), float(f["cpu"])) for kind, _, f in diag if kind == "stall"]
        if stalls:
            print(f"  loop stalls over 50 ms: {len(stalls)}, {sum(w for w, _ in stalls):.0f} ms in all, of which the loop's "
                  f"thread was on a CPU {sum(c for _, c in stalls):.0f} ms (the rest: waiting for a CPU)")  # fmt: skip
        stacks = Counter(f["at"] for kind, _, f in diag if kind == "stack")
        if stacks:
            print(f"  the loop's thread while late, {sum(stacks.values())} samples of 5 ms, most seen:")
            for where, n in stacks.most_common(6):
                print(f"    {n:4} x {where}")


async def _consoles(
    port: int, teams: int, per_team: int, loadgens: int, work: Path, tag: str
) -> tuple[list[LoadGen], list[Worker], list[tuple[int, int, float]]]:
    """The passive consoles in the load generators, then one worker per team here."""
    passive = [rep_id(t, i) for t in range(teams) for i in range(1, per_team)]
    chunks = [passive[i::loadgens] for i in range(loadgens)]
    gens = [LoadGen(port, chunk, work / f"loadgen-{tag}-{n}.json") for n, chunk in enumerate(chunks)]
    readies = [g.wait_ready() for g in gens]
    workers = []
    for t in range(teams):
        ws, _ = await login(port, rep_id(t, 0))
        workers.append(Worker(t, ws))
    return gens, workers, readies


async def _run(args: argparse.Namespace) -> None:
    teams, per_team = args.teams, args.consoles // args.teams
    consoles = teams * per_team
    rng = random.Random(1)
    fd_limit = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-server-"))
    config = work / "site.toml"
    config.write_text(site_toml(teams, per_team) + f'\n[admin]\nmetrics_token = "{METRICS_TOKEN}"\n')  # the fan-out's counters
    print(f"== queue server under load: {consoles:,} consoles ({teams} teams of {per_team}), {args.waiting:,} waiting, "
          f"{args.rate:.0f} commands/s for {args.seconds:.0f} s, {args.runs} runs, beside a bare websockets.broadcast "
          f"server with the same consoles, actions and payloads (fd limit {fd_limit}) ==")  # fmt: skip
    server = start_server(config, work / "data", diagnose=args.diagnose)
    bare_proc: BareProc | None = None
    phases: list[Phase] = []
    try:
        rss_empty_site = server.rss_kib()
        took = await seed(server.port, args.waiting, teams)
        print(f"seeded {args.waiting:,} waiting customers through /customer in {took:.1f} s ({args.waiting / took:,.0f}/s)")
        rss0 = server.rss_kib()
        print(f"server RSS: {rss_empty_site / 1024:.1f} MiB with an empty site, {rss0 / 1024:.1f} MiB with {args.waiting:,} waiting and 0 consoles")
        t0 = time.perf_counter()
        gens, workers, readies = await _consoles(server.port, teams, per_team, args.loadgens, work, "real")
        logged = sum(r[0] for r in readies) + len(workers)
        snap_mb = sum(r[1] for r in readies) / 1e6
        print(f"{logged:,} consoles logged in in {time.perf_counter() - t0:.1f} s (snapshots: {snap_mb:,.0f} MB in all, "
              f"{snap_mb * 1e3 / max(1, logged - len(workers)):,.0f} kB each)")  # fmt: skip
        rss_logged = server.rss_kib()
        real = Phase("repconsole-server", server.port, server.pid, gens, workers, None, METRICS_TOKEN)
        phases.append(real)

        bare_proc = BareProc(work)
        site = BareSite(config, args.waiting, teams)
        bare_gens, bare_workers, _ = await _consoles(bare_proc.port, teams, per_team, args.loadgens, work, "bare")
        bare = Phase("bare broadcast", bare_proc.port, bare_proc.pid, bare_gens, bare_workers, site)
        phases.append(bare)

        load_started = time.time()
        for n in range(args.runs):
            # Interleaved, the bare server first on even runs: a machine getting busier hits both alike.
            for phase in (bare, real) if n % 2 == 0 else (real, bare):
                _report_run(n + 1, phase, await phase.measure(args, rng))
        rss_end = server.rss_kib()
        p99r = [r["p99"] / b["p99"] for r, b in zip(real.runs, bare.runs, strict=True)]
        cpur = [r["cpu_per_1k"] / b["cpu_per_1k"] for r, b in zip(real.runs, bare.runs, strict=True)]
        fanr = [r["fan_per_1k"] / b["fan_per_1k"] for r, b in zip(real.runs, bare.runs, strict=True)]
        print(f"median of {args.runs} runs (min–max), {consoles:,} consoles:")
        for phase in (real, bare):
            print(f"  {phase.name:<17} delivery p99 {_med([r['p99'] for r in phase.runs], ' ms')}, p50 {_med([r['p50'] for r in phase.runs], ' ms')}; "
                  f"whole process CPU {_med([r['cpu_per_1k'] for r in phase.runs], ' ms')} per 1,000 delivered events; "
                  f"{DELIVERY_PATH} {_med([r['fan_per_1k'] for r in phase.runs], ' ms', 2)} per 1,000")  # fmt: skip
        print(f"  ratio repconsole / bare: p99 {_med(p99r, 'x', 2)} (goal <= {TARGET_P99_RATIO}x: "
              f"{'met' if statistics.median(p99r) <= TARGET_P99_RATIO else 'MISSED'}), whole process CPU per 1,000 delivered events "
              f"{_med(cpur, 'x', 2)} (goal <= {TARGET_CPU_RATIO}x: {'met' if statistics.median(cpur) <= TARGET_CPU_RATIO else 'MISSED'})")  # fmt: skip
        print(f"  ratio repconsole / bare, {DELIVERY_PATH}, per 1,000 delivered events: {_med(fanr, 'x', 2)} "
              f"(goal <= {TARGET_CPU_RATIO}x: {'met' if statistics.median(fanr) <= TARGET_CPU_RATIO else 'MISSED'})")  # fmt: skip
        _report_detail(server, real, args, load_started)
        per_conn = (rss_logged - rss0) / consoles
        print(f"server RSS: {rss_logged / 1024:.1f} MiB with {consoles:,} consoles logged in, {rss_end / 1024:.1f} MiB after the load "
              f"(+{(rss_end - rss_logged) / 1024:.1f} MiB: the sessions of {args.runs} runs, "
              "the events of the resume window, stored answers)")  # fmt: skip
        print(f"RSS per connection: {per_conn:.1f} KiB ((RSS logged in - RSS with 0 consoles) / {consoles:,}; "
              f"logins hash at {PASSWORD_COST})   "
              f"target <= {TARGET_KIB_PER_CONNECTION:.0f} KiB: {'met' if per_conn <= TARGET_KIB_PER_CONNECTION else 'MISSED'}")  # fmt: skip
        if server.problems():
            first = server.lines.index(server.problems()[0])
            print("server reported problems:\n  " + "\n  ".join(server.lines[first : first + 40]))
    finally:
        for phase in phases:
            for g in phase.gens:
                g.kill()
        server.stop()
        if bare_proc is not None:
            bare_proc.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--loadgen":
        raise_fd_limit()
        port, out, reps = int(argv[1]), Path(argv[2]), argv[3:]
        asyncio.run(_loadgen(port, reps, out))
        return
    if argv and argv[0] == "--bare-server":
        raise_fd_limit()
        asyncio.run(_bare_server(Path(argv[1])))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.bench_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--consoles", type=int, default=2000)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--waiting", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="of load per run")
    parser.add_argument("--runs", type=int, default=5, help="runs of each server, interleaved")
    parser.add_argument("--loadgens", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="200 consoles, 2,000 waiting, 10 s, 2 runs")
    parser.add_argument("--diagnose", action="store_true", help="report the server's garbage-collection pauses and event-loop lag")
    args = parser.parse_args(argv)
    if args.quick:
        args.consoles, args.teams, args.waiting, args.seconds, args.runs = 200, 10, 2000, 10.0, 2
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
