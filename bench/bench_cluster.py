"""Several server processes on one Redis (issue 15), beside one process without Redis, in the same run.

    python -m bench.bench_cluster            # 5 runs: 400 accepts, 5 s of 200 events/s, a kill -9 per setting
    python -m bench.bench_cluster --quick    # a smoke run: 2 runs, 60 accepts, 1.5 s
    python -m bench.bench_cluster --processes 3 --consoles 24

The bench starts its own ``redis-server`` (bench/redisserver.py: loopback,
AOF on, ``appendfsync everysec``, ``noeviction``) and, per run and setting,
fresh ``repconsole-server`` processes on loopback (bench/bench_server.py's
ServerProc), each with a data directory of its own, on one site of 3 teams
of 16 reps (cheap password hashes: logins are not what is measured):

* **baseline**: one process without ``[cluster]`` (SQLite only);
* **cluster**: ``--processes`` processes (3 by default) with ``[cluster]
  redis_url`` on the bench's Redis, organisation ``bench``.  The first
  leads; the others follow (serve consoles, forward commands: issue 15).
  A server that cannot follow yet refuses to start ("led by another
  process"): the bench then says so and measures the cluster with the
  leader alone.

Measured in each run, for both settings (the settings alternate which goes
first from run to run):

* **accept round trip** (a console's ``accept`` of a waiting session,
  sent -> ``result``; one at a time, 5 ms apart) via the leader and, when
  there are followers, via a follower; p50 and p99 of the run's accepts.
  The waiting sessions arrive through ``/customer`` beforehand;
* **delivery** at ``--rate`` (200) events a second for ``--seconds``: a
  console on the leader sends team chat lines on schedule (not after the
  previous answer); ``--consoles`` consoles of that team, spread round robin
  over every process, time each line (its send time rides in the text)
  from send to arrival; p50 and p99 over every console's arrivals;
* **failover**: ``kill -9`` of the leader, then, from the kill, until a
  command (team chat) is confirmed by the new leader, sent from a console
  that was on a follower (it retries every 20 ms; an error counts as not
  yet).  Without followers (the baseline, and the cluster while it has
  none) the same outage is measured as an operator's supervisor would end
  it: the process is started again on its data directory, as soon as and
  as often as needed (the cluster's leader cannot start before its dead
  lease expires: ``lease_ttl``), a console logs in and sends the command.

Printed: each run's figures, then the median over the runs with min-max
for each figure and setting, and the ratio cluster / baseline (the median
of the runs' ratios, min-max).  Goals (issue 15): accept via a follower
p50 <= 3 ms, p99 <= 20 ms; failover <= 5 s.  Clocks: one machine,
``time.time()`` and ``time.perf_counter()``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from websockets.asyncio.client import ClientConnection

from bench.bench_server import ServerProc, arrive, login, percentile, raise_fd_limit, rep_id, site_toml, team_id
from bench.redisserver import RedisServer
from repconsole.protocol import Command, CommandName, Error, Events, RepReply, Result, TeamChatEvent, encode, parse_rep_reply

__all__ = ["main"]

TEAMS = 3
REPS_PER_TEAM = 16
ORG = "bench"
GOAL_ACCEPT_P50_MS = 3.0
GOAL_ACCEPT_P99_MS = 20.0
GOAL_FAILOVER_S = 5.0
RESTART_TIMEOUT = 60.0
ACCEPT_TEAM = 0  # the accepts' sessions wait in this team's queue
CHAT_TEAM = 1  # the delivery's consoles are this team's reps


# ---------------------------------------------------------------- consoles


class Console:
    """A logged-in console: its commands' round trips, and the team chat lines it times while ``timing``."""

    def __init__(self, ws: ClientConnection, process: int) -> None:
        self.ws = ws
        self.process = process
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Result | Error]] = {}
        self.timing = False
        self.latencies: list[float] = []  # seconds
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, port: int, rep: str, process: int) -> Console:
        ws, _ = await login(port, rep)
        return cls(ws, process)

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.ws.recv(decode=False)
                now = time.time()
                msg: RepReply = parse_rep_reply(frame)
                if isinstance(msg, Events):
                    if self.timing:
                        for e in msg.events:
                            if isinstance(e, TeamChatEvent) and e.data.line.text.startswith("t="):
                                self.latencies.append(now - float(e.data.line.text[2:]))
                elif isinstance(msg, Result | Error) and isinstance(msg.id, int):
                    fut = self.pending.pop(msg.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except Exception as exc:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"console connection lost: {exc}"))
            self.pending.clear()

    async def send(self, name: CommandName, **args: Any) -> asyncio.Future[Result | Error]:
        rid = next(self.ids)
        fut: asyncio.Future[Result | Error] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(encode(Command(rid, name, args)), text=True)
        return fut

    async def call(self, name: CommandName, timeout: float = 10.0, **args: Any) -> tuple[Result | Error, float]:
        """The reply and its round trip in seconds."""
        t0 = time.perf_counter()
        fut = await self.send(name, **args)
        reply = await asyncio.wait_for(fut, timeout)
        return reply, time.perf_counter() - t0

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


