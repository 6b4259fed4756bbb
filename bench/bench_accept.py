"""Accept round trip on loopback: from the command sent to its confirmation.

    python -m bench.bench_accept             # 2,000 accepts
    python -m bench.bench_accept --quick     # 300

A ``repconsole-server`` process (data directory in /tmp) with one team of
five reps, all signed in (the four others read their feeds: every accept
also tells them the session is gone), and the customers waiting, created
through ``/customer``.  One console accepts them one at a time by id and
times each ``accept`` from just before the frame is written to the moment
its ``result`` is read; each accepted session is then ended (not timed) so
the rep stays under their maximum.  The round trip includes the SQLite
commit the server makes before it answers.

Target: p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from bench.bench_server import Worker, arrive, login, percentile, raise_fd_limit, rep_id, site_toml, start_server, team_id
from repconsole.protocol import CommandName, Result

__all__ = ["main"]

TARGET_P50_MS = 5.0


async def _run(accepts: int) -> None:
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-accept-"))
    config = work / "site.toml"
    config.write_text(site_toml(1, 5))
    server = start_server(config, work / "data")
    try:
        sessions: list[str] = []
        for chunk in range(0, accepts, 100):
            sessions += await asyncio.gather(*(arrive(server.port, team_id(0), f"Customer {i}") for i in range(chunk, min(accepts, chunk + 100))))
        consoles = [await login(server.port, rep_id(0, i)) for i in range(5)]
        workers = [Worker(0, ws) for ws, _ in consoles]  # their readers keep every feed drained
        me = workers[0]
        rtts: list[float] = []
        ends: list[float] = []
        for sid in sessions:
            reply, _ = await me.call(CommandName.ACCEPT, rtts, session=sid)
            assert isinstance(reply, Result), reply
            await me.call(CommandName.END, ends, session=sid)
        ms = [r * 1000 for r in rtts]
        p50 = percentile(ms, 50)
        print(f"== accept round trip on loopback ({len(ms):,} accepts, one at a time; 5 consoles in the team) ==")
        print(f"accept: p50 {p50:.2f} ms   p90 {percentile(ms, 90):.2f} ms   p99 {percentile(ms, 99):.2f} ms   max {max(ms):.2f} ms   "
              f"target p50 <= {TARGET_P50_MS:.0f} ms: {'met' if p50 <= TARGET_P50_MS else 'MISSED'}")  # fmt: skip
        print(f"(end, for comparison: p50 {percentile(ends, 50) * 1000:.2f} ms   p99 {percentile(ends, 99) * 1000:.2f} ms)")
        if server.problems():
            print("server reported problems:\n  " + "\n  ".join(server.problems()[:10]))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_accept", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accepts", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="300 accepts")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(_run(300 if args.quick else args.accepts))


if __name__ == "__main__":
    main()
