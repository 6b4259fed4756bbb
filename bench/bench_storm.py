"""Reconnect storm: N consoles signed in, the server restarted, every console resuming at once.

    python -m bench.bench_storm                # N = 500 and 2,000, 5 runs each, all at once
    python -m bench.bench_storm --quick        # N = 500, 3 runs
    python -m bench.bench_storm --jitter       # each console first waits the console's jittered delay

For each N: a site of N reps in teams of 50, a few customers waiting per team,
and the real ``repconsole-server`` (a subprocess, data in /tmp).  The N
consoles sign in with their passwords (argon2id: a password check each,
and the server re-hashes the site file's cheap hash at its own cost) from
two client processes, raw ``websockets`` connections that read every frame and keep
their token and last seq as the console does.  Then, each run:

1. the server is stopped (SIGTERM: every console is told 1001) and started
   again on the same data directory;
2. at one instant every console connects and sends ``resume`` with its token
   and last seq.  "At once" is the worst case, and the default; the real
   console waits a random delay first (full jitter, ``backend/backoff.py``:
   uniform in [0, 0.5 s] for its first try), which ``--jitter`` applies;
3. the storm's time is from that instant until the last console has its
   welcome (``resumed: true``) and its replay (the events frame after it).

Beside it, in the same run and from the same client processes, a **bare**
``websockets`` server (same library, same settings: no compression, the same
listen backlog; no logic: it answers a resume with a welcome and an empty
events frame) takes the same N connections the same way.  Printed per N: the
median over the runs (min–max) of both, their ratio, the server's CPU for
the storm, and how many consoles were resumed (not sent a snapshot).
Target: every console resumed within 5 s at N = 2,000.
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
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from bench.bench_server import PASSWORD, BareProc, ServerProc, cpu_seconds, raise_fd_limit, rep_id, seed, site_toml
from repconsole.backend.backoff import Backoff
from repconsole.protocol import PROTOCOL_VERSION, Login, Resume, encode
from repconsole.server.app import LISTEN_BACKLOG

__all__ = ["main"]

TARGET_SECONDS = 5.0
PER_TEAM = 50
CLIENT_PROCESSES = 2


class _Seq(msgspec.Struct):
    seq: int


class _Frame(msgspec.Struct):
    """What a console keeps of a frame: its type, a snapshot's seq, an events frame's seqs, a welcome's token."""

    type: str
    id: int | str | None = None
    seq: int | None = None
    events: list[_Seq] | None = None
    resumed: bool | None = None
    token: str | None = None
    last_seq: int | None = None


_frame = msgspec.json.Decoder(_Frame)


# ---------------------------------------------------------------- the bare server (a subprocess)


async def _bare(port_out: Path) -> None:
    """A bare websockets server: a resume gets a welcome and an empty events frame; nothing else."""

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            msg = _frame.decode(message)
            last = msg.last_seq or 0
            welcome = {"type": "welcome", "id": msg.id, "rep": "bare", "token": msg.token, "resumed": True,
                       "expires_at": 0.0, "server_time": time.time(), "resume_window": 300, "protocol": 1}  # fmt: skip
            await ws.send(msgspec.json.encode(welcome), text=True)
            await ws.send(b'{"type":"events","prev":%d,"events":[]}' % last, text=True)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=64 * 1024, ping_interval=None, backlog=LISTEN_BACKLOG) as server:
        port = server.sockets[0].getsockname()[1]
        port_out.write_text(str(port))
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


# ---------------------------------------------------------------- the consoles (a subprocess each)


class Console:
    def __init__(self, rep: str) -> None:
        self.rep = rep
        self.token = ""
        self.seq = -1
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None

    def take(self, raw: bytes) -> _Frame:
        msg = _frame.decode(raw)
        if msg.type == "snapshot" and msg.seq is not None:
            self.seq = msg.seq
        elif msg.type == "events" and msg.events:
            self.seq = msg.events[-1].seq
        elif msg.type == "welcome" and msg.token:
            self.token = msg.token
        return msg

    async def read(self, ws: ClientConnection) -> None:
        try:
            while True:
                self.take(await ws.recv(decode=False))
        except Exception:
            return


async def _open(port: int) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{port}/rep", compression=None, max_size=None, open_timeout=120, ping_interval=None, close_timeout=5
    )


