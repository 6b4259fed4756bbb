"""Console against the server: a rep signs in to a big queue; how long another console stalls meanwhile, and how soon the queue is painted.

    python -m bench.bench_console_snapshot                      # 10,000, 100,000 and 300,000 waiting, 5 runs each
    python -m bench.bench_console_snapshot --sizes 100000       # one size
    python -m bench.bench_console_snapshot --quick              # 10,000 waiting, one run

A ``repconsole-server`` process serves a site where N customers wait in the
console rep's queues: half in the rep's personal queue (through the rep's
Support Button), a quarter in each of the rep's two teams.  They are put
there before the server starts, by the server's own code (its ``Runtime``:
the engine and the SQLite store, 2,000 arrivals a step), which is what
creating them through ``/customer`` would leave on disk, in a fraction of
the time; the server then boots from that data directory.

**Another console's stall.**  A second console (rep ``probe``, in a process
of its own, so that the first console's own work cannot delay it) is signed
in for the whole run and pings the server every 5 ms over its ``/rep``
connection.  The server's event loop answers a ping (websockets does, as it
reads the frame), so a ping's round trip is at least as long as any stretch
in which the loop did nothing else: the longest round trip of the pings sent
while the real console signs in is the longest stall any other console saw.
The **anchor** is the same probe over an idle stretch of the same length in
the same run, right after the console has closed: the ratio says how much
worse a sign-in makes it.  Target: <= 50 ms at 100,000 waiting.

A round trip is wall time: on a loaded machine it also holds the time the
server waited for a CPU.  So the server also reports (a probe in its own
process, a 1 ms timer) the longest stretch of **CPU time** its loop ran
without a break while the rep signed in, which other processes cannot
lengthen: what the loop itself did in one go.

**Snapshot to first paint.**  The real console window
(``build_window(WebSocketBackend(...))``, offscreen, under qasync) signs in
and is timed from the moment the snapshot's last frame has been read off the
socket to the window's ``firstQueuePainted`` (split into assembling the
snapshot, applying it: ``ConsoleState`` and the queue model, and painting),
beside the time spent decoding the snapshot's frames as they came, the time
from its first frame to its last, and from ``window.start()`` to the paint.
Target: snapshot -> first paint <= 2 s at 100,000.

Each figure is the median of the runs, with min-max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import bench_server
from bench.bench_server import PASSWORD, raise_fd_limit, start_server
from repconsole.protocol import Snapshot, encode

__all__ = ["main", "seed_store"]

TARGET_SECONDS = 2.0
TARGET_STALL_MS = 50.0
REP = "console"
PROBE = "probe"
PING_EVERY = 0.005
SIZES = (10_000, 100_000, 300_000)
RUNS = 5
# The real server's entry point with probes, each printing a "DIAG" line (see ServerProc.diagnostics):
# every stretch of 5 ms or more of the loop thread's CPU time between two turns of a 1 ms timer
# ("step": CPU time, so a busy machine that takes the process off the CPU does not count), and,
# for --diagnose, collections and lateness of a 20 ms timer over 20 ms (wall time).
_PROBED = """
import asyncio, gc, sys, time
_gc_t0 = [0.0]
def _gc(phase, info):
    if phase == "start":
        _gc_t0[0] = time.perf_counter()
    else:
        ms = (time.perf_counter() - _gc_t0[0]) * 1000
        if ms >= 20:
            print(f"DIAG gc {time.time():.3f} gen={info['generation']} ms={ms:.0f}", flush=True)
gc.callbacks.append(_gc)
async def _steps():
    last = time.thread_time()
    while True:
        await asyncio.sleep(0.001)
        now = time.thread_time()
        if now - last >= 0.005:
            print(f"DIAG step {time.time():.3f} cpu_ms={(now - last) * 1000:.1f}", flush=True)
        last = now
async def _lag():
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.02)
        late = (time.perf_counter() - t - 0.02) * 1000
        if late >= 20:
            print(f"DIAG lag {time.time():.3f} ms={late:.0f}", flush=True)
from repconsole.server import app
_start_server = app.Server.start
async def _start(self):
    await _start_server(self)
    self._probes = [asyncio.ensure_future(_steps()), asyncio.ensure_future(_lag())]
