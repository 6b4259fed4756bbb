"""Console start-up: from launching the process to the first painted queue.

Runs the real ``repconsole`` entry point offscreen on the simulator and times,
from the outside, how long it takes until the window reports that the queue
table painted its first snapshot.  Target: ≤ 1 s with the default population.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = 5


def launch(population: int) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repconsole", "--population", str(population), "--quit-after", "30",
         "--settings-dir", os.path.join("/tmp", f"repconsole-bench-{os.getpid()}")],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "window shown" in line:
                return time.perf_counter() - started
        raise RuntimeError(f"the console exited without painting (exit {proc.wait()})")
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    print("== console start-up (process launch -> first painted queue), offscreen ==")
    for population, runs in ((40, RUNS), (10_000, 2), (100_000, 1)):
        times = [launch(population) for _ in range(runs)]
        print(f"population {population:>7,}: median {statistics.median(times) * 1000:7.0f} ms "
              f"(best {min(times) * 1000:.0f} ms, {runs} run{'s' if runs > 1 else ''})"
              + ("   target <= 1000 ms" if population == 40 else ""))


if __name__ == "__main__":
    main()
