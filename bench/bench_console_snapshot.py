"""Console against the server: a 100,000-customer snapshot to the first painted queue.

    python -m bench.bench_console_snapshot            # 100,000 waiting, 3 runs
    python -m bench.bench_console_snapshot --quick    # 10,000 waiting, 1 run

A ``repconsole-server`` process serves a site where 100,000 customers wait
in the console rep's queues: half in the rep's personal queue (through the
rep's Support Button), a quarter in each of the rep's two teams.  They are
put there before the server starts, by the server's own code (its
``Runtime``: the engine and the SQLite store, 2,000 arrivals a step), which
is what creating them through ``/customer`` would leave on disk, in a
fraction of the time; the server then boots from that data directory.

The real console window (``build_window(WebSocketBackend(...))``, offscreen,
under qasync) signs in and is timed:

* **snapshot frame -> first paint**: from the moment the snapshot frame has
  been read off the socket (``ClientConnection.recv`` returned it) to the
  window's ``firstQueuePainted``; split into JSON parsing, applying the
  snapshot (``ConsoleState`` and the queue model: the window's listener),
  and the paint itself;
* **start -> first paint**: from ``window.start()`` (connect, login, the
  server building and sending the snapshot) to ``firstQueuePainted``.

Target: snapshot -> first paint <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_server import PASSWORD, raise_fd_limit, start_server
from repconsole.protocol import Snapshot, encode

__all__ = ["main", "seed_store"]

TARGET_SECONDS = 2.0
REP = "console"
# How a snapshot frame starts (msgspec writes the tag first): the timed recv
# tells it from the others by its head, without parsing 100 MB of JSON.
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


def _measure(url: str, settings: Path) -> dict[str, float]:
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from websockets.asyncio.client import ClientConnection

    from repconsole.backend.websocket import WebSocketBackend
    from repconsole.ui.app import build_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    marks: dict[str, float] = {}
    recv = ClientConnection.recv

    async def timed_recv(self: ClientConnection, *args: object, **kwargs: object) -> object:
        frame = await recv(self, *args, **kwargs)  # type: ignore[arg-type]
        head = frame[:30].encode() if isinstance(frame, str) else bytes(frame[:30])  # type: ignore[index]
        if head.startswith(SNAPSHOT_HEAD):
            marks["frame"] = time.perf_counter()
            marks["bytes"] = len(frame)
        return frame

    ClientConnection.recv = timed_recv  # type: ignore[method-assign]
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    backend = WebSocketBackend(url, REP, PASSWORD, connect_timeout=120)
    window = build_window(backend, settings)
    # Ours first (the snapshot is parsed, not applied yet), then the window's, then ours again.
    backend._event_listeners.insert(0, lambda batch: marks.setdefault("parsed", time.perf_counter()))
    backend.add_event_listener(lambda batch: marks.setdefault("applied", time.perf_counter()))
    window.resize(1300, 800)
    window.show()
    done = asyncio.Event()

    def painted() -> None:
        marks["painted"] = time.perf_counter()
        done.set()

    window.firstQueuePainted.connect(painted)

    async def run() -> None:
        marks["start"] = time.perf_counter()
        await window.start()  # signs in: the snapshot is applied when this returns
        await asyncio.wait_for(done.wait(), 60)
        marks["rows"] = window.model.rowCount()
        await window.shutdown()

    try:
        with loop:
            loop.run_until_complete(run())
    finally:
        ClientConnection.recv = recv  # type: ignore[method-assign]
        window.close()
        QTimer.singleShot(0, lambda: None)
    return marks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_console_snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 waiting, one run")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.waiting, args.runs = 10_000, 1
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-snapshot-"))
    config = work / "site.toml"
    config.write_text(_site())
    try:
        seeded = seed_store(config, work / "data", args.waiting)
        booted = time.perf_counter()
        server = start_server(config, work / "data")
        booted = time.perf_counter() - booted
        print(f"== console snapshot -> first paint, {args.waiting:,} waiting in the rep's queues (offscreen) ==")
        print(f"seeded {args.waiting:,} customers with the server's Runtime in {seeded:.1f} s; the server booted from them in {booted:.1f} s "
              f"(RSS {server.rss_kib() / 1024:.0f} MiB)")  # fmt: skip
        try:
            runs = []
            for n in range(args.runs):
                m = _measure(f"ws://127.0.0.1:{server.port}", work / f"settings-{n}")
                runs.append(m)
                print(f"run {n + 1}: snapshot {m['bytes'] / 1e6:.0f} MB; start -> frame {m['frame'] - m['start']:.2f} s; "
                      f"frame -> parsed {m['parsed'] - m['frame']:.2f} s, -> applied {m['applied'] - m['parsed']:.2f} s, "
                      f"-> painted {m['painted'] - m['applied']:.2f} s; snapshot -> first paint {m['painted'] - m['frame']:.2f} s "
                      f"({int(m['rows']):,} rows shown)")  # fmt: skip
            to_paint = statistics.median(m["painted"] - m["frame"] for m in runs)
            total = statistics.median(m["painted"] - m["start"] for m in runs)
            print(f"median snapshot frame -> first paint {to_paint:.2f} s   target <= {TARGET_SECONDS:.0f} s: "
                  f"{'met' if to_paint <= TARGET_SECONDS else 'MISSED'};   start -> first paint {total:.2f} s")  # fmt: skip
            if server.problems():
                print("server reported problems:\n  " + "\n  ".join(server.problems()[:10]))
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
