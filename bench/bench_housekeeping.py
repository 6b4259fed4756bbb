"""The server's housekeeping on a big database: the longest the event loop is held by one pass.

    python -m bench.bench_housekeeping                   # 100,000 and 300,000 sessions, 5 runs each
    python -m bench.bench_housekeeping --sizes 100000    # one size
    python -m bench.bench_housekeeping --quick           # 10,000 sessions, one run

Every few seconds the server forgets what aged out (``Runtime`` housekeeping,
``Store.prune``): resume events, command answers, expired logins, customer
tokens and session keys.  It runs on the event loop, so however long one
synchronous stretch of it lasts, every console and customer waits.

A data directory is made with the server's own ``Runtime`` (the store's
schema, the site of bench_console_snapshot), then filled with SQL for a
server that handled N sessions: N customer tokens, N command answers,
N / 50 login sessions, N / 10 session keys, and a full resume log of
50,000 events (~400 bytes each).  Two cases, each on a fresh copy:

* **steady**: 2 % of each table aged out (what a 5 s pass finds after a busy spell);
* **backlog**: half of each table aged out at once (a day-old burst expiring,
  or the first pass after a long stop).

Housekeeping then runs as the server runs it, on a running asyncio loop,
while a ticker coroutine (``asyncio.sleep(0)`` in a loop) records the
longest gap between two of its turns: the longest stretch in which the
loop did nothing else, in wall time and in the loop thread's CPU time
(which other processes on a loaded machine cannot lengthen; the wall time
also holds SQLite's fsyncs, at WAL checkpoints).  What the boot loaded is
frozen out of the cyclic collector's reach first (``gc.freeze``, as the
server's ``FreezePolicy`` does), so that a full collection of it is not
counted as housekeeping's.  Printed per case: that stall (wall and CPU)
and the whole pass's wall time, median (min-max) of the runs.  Target: a
stall <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "seed"]

SIZES = (100_000, 300_000)
RUNS = 5
EVENTS = 50_000
TARGET_STALL_MS = 50.0
NOW = 2_000_000_000.0
CASES = {"steady": 0.02, "backlog": 0.5}


def seed(config: Path, data: Path, sessions: int, aged: float) -> None:
    """A data directory for a server that handled ``sessions`` sessions, ``aged`` of each table past its cutoff."""
    from repconsole.server.config import load_config
    from repconsole.server.runtime import CUSTOMER_TOKENS_KEPT, DEAD_KEYS_KEPT, EXPIRED_LOGINS_KEPT, Runtime
    from repconsole.server.store import DB_NAME

    loop = asyncio.new_event_loop()
    rt = Runtime(load_config(config), data, loop)
    window = rt.spec.server.resume_window
    rt.stop()
    rt.store.close()
    loop.close()

    def when(i: int, n: int, cutoff: float) -> float:
        """Row i of n: the first ``aged`` share before ``cutoff``, the rest after it."""
        return cutoff - 1.0 - i if i < n * aged else cutoff + 1.0 + i % 100

    db = sqlite3.connect(data / DB_NAME, isolation_level=None)
    db.execute("BEGIN")
    logins = max(1, sessions // 50)
    db.executemany(
        "INSERT INTO logins VALUES (?, ?, ?, ?, ?)",
        ((i + 1, i.to_bytes(32, "big"), "console", NOW - 90_000, when(i, logins, NOW - EXPIRED_LOGINS_KEPT)) for i in range(logins)),
    )
    db.executemany(
        "INSERT INTO answers (login, request, at, reply) VALUES (?, ?, ?, ?)",
        ((i % logins + 1, str(i), when(i, sessions, NOW - window), b'{"type":"result","id":1,"data":{}}') for i in range(sessions)),
    )
    db.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)",
        (((i + 1_000_000_000).to_bytes(32, "big"), f"S{i}", when(i, sessions, NOW - CUSTOMER_TOKENS_KEPT)) for i in range(sessions)),
    )
    keys = sessions // 10

    def key(i: int) -> bytes:
        expires = when(i, keys, NOW - DEAD_KEYS_KEPT)
        return json.dumps({"key": f"K{i:08d}", "rep": "console", "created_at": NOW - 100_000, "expires_at": expires, "used_by": None}).encode()

    db.executemany("INSERT INTO keys (key, data) VALUES (?, ?)", ((f"K{i:08d}", key(i)) for i in range(keys)))
    item = b'{"seq":0,"kind":"session","data":{"session":{' + b'"x":"' + b"y" * 360 + b'"}}}'
    db.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
        ((seq, when(seq - 1, EVENTS, NOW - window), b'["console"]', b"[]", item, None) for seq in range(1, EVENTS + 1)),
    )
    # The engine's seq is the log's last, so the server's ring takes the log back at boot.
    db.execute("UPDATE meta SET value = json_set(value, '$.seq', ?) WHERE key = 'counters'", (EVENTS,))
    db.execute("COMMIT")
    db.close()


async def _measure(config: Path, data: Path) -> tuple[float, float, float]:
    """One housekeeping pass as the server runs it: (the longest loop stall in wall time and in
    the loop thread's CPU time, the pass's wall time), in ms."""
    from repconsole.server.config import load_config
    from repconsole.server.runtime import Runtime
    from repconsole.server.timers import VirtualClock

    loop = asyncio.get_running_loop()
    rt = Runtime(load_config(config), data, loop, clock=VirtualClock(NOW))
    # What survived the boot is out of the collector's reach, as the server's FreezePolicy
    # puts it: a full collection walking it is not housekeeping's stall.
    gc.collect()
    gc.freeze()
    longest = longest_cpu = 0.0
    done = False

    async def tick() -> None:
        nonlocal longest, longest_cpu
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not done:
            await asyncio.sleep(0)
            now, cpu = time.perf_counter(), time.thread_time()
            longest, longest_cpu = max(longest, now - last), max(longest_cpu, cpu - last_cpu)
            last, last_cpu = now, cpu

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    longest = longest_cpu = 0.0
    started = time.perf_counter()
    keep = getattr(rt, "keep_house", None)  # the server's pass: in bounded batches (schema 4), or all at once (before)
    if keep is not None:
        await keep()
    else:
        rt.housekeeping()
    took = time.perf_counter() - started
    await asyncio.sleep(0)
    done = True
    await ticker
    rt.stop()
    rt.store.close()
    gc.unfreeze()
    return longest * 1000, longest_cpu * 1000, took * 1000


def _spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _size(sessions: int, runs: int, work: Path) -> None:
    config = work / "site.toml"
    print(f"== {sessions:,} sessions handled: {sessions:,} customer tokens and command answers, "
          f"{sessions // 50:,} logins, {sessions // 10:,} keys, {EVENTS:,} logged events ==")  # fmt: skip
    for case, aged in CASES.items():
        template = work / f"template-{case}"
        seed(config, template, sessions, aged)
        stalls, cpu, passes = [], [], []
        for _ in range(runs):
            data = work / "data"
            shutil.copytree(template, data)
            stall, stall_cpu, took = asyncio.run(_measure(config, data))
            stalls.append(stall)
            cpu.append(stall_cpu)
            passes.append(took)
            shutil.rmtree(data)
        shutil.rmtree(template)
        verdict = f"target <= {TARGET_STALL_MS:.0f} ms: {'met' if statistics.median(stalls) <= TARGET_STALL_MS else 'MISSED'}"
        print(f"{case:8} ({aged:.0%} aged out): longest loop stall {_spread(stalls)} ms (CPU time {_spread(cpu)} ms), "
              f"whole pass {_spread(passes, '{:.0f}')} ms  (median (min–max) of {runs})   {verdict}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from bench.bench_console_snapshot import _site

    parser = argparse.ArgumentParser(prog="python -m bench.bench_housekeeping", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="sessions handled, comma-separated (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--quick", action="store_true", help="10,000 sessions, one run")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.runs = [10_000], 1
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-housekeeping-"))
    (work / "site.toml").write_text(_site())
    try:
        for sessions in sizes:
            _size(sessions, args.runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
