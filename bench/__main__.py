"""Run every benchmark and print its figures: ``python -m bench`` (or ``make bench``)."""

from __future__ import annotations

import importlib
import sys

BENCHES = [
    "bench.bench_engine",
    "bench.bench_table",
    "bench.bench_startup",
    "bench.bench_server",
    "bench.bench_soak",
    "bench.bench_storm",
    "bench.bench_accept",
    "bench.bench_housekeeping",
    "bench.bench_console_snapshot",
    "bench.bench_cobrowse",
    "bench.bench_estimate",
    "bench.bench_routing",
    "bench.bench_refresh",
    # Needs redis-server (the cluster extra's tests install it too).
    "bench.bench_redis_log",
    "bench.bench_cluster",
]


def main(names: list[str]) -> None:
    for name in names or BENCHES:
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
        module.main([])  # each bench's own options take their defaults
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