async def _client(reps: list[str]) -> None:
    """Commands on stdin, one a line; answers on stdout."""
    consoles = [Console(rep) for rep in reps]
    bare: list[ClientConnection] = []
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: lines.put_nowait(sys.stdin.readline()))

    def say(text: str) -> None:
        print(text, flush=True)

    while True:
        command, *args = (await lines.get()).split()
        if command == "LOGIN":
            port = int(args[0])
            started = time.perf_counter()
            sem = asyncio.Semaphore(25)

            async def login(c: Console) -> None:
                async with sem:
                    ws = await _open(port)
                    await ws.send(encode(Login(1, c.rep, PASSWORD, PROTOCOL_VERSION)), text=True)
                    for _ in range(2):  # the welcome, the snapshot
                        c.take(await ws.recv(decode=False))
                c.ws = ws
                c.reader = asyncio.ensure_future(c.read(ws))

            await asyncio.gather(*(login(c) for c in consoles))
            say(f"READY {len(consoles)} {time.perf_counter() - started:.3f}")
        elif command == "WAITCLOSED":
            readers = [c.reader for c in consoles if c.reader is not None]
            done, _ = await asyncio.wait(readers, timeout=60) if readers else (set(), set())
            codes = [c.ws.close_code if c.ws is not None else None for c in consoles]
            say(f"CLOSED {len(done)} {sum(1 for code in codes if code == 1001)} {sorted(set(map(str, codes)))}")
        elif command == "STORM":
            port, at, mode, kind = int(args[0]), float(args[1]), args[2], args[3]
            backoff = Backoff()
            done_at: list[float] = []
            resumed = [0]
            failed: list[str] = []

            async def storm(c: Console) -> None:
                delay = backoff.delay(0) if mode == "jitter" else 0.0
                await asyncio.sleep(max(0.0, at - time.time()) + delay)
                try:
                    ws = await _open(port)
                    await ws.send(encode(Resume(1, c.token, c.seq, PROTOCOL_VERSION)), text=True)
                    welcome = _frame.decode(await ws.recv(decode=False))
                    if welcome.type != "welcome":
                        raise RuntimeError(f"{c.rep}: {welcome}")
                    follow = await ws.recv(decode=False)
                    done_at.append(time.time())
                    if welcome.resumed:
                        resumed[0] += 1
                except Exception as exc:
                    failed.append(f"{c.rep}: {exc!r}")
                    return
                if kind == "rep":
                    c.take(follow)
                    c.ws = ws
                    c.reader = asyncio.ensure_future(c.read(ws))
                else:
                    bare.append(ws)

            await asyncio.gather(*(storm(c) for c in consoles))
            say("STORMED " + json.dumps({"last": max(done_at, default=at), "resumed": resumed[0], "failed": failed[:5], "failures": len(failed)}))
        elif command == "DROPBARE":
            await asyncio.gather(*(ws.close() for ws in bare), return_exceptions=True)
            bare.clear()
            say("DROPPED")
        elif command == "QUIT":
            os._exit(0)


