"""Smoke run of bench/bench_cluster.py (issue 15): ``--quick`` starts its own redis-server and servers and prints its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_cluster_quick_prints_both_settings_figures_and_ratios() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_cluster", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("  run ") >= 4  # 2 runs of each setting
    assert "median of 2 runs (min–max):" in out
    for figure in ("accept leader p50", "accept leader p99", "delivery p50", "delivery p99", "failover"):
        line = next(line for line in out.splitlines() if line.strip().startswith(figure))
        assert "baseline " in line and "; cluster " in line and "; ratio " in line, line
    follower = next(line for line in out.splitlines() if line.strip().startswith("accept follower p50"))
    assert "; cluster " in follower and "goal" in follower, follower  # three processes serve: followers exist
    assert "(3 serving)" in out
    assert "the server logged problems" not in out