app.Server.start = _start
from repconsole.server.cli import main
sys.exit(main(sys.argv[1:]))
"""
# How a snapshot frame starts (msgspec writes the tag first): the timed recv
# tells it from the others by its head, without parsing megabytes of JSON.
SNAPSHOT_HEAD = b"{%s:%s" % (encode(Snapshot.__struct_config__.tag_field), encode(Snapshot.__struct_config__.tag))


def _site() -> str:
    from repconsole.server.auth import Argon2Params, hash_password

    h = hash_password(PASSWORD, Argon2Params(time_cost=1, memory_cost=8, parallelism=1))
    return f"""\
[site]
grace_period = 600

[server]
customer_starts_per_minute = 0
customer_grace = 0

[teams.t0]
name = "Network"

[teams.t1]
name = "Accounts"

[[reps]]
id = "{REP}"
name = "Console Rep"
teams = ["t0", "t1"]
password_hash = "{h}"

[[reps]]
id = "peer"
name = "Peer Rep"
teams = ["t0"]
password_hash = "{h}"

[[reps]]
id = "{PROBE}"
name = "Probe Rep"
teams = []
password_hash = "{h}"

[[issues]]
code = "t0"
name = "VPN"
category = "Network"
team = "t0"

[[issues]]
code = "t1"
name = "Invoice"
category = "Accounts"
team = "t1"

[[buttons]]
id = "btn-console"
description = "Console Rep's button"
target = "rep:{REP}"
"""


def seed_store(config: Path, data: Path, waiting: int) -> float:
    """``waiting`` customers into ``data`` with the server's own Runtime (no server running).  Seconds taken."""
    from repconsole.core.intake import Intake
    from repconsole.server.config import load_config
    from repconsole.server.runtime import Runtime

    started = time.perf_counter()
    loop = asyncio.new_event_loop()
    rt = Runtime(load_config(config), data, loop)
    engine = rt.engine
    step = 2000
    for first in range(0, waiting, step):
        with rt.step():
            for i in range(first, min(waiting, first + step)):
                intake = Intake(f"Customer {i:06d}", company=f"Company {i % 997}", details="Cannot connect to the VPN since this morning.")
                if i % 2 == 0:
                    engine.start_with_button("btn-console", intake)
                else:
                    engine.start_with_issue("t0" if i % 4 == 1 else "t1", intake)
        rt.fanout.flush()
    rt.stop()
    rt.store.close()
    loop.close()
    return time.perf_counter() - started


# ---------------------------------------------------------------- the probe (its own process)


async def _probe(port: int) -> None:
    """Sign in as PROBE, read everything, ping every PING_EVERY s; on "dump" print (sent, rtt) pairs as JSON."""
    from websockets.asyncio.client import connect

    from repconsole.protocol import PROTOCOL_VERSION, Login, Welcome, parse_rep_reply

    ws = await connect(f"ws://127.0.0.1:{port}/rep", compression=None, max_size=None, ping_interval=None, close_timeout=2)
    await ws.send(encode(Login(1, PROBE, PASSWORD, PROTOCOL_VERSION)), text=True)
    welcome = parse_rep_reply(await ws.recv(decode=False))
    if not isinstance(welcome, Welcome):
        raise SystemExit(f"the probe's login was refused: {welcome}")
    samples: list[tuple[float, float]] = []

    async def read() -> None:
        async for _ in ws:  # the snapshot, then events: read, never parsed
            pass

    async def ping() -> None:
        while True:
            sent = time.monotonic()
            pong = await ws.ping()
            pong.add_done_callback(lambda _, sent=sent: samples.append((sent, time.monotonic() - sent)))
            await asyncio.sleep(PING_EVERY)

    tasks = [asyncio.create_task(read()), asyncio.create_task(ping())]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for task in tasks:
        task.cancel()
    print(json.dumps(samples), flush=True)
    await ws.close()


