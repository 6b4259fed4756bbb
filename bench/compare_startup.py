"""Start-up before and after a change: launch -> queue filled, for several checkouts, interleaved.

``bench_startup`` measures one checkout.  To say whether a change made the
start slower, run this with a checkout from before the change and one from
after: each round launches every checkout once per population, in turn, so a
busy moment of the shared machine slows all of them alike.

Each launch runs ``python -m repconsole`` from that checkout (``PYTHONPATH``
and the working directory point at it; the interpreter and its packages are
this one's), offscreen, on fresh settings, and times from ``Popen`` to the
line ``window shown`` that every version of the console prints when the
queue table painted its first snapshot.  One untimed launch of each first
warms the disk cache.

Printed per population: the median (min-max) for each checkout, and each
checkout's median as a ratio of the first's.

``python -m bench.compare_startup BEFORE_DIR AFTER_DIR [...] [--runs 5] [--populations 40,10000,100000]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5
POPULATIONS = (40, 10_000, 100_000)


def launch(checkout: Path, population: int, scratch: str) -> float:
    """Seconds from launching the console of ``checkout`` to its first painted queue."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(checkout), PYTHONUNBUFFERED="1", XDG_STATE_HOME=scratch)
    settings = tempfile.mkdtemp(dir=scratch)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repconsole", "--population", str(population), "--quit-after", "300", "--settings-dir", settings],
        cwd=checkout, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "window shown" in line:
                return time.perf_counter() - started
        raise RuntimeError(f"{checkout}: the console exited (status {proc.wait()}) before painting its queue")
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:6.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="compare_startup", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("checkouts", nargs="+", type=Path, help="checkouts to compare; the first is the reference")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--populations", default=",".join(map(str, POPULATIONS)))
    args = parser.parse_args(argv)
    checkouts: list[Path] = [c.resolve() for c in args.checkouts]
    for checkout in checkouts:
        if not (checkout / "repconsole" / "__main__.py").is_file():
            parser.error(f"{checkout} is not a repconsole checkout")
    populations = [int(p) for p in args.populations.split(",")]
    times: dict[tuple[Path, int], list[float]] = {(c, p): [] for c in checkouts for p in populations}
    with tempfile.TemporaryDirectory(prefix="repconsole-compare-") as scratch:
        for checkout in checkouts:
            launch(checkout, populations[0], scratch)
        for _ in range(args.runs):
            for p in populations:
                for checkout in checkouts:
                    times[checkout, p].append(launch(checkout, p, scratch))
    print(f"== start-up, launch -> queue filled, offscreen; median (min-max) of {args.runs} interleaved runs ==")
    width = max(len(str(c)) for c in checkouts)
    for p in populations:
        reference = statistics.median(times[checkouts[0], p])
        for checkout in checkouts:
            values = times[checkout, p]
            print(f"{p:>7,} waiting  {checkout!s:<{width}}  {_ms(values)}  = {statistics.median(values) / reference:.2f}x the first")


if __name__ == "__main__":
    main(sys.argv[1:])