# ---------------------------------------------------------------- the processes


@dataclass
class Setting:
    """One way of running the organisation: its processes, index 0 the (first) leader."""

    name: str
    work: Path
    redis: RedisServer | None
    processes: int
    lease_ttl: float
    procs: list[ServerProc] = field(default_factory=list)
    note: str = ""

    @property
    def config(self) -> Path:
        return self.work / "site.toml"

    def data(self, i: int) -> Path:
        return self.work / f"data{i}"

    def start(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        text = site_toml(TEAMS, REPS_PER_TEAM)
        if self.redis is not None:
            client = redis.Redis.from_url(self.redis.url)
            client.flushall()  # a fresh organisation: its log starts at this run's empty stores
            client.close()
            text += f'\n[cluster]\nredis_url = "{self.redis.url}"\norganisation = "{ORG}"\nlease_ttl = {self.lease_ttl}\n'
        self.config.write_text(text)
        self.procs = [ServerProc(self.config, self.data(0))]
        for i in range(1, self.processes):
            try:
                self.procs.append(ServerProc(self.config, self.data(i)))
            except RuntimeError as exc:
                self.note = "a second process refused to start (followers not built yet): the cluster is the leader alone"
                if "led by another process" not in str(exc):
                    self.note = f"a follower failed to start: {str(exc).splitlines()[-1]}"
                break

    @property
    def followers(self) -> list[int]:
        return list(range(1, len(self.procs)))

    def restart(self, i: int) -> ServerProc:
        """Start process ``i`` again on its data directory, retrying until it starts (a lease must expire first)."""
        deadline = time.monotonic() + RESTART_TIMEOUT
        while True:
            try:
                self.procs[i] = ServerProc(self.config, self.data(i))
                return self.procs[i]
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        self.procs = []


# ---------------------------------------------------------------- one run of one setting


async def _accepts(setting: Setting, count: int) -> dict[str, list[float]]:
    """Accept round trips (seconds) via the leader and via a follower (if any), sessions split between them."""
    leader_port = setting.procs[0].port
    sessions = [await arrive(leader_port, team_id(ACCEPT_TEAM), f"Waiting customer {i}") for i in range(count)]
    via = {"leader": 0, **({"follower": setting.followers[0]} if setting.followers else {})}
    consoles = {name: await Console.open(setting.procs[i].port, rep_id(ACCEPT_TEAM, k), i) for k, (name, i) in enumerate(via.items())}
    rtts: dict[str, list[float]] = {name: [] for name in via}
    try:
        for n, sid in enumerate(sessions):
            name = list(via)[n % len(via)]
            reply, rtt = await consoles[name].call(CommandName.ACCEPT, session=sid)
            if not isinstance(reply, Result):
                raise RuntimeError(f"accept of {sid} via the {name} refused: {reply}")
            rtts[name].append(rtt)
            await asyncio.sleep(0.005)
    finally:
        for c in consoles.values():
            await c.close()
    return rtts


async def _delivery(setting: Setting, consoles: int, rate: float, seconds: float) -> tuple[list[float], int]:
    """Latencies (seconds) of team chat lines sent at ``rate`` to ``consoles`` consoles over every process; lines sent."""
    n = len(setting.procs)
    sender = await Console.open(setting.procs[0].port, rep_id(CHAT_TEAM, 0), 0)
    readers = [await Console.open(setting.procs[k % n].port, rep_id(CHAT_TEAM, 1 + k), k % n) for k in range(consoles)]
    try:
        for c in readers:
            c.timing = True
        interval = 1.0 / rate
        start = time.perf_counter()
        sent = 0
        futures: list[asyncio.Future[Result | Error]] = []
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed / interval) + 1
            while sent < due:
                futures.append(await sender.send(CommandName.TEAM_SAY, team=team_id(CHAT_TEAM), text=f"t={time.time():.6f}"))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
        await asyncio.wait_for(asyncio.gather(*futures), 30)
        expected = sent * consoles
        deadline = time.monotonic() + 10
        while sum(len(c.latencies) for c in readers) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        got = [x for c in readers for x in c.latencies]
        if len(got) < expected:
            raise RuntimeError(f"{setting.name}: {expected - len(got)} of {expected} deliveries missing")
        return got, sent
    finally:
        for c in [sender, *readers]:
            await c.close()