class Probe:
    """The probe process: :meth:`stall` is the longest ping round trip (ms) sent within a stretch of time."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_console_snapshot", "--probe", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the probe did not start")
        self.samples: list[tuple[float, float]] = []

    def finish(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        self.samples = [(float(s), float(r)) for s, r in json.loads(self.proc.stdout.readline())]
        self.proc.wait(10)

    def stall(self, start: float, end: float) -> float:
        """The longest round trip (ms) of the pings sent in [start, end] (a ping sent during a stall waits out the rest of it)."""
        rtts = [rtt for sent, rtt in self.samples if start <= sent <= end]
        if not rtts:
            raise RuntimeError("no ping in the window")
        return max(rtts) * 1000


# ---------------------------------------------------------------- the console


def _measure(url: str, settings: Path) -> dict[str, float]:
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from websockets.asyncio.client import ClientConnection

    from repconsole.backend import websocket
    from repconsole.backend.websocket import WebSocketBackend
    from repconsole.ui.app import build_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    marks: dict[str, float] = {"decode": 0.0, "frames": 0, "bytes": 0}
    recv = ClientConnection.recv
    decode = websocket._decode

    async def timed_recv(self: ClientConnection, *args: object, **kwargs: object) -> object:
        frame = await recv(self, *args, **kwargs)  # type: ignore[arg-type]
        if "parsed" not in marks:
            head = frame[:30].encode() if isinstance(frame, str) else bytes(frame[:30])  # type: ignore[index]
            now = time.monotonic()
            if head.startswith(SNAPSHOT_HEAD):
                marks["frame"] = now
            if "frame" in marks:  # the snapshot's frames: the first, and any parts after it
                marks["last"] = now
                marks["frames"] += 1
                marks["bytes"] += len(frame)  # type: ignore[arg-type]
        return frame

    def timed_decode(raw: str | bytes) -> Any:
        started = time.monotonic()
        try:
            return decode(raw)
        finally:
            if "parsed" not in marks and "frame" in marks:
                marks["decode"] += time.monotonic() - started

    ClientConnection.recv = timed_recv  # type: ignore[method-assign]
    websocket._decode = timed_decode
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    backend = WebSocketBackend(url, REP, PASSWORD, connect_timeout=120)
    window = build_window(backend, settings)
    # Ours first (the snapshot is assembled, not applied yet), then the window's, then ours again.
    backend._event_listeners.insert(0, lambda batch: marks.setdefault("parsed", time.monotonic()))
    backend.add_event_listener(lambda batch: marks.setdefault("applied", time.monotonic()))
    window.resize(1300, 800)
    window.show()
    done = asyncio.Event()

    def painted() -> None:
        marks["painted"] = time.monotonic()
        done.set()

    window.firstQueuePainted.connect(painted)

    async def run() -> None:
        marks["start"] = time.monotonic()
        await window.start()  # signs in: the snapshot is applied when this returns
        await asyncio.wait_for(done.wait(), 120)
        marks["rows"] = window.model.rowCount()
        await window.shutdown()

    try:
        with loop:
            loop.run_until_complete(run())
    finally:
        ClientConnection.recv = recv  # type: ignore[method-assign]
        websocket._decode = decode
        window.close()
        QTimer.singleShot(0, lambda: None)
    return marks


def _longest_step(server: Any, start: float, end: float) -> float:
    """The longest stretch (ms of CPU) the server's loop ran without a break between two wall-clock times; under 5 ms: 5."""
    return max([float(f["cpu_ms"]) for kind, at, f in server.diagnostics(start) if kind == "step" and at <= end], default=5.0)


