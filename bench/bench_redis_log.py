"""What a fenced log append costs, with Redis's ``appendfsync everysec`` and ``always``.

    python -m bench.bench_redis_log            # 5 runs x 2,000 appends per setting
    python -m bench.bench_redis_log --quick    # a smoke run

For each setting the bench starts its own ``redis-server`` (loopback, AOF on,
its files in a directory on disk: ``--dir``, by default a temp dir under the
system's temp directory, which must not be a tmpfs for ``always`` to mean
anything) and times, from the leader's side (one synchronous redis-py +
hiredis client, as Runtime._commit would call it):

* the **fenced append** (:meth:`OrgLog.append`: the Lua script checking
  epoch, lease and next seq, then XADD and SET), one entry per step;
* a **bare XADD** of the same payload to another stream, interleaved with
  the appends in the same run: the anchor that shows what the fencing adds
  and what the fsync setting costs on this machine at this moment.

Each run prints nothing; the table shows the median over runs of each run's
p50 and p99, with min–max over the runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.redisserver import RedisServer
from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.lease import Lease
from repconsole.server.cluster.log import OrgLog, connect

SETTINGS = ("everysec", "always")
# A typical step's entry: one session event (~450 bytes of wire JSON) and the
# changed session's dump (~600 bytes) in msgpack.
PAYLOAD = b"x" * 1100


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_run(server: RedisServer, appends: int, run: int) -> tuple[list[float], list[float]]:
    """Microseconds per fenced append and per bare XADD, interleaved."""
    client = connect(server.url, timeout=5)
    keys = OrgKeys.of(f"bench{run}")
    lease = Lease(client, keys, "bench", ttl=60)
    assert lease.try_acquire()
    log = OrgLog(client, keys)
    anchor = f"{keys.log}:anchor"
    fenced: list[float] = []
    bare: list[float] = []
    clock = time.perf_counter
    for seq in range(1, appends + 1):
        t0 = clock()
        log.append(lease, seq, seq, PAYLOAD)
        t1 = clock()
        client.xadd(anchor, {"d": PAYLOAD}, id=f"{seq}-0")
        t2 = clock()
        fenced.append((t1 - t0) * 1e6)
        bare.append((t2 - t1) * 1e6)
    client.delete(*keys.all(), anchor)
    client.close()
    return fenced, bare


def _figure(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} µs ({min(values):.0f}–{max(values):.0f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per setting; the median counts (default 5)")
    parser.add_argument("--appends", type=int, default=2000, help="appends per run (default 2,000)")
    parser.add_argument("--dir", type=Path, default=None, help="where redis-server keeps its AOF (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="2 runs of 200 appends")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.appends = 2, 200
    print(f"Redis log append (loopback, {len(PAYLOAD)}-byte entries): median of {args.repeat} runs x {args.appends:,} appends, (min–max over runs)")
    print(f"  {'appendfsync':<12} {'what':<14} {'p50':>26} {'p99':>26}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for setting in SETTINGS:
            server = RedisServer(Path(tmp) / setting, appendfsync=setting)
            server.start()
            try:
                runs = [one_run(server, args.appends, run) for run in range(args.repeat)]
            finally:
                server.stop()
            for label, index in (("fenced append", 0), ("bare XADD", 1)):
                p50 = [_percentile(r[index], 0.5) for r in runs]
                p99 = [_percentile(r[index], 0.99) for r in runs]
                print(f"  {setting:<12} {label:<14} {_figure(p50):>26} {_figure(p99):>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