async def _failover(setting: Setting) -> float:
    """Seconds from kill -9 of the leader to the first command confirmed after it."""
    followers = setting.followers
    probe: Console | None = None
    if followers:
        i = followers[0]
        probe = await Console.open(setting.procs[i].port, rep_id(CHAT_TEAM, REPS_PER_TEAM - 1), i)
        reply, _ = await probe.call(CommandName.TEAM_SAY, team=team_id(CHAT_TEAM), text="before the kill")
        assert isinstance(reply, Result), reply
    leader = setting.procs[0]
    os.kill(leader.pid, signal.SIGKILL)
    killed = time.perf_counter()
    leader.proc.wait()
    try:
        if probe is None:  # nobody to take over: the process comes back
            proc = await asyncio.to_thread(setting.restart, 0)
            probe = await Console.open(proc.port, rep_id(CHAT_TEAM, REPS_PER_TEAM - 1), 0)
        while True:
            try:
                reply, _ = await probe.call(CommandName.TEAM_SAY, timeout=2.0, team=team_id(CHAT_TEAM), text="after the kill")
                if isinstance(reply, Result):
                    return time.perf_counter() - killed
            except (TimeoutError, ConnectionError):
                pass  # a follower's console may have to reconnect: not built here (the console's own job)
            if time.perf_counter() - killed > RESTART_TIMEOUT:
                raise RuntimeError(f"{setting.name}: no command confirmed within {RESTART_TIMEOUT:.0f} s of the kill")
            await asyncio.sleep(0.02)
    finally:
        if probe is not None:
            await probe.close()


async def one_run(setting: Setting, args: argparse.Namespace) -> dict[str, float]:
    setting.start()
    try:
        rtts = await _accepts(setting, args.accepts)
        latencies, _ = await _delivery(setting, args.consoles, args.rate, args.seconds)
        out = {
            "processes": float(len(setting.procs)),
            "accept leader p50": percentile(rtts["leader"], 50) * 1000,
            "accept leader p99": percentile(rtts["leader"], 99) * 1000,
            "delivery p50": percentile(latencies, 50) * 1000,
            "delivery p99": percentile(latencies, 99) * 1000,
        }
        if "follower" in rtts:
            out["accept follower p50"] = percentile(rtts["follower"], 50) * 1000
            out["accept follower p99"] = percentile(rtts["follower"], 99) * 1000
        out["failover"] = await _failover(setting)
        _problems(setting)
        return out
    except Exception:
        _problems(setting)
        raise
    finally:
        setting.stop()


def _problems(setting: Setting) -> None:
    for i, p in enumerate(setting.procs):
        problems = p.problems()
        if problems:
            first = p.lines.index(problems[0])
            print(f"  {setting.name}, process {i}: the server logged problems:\n    " + "\n    ".join(p.lines[max(0, first - 10) : first + 30]), flush=True)


# ---------------------------------------------------------------- report

FIGURES = [
    ("accept follower p50", "ms"),
    ("accept follower p99", "ms"),
    ("accept leader p50", "ms"),
    ("accept leader p99", "ms"),
    ("delivery p50", "ms"),
    ("delivery p99", "ms"),
    ("failover", "s"),
]