def _spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """Median (min-max)."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _size(waiting: int, runs: int, work: Path, *, diagnose: bool = False) -> None:
    data = work / f"data-{waiting}"
    config = work / "site.toml"
    seeded = seed_store(config, data, waiting)
    booted = time.perf_counter()
    bench_server._DIAGNOSED, entry = _PROBED, bench_server._DIAGNOSED  # ServerProc runs this as its diagnosed entry point
    try:
        server = start_server(config, data, diagnose=True)
    finally:
        bench_server._DIAGNOSED = entry
    booted = time.perf_counter() - booted
    print(f"== {waiting:,} waiting in the console rep's queues (offscreen) ==")
    print(f"seeded with the server's Runtime in {seeded:.1f} s; the server booted from them in {booted:.1f} s "
          f"(RSS {server.rss_kib() / 1024:.0f} MiB)")  # fmt: skip
    try:
        probe = Probe(server.port)
        runs_marks, anchors = [], []
        try:
            for n in range(runs):
                wall = time.time() - time.monotonic()  # the server's diagnostics are stamped with time.time()
                m = _measure(f"ws://127.0.0.1:{server.port}", work / f"settings-{waiting}-{n}")
                runs_marks.append(m)
                m["wall"] = wall
                for kind, at, fields in server.diagnostics(m["start"] + wall):
                    if diagnose and kind != "step" and at <= m["painted"] + wall:
                        print(f"  run {n + 1}, {at - wall - m['start']:+.2f} s: server {kind} {fields}")
                # The anchor: an idle stretch as long as the sign-in, once the console has closed.
                time.sleep(0.5)
                a0 = time.monotonic()
                time.sleep(m["painted"] - m["start"])
                anchors.append((a0, time.monotonic()))
        finally:
            probe.finish()
        stalls = [probe.stall(m["start"], m["painted"]) for m in runs_marks]
        idle = [probe.stall(a, b) for a, b in anchors]
        ratios = [s / max(i, 0.001) for s, i in zip(stalls, idle, strict=True)]
        steps = [_longest_step(server, m["start"] + m["wall"], m["painted"] + m["wall"]) for m in runs_marks]
        idle_steps = [_longest_step(server, a + m["wall"], b + m["wall"]) for (a, b), m in zip(anchors, runs_marks, strict=True)]
        for n, (m, s, i, st) in enumerate(zip(runs_marks, stalls, idle, steps, strict=True)):
            print(f"run {n + 1}: snapshot {m['bytes'] / 1e6:.1f} MB in {int(m['frames'])} frame(s), first -> last frame {m['last'] - m['frame']:.2f} s, "
                  f"decoding them {m['decode']:.2f} s; last frame -> assembled {m['parsed'] - m['last']:.2f} s, -> applied {m['applied'] - m['parsed']:.2f} s, "
                  f"-> painted {m['painted'] - m['applied']:.2f} s; start -> painted {m['painted'] - m['start']:.2f} s ({int(m['rows']):,} rows); "
                  f"probe: longest stall {s:.0f} ms signing in, {i:.0f} ms idle; server: longest loop step {st:.1f} ms CPU")  # fmt: skip
        to_paint = [m["painted"] - m["last"] for m in runs_marks]
        verdict = "" if waiting != 100_000 else f"   target <= {TARGET_STALL_MS:.0f} ms: {'met' if statistics.median(stalls) <= TARGET_STALL_MS else 'MISSED'}"
        print(f"longest stall another console saw while the rep signed in: {_spread(stalls)} ms, idle anchor {_spread(idle)} ms, "
              f"ratio {_spread(ratios, '{:.1f}')}x  (median (min–max) of {runs}){verdict}")  # fmt: skip
        print(f"longest stretch of the server's loop without a break (CPU time, not slowed by other processes): "
              f"{_spread(steps, '{:.1f}')} ms signing in, {_spread(idle_steps, '{:.1f}')} ms idle")  # fmt: skip
        target = "" if waiting != 100_000 else f"   target <= {TARGET_SECONDS:.0f} s: {'met' if statistics.median(to_paint) <= TARGET_SECONDS else 'MISSED'}"
        print(f"snapshot's last frame -> first paint {_spread(to_paint, '{:.2f}')} s{target}; "
              f"start -> first paint {_spread([m['painted'] - m['start'] for m in runs_marks], '{:.2f}')} s")  # fmt: skip
        if server.problems():
            print("server reported problems:\n  " + "\n  ".join(server.problems()[:10]))
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_console_snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="waiting customers, comma-separated (default: %(default)s)")
    parser.add_argument("--waiting", type=int, help="one size (same as --sizes N)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--quick", action="store_true", help="10,000 waiting, one run")
    parser.add_argument("--diagnose", action="store_true", help="print the server's collections and loop stalls over 20 ms during each sign-in")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)  # internal: run the probe against this port
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.probe:
        asyncio.run(_probe(args.probe))
        return
    sizes = [int(s) for s in args.sizes.split(",")] if args.waiting is None else [args.waiting]
    if args.quick:
        sizes, args.runs = [10_000], 1
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-snapshot-"))
    (work / "site.toml").write_text(_site())
    try:
        for waiting in sizes:
            _size(waiting, args.runs, work, diagnose=args.diagnose)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