class ClientProc:
    def __init__(self, reps: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_storm", "--client", *reps],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(prefix):
            raise RuntimeError(f"console process: expected {prefix}, got {line!r}")
        return line[len(prefix) :].strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _all(clients: list[ClientProc], line: str, prefix: str) -> list[str]:
    """Send ``line`` to every client process at once, then collect their answers."""
    for c in clients:
        c.send(line)
    answers: list[str] = [""] * len(clients)

    def collect(i: int) -> None:
        answers[i] = clients[i].answer(prefix)

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def _storm(clients: list[ClientProc], port: int, pid: int, mode: str, kind: str) -> tuple[float, float, int, int, list[str]]:
    """One storm: seconds until the last console is resumed, server CPU seconds, resumed, failures."""
    at = time.time() + 0.3  # every client process starts at this instant
    cpu0 = cpu_seconds(pid)
    results = [json.loads(a) for a in _all(clients, f"STORM {port} {at:.6f} {mode} {kind}", "STORMED")]
    cpu = cpu_seconds(pid) - cpu0
    last = max(r["last"] for r in results)
    return last - at, cpu, sum(r["resumed"] for r in results), sum(r["failures"] for r in results), [f for r in results for f in r["failed"]]


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def bench(n: int, runs: int, mode: str, waiting_per_team: int) -> dict[str, Any]:
    teams = max(1, n // PER_TEAM)
    per_team = n // teams
    n = teams * per_team
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-storm-"))
    config = work / "site.toml"
    config.write_text(site_toml(teams, per_team))
    data = work / "data"
    reps = [rep_id(t, i) for t in range(teams) for i in range(per_team)]
    clients = [ClientProc(reps[i::CLIENT_PROCESSES]) for i in range(CLIENT_PROCESSES)]
    server = ServerProc(config, data)
    ours: list[float] = []
    bare: list[float] = []
    cpu_ours: list[float] = []
    cpu_bare: list[float] = []
    resumed: list[int] = []
    try:
        asyncio.run(seed(server.port, waiting_per_team * teams, teams, concurrency=50))
        t0 = time.perf_counter()
        logged = _all(clients, f"LOGIN {server.port}", "READY")
        print(f"N = {n:,} ({teams} teams of {per_team}): {sum(int(a.split()[0]) for a in logged):,} consoles signed in with "
              f"their passwords in {time.perf_counter() - t0:.1f} s (a password check each, and a re-hash of the site "
              "file's cheap hash at argon2id's cost; a snapshot each)")  # fmt: skip
        for run in range(runs):
            # Interleaved, the bare server first on even runs: a machine getting busier hits both alike.
            order = ["bare", "rep"] if run % 2 == 0 else ["rep", "bare"]
            for kind in order:
                if kind == "rep":
                    server.stop()  # SIGTERM: 1001 to every console
                    closed = _all(clients, "WAITCLOSED", "CLOSED")
                    told = sum(int(a.split()[1]) for a in closed)
                    if told < n:
                        print(f"  (close codes seen at the stop: {closed})")
                    server = ServerProc(config, data)
                    seconds, cpu, ok, failures, failed = _storm(clients, server.port, server.pid, mode, "rep")
                    ours.append(seconds)
                    cpu_ours.append(cpu)
                    resumed.append(ok)
                    print(f"  run {run + 1}: repconsole-server {seconds:5.2f} s, CPU {cpu:4.2f} s, {ok:,} of {n:,} resumed "
                          f"({told:,} told 1001)" + (f", {failures} FAILED: {failed}" if failures else ""))  # fmt: skip
                else:
                    b = BareProc(work, "bench.bench_storm")
                    try:
                        seconds, cpu, ok, failures, failed = _storm(clients, b.port, b.pid, mode, "bare")
                    finally:
                        b.stop()
                    _all(clients, "DROPBARE", "DROPPED")
                    bare.append(seconds)
                    cpu_bare.append(cpu)
                    print(f"  run {run + 1}: bare websockets  {seconds:5.2f} s, CPU {cpu:4.2f} s" + (f", {failures} FAILED: {failed}" if failures else ""))
        if server.problems():
            print("server reported problems:\n  " + "\n  ".join(server.problems()[:20]))
    finally:
        for c in clients:
            c.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    med = statistics.median(ours)
    print(f"N = {n:,}, {'each after its jittered delay' if mode == 'jitter' else 'all at once'}, median of {runs} (min–max):")
    print(f"  every console resumed: repconsole-server {_median(ours)}, bare websockets {_median(bare)}, "
          f"ratio {statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f})")  # fmt: skip
    print(f"  server CPU for the storm: repconsole-server {_median(cpu_ours)}, bare {_median(cpu_bare)}; "
          f"resumed (no snapshot): {min(resumed):,} to {max(resumed):,} of {n:,}")  # fmt: skip
    print(f"  target: all resumed within {TARGET_SECONDS:.0f} s: {'met' if med <= TARGET_SECONDS else 'MISSED'} (median {med:.2f} s)")
    return {"n": n, "ours": ours, "bare": bare, "ratios": ratios}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--client":
        raise_fd_limit()
        asyncio.run(_client(argv[1:]))
        return
    if argv and argv[0] == "--bare-server":
        raise_fd_limit()
        asyncio.run(_bare(Path(argv[1])))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.bench_storm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--consoles", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--waiting", type=int, default=5, help="customers waiting per team")
    parser.add_argument("--jitter", action="store_true", help="each console waits the console's first backoff delay (uniform in [0, 0.5 s])")
    parser.add_argument("--quick", action="store_true", help="N = 500, 3 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.consoles, args.runs = [500], 3
    fd_limit = raise_fd_limit()
    mode = "jitter" if args.jitter else "at-once"
    print(f"== reconnect storm after a server restart: {', '.join(f'{n:,}' for n in args.consoles)} consoles, "
          f"{'each after its jittered delay (the console policy)' if args.jitter else 'all at once (the worst case)'}, "
          f"{args.runs} runs; {CLIENT_PROCESSES} console processes, listen backlog {LISTEN_BACKLOG} (fd limit {fd_limit}) ==")  # fmt: skip
    for n in args.consoles:
        bench(n, args.runs, mode, args.waiting)


if __name__ == "__main__":
    main()