def _med(values: Sequence[float], unit: str, digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} {unit} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _goal(figure: str, value: float) -> str:
    goals: dict[str, Callable[[float], bool]] = {
        "accept follower p50": lambda v: v <= GOAL_ACCEPT_P50_MS,
        "accept follower p99": lambda v: v <= GOAL_ACCEPT_P99_MS,
        "failover": lambda v: v <= GOAL_FAILOVER_S,
    }
    check = goals.get(figure)
    return "" if check is None else ("   goal met" if check(value) else "   goal MISSED")


def report(runs: dict[str, list[dict[str, float]]], names: tuple[str, str]) -> None:
    base_name, cluster_name = names
    print(f"\nmedian of {len(runs[base_name])} runs (min–max):")
    for figure, unit in FIGURES:
        base = [r[figure] for r in runs[base_name] if figure in r]
        clus = [r[figure] for r in runs[cluster_name] if figure in r]
        if not clus and not base:
            print(f"  {figure:<20} not measured (no follower)")
            continue
        line = f"  {figure:<20}"
        line += f" baseline {_med(base, unit)}" if base else " baseline —"
        line += f"; cluster {_med(clus, unit)}" if clus else "; cluster — (no follower)"
        ref = figure.replace("follower", "leader")  # the baseline's one process is its "leader"
        pairs = [(c[figure], b[ref]) for c, b in zip(runs[cluster_name], runs[base_name], strict=True) if figure in c and ref in b]
        if pairs:
            ratios = [c / b for c, b in pairs if b > 0]
            line += f"; ratio {_med(ratios, 'x')}" + ("" if ref == figure else " (vs the baseline's own process)")
        if clus:
            line += _goal(figure, statistics.median(clus))
            if figure == "failover" and any(r["processes"] < 2 for r in runs[cluster_name]):
                line += " (by restarting the lone leader once its lease expired: no follower took over)"
        print(line)


async def _main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    redis_server = RedisServer(root / "redis")
    redis_server.start()
    names = ("baseline: 1 process, no Redis", f"cluster: {args.processes} processes on Redis")
    settings = [
        Setting(names[0], root / "baseline", None, 1, args.lease_ttl),
        Setting(names[1], root / "cluster", redis_server, args.processes, args.lease_ttl),
    ]
    print(
        f"== cluster vs one process: {TEAMS} teams of {REPS_PER_TEAM} reps, {args.accepts} accepts, {args.consoles} consoles at "
        f"{args.rate:.0f} events/s for {args.seconds:g} s, lease_ttl {args.lease_ttl:g} s, {args.runs} runs; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in settings}
    try:
        for n in range(args.runs):
            order = settings if n % 2 == 0 else settings[::-1]
            for setting in order:
                out = await one_run(setting, args)
                runs[setting.name].append(out)
                figures = ", ".join(f"{k} {v:.2f}" for k, v in out.items() if k != "processes")
                print(f"  run {n + 1}, {setting.name} ({out['processes']:.0f} serving): {figures}")
                if setting.note:
                    print(f"    note: {setting.note}")
        report(runs, names)
        print(f"machine load after the runs: {os.getloadavg()[0]:.1f}")
    finally:
        for s in settings:
            s.stop()
        redis_server.kill()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 runs, 60 accepts, 6 consoles, 1.5 s")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--processes", type=int, default=3, help="server processes in the cluster")
    parser.add_argument("--accepts", type=int, default=400)
    parser.add_argument("--consoles", type=int, default=12, help="consoles timing the delivery, spread over the processes (<= 14)")
    parser.add_argument("--rate", type=float, default=200.0, help="events a second for the delivery")
    parser.add_argument("--seconds", type=float, default=5.0, help="of delivery per run")
    parser.add_argument("--lease-ttl", type=float, default=3.0, help="the cluster's [cluster] lease_ttl")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.accepts, args.consoles, args.seconds = 2, 60, 6, 1.5
    if not 1 <= args.consoles <= REPS_PER_TEAM - 2:
        parser.error(f"--consoles must be between 1 and {REPS_PER_TEAM - 2}")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main(sys.argv[1:])
