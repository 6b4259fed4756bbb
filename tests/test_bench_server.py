"""Smoke run of bench_server (issue 13): ``--quick`` runs both servers and prints its figure lines.

The delivery path's CPU (the fan-out's thread CPU per 1,000 delivered events,
from both servers' ``/metrics``) is printed beside the whole process's, per
run and as a median with its ratio, with numbers in it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"\d+(?:\.\d+)?"


@pytest.mark.slow
def test_bench_server_quick_prints_the_delivery_path_beside_the_whole_process() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_server", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    path = re.escape("delivery path (fan-out): encode + frame + write, thread CPU")
    # Per run, for each server: the whole process, and on the next line the delivery path.
    whole_runs = re.findall(rf"whole process CPU +{NUMBER}% = +({NUMBER}) ms per 1,000 delivered events", out)
    path_runs = re.findall(rf"{path}: +({NUMBER}) ms per 1,000 delivered events \(({NUMBER}|[\d,]+) ms for ([\d,]+) events", out)
    assert len(whole_runs) == len(path_runs) == 4, out  # 2 runs of 2 servers
    assert all(float(cpu) > 0 and int(events.replace(",", "")) > 0 for cpu, _, events in path_runs), out
    # The medians: both servers, both figures; and both ratios.
    for name in ("repconsole-server", "bare broadcast"):
        assert re.search(
            rf"  {name} +delivery p99 .*; whole process CPU {NUMBER} ms \(.*\) per 1,000 delivered events; {path} {NUMBER} ms \({NUMBER}–{NUMBER}\) per 1,000",
            out,
        ), out
    assert re.search(rf"whole process CPU per 1,000 delivered events {NUMBER}x \({NUMBER}–{NUMBER}\) \(goal <= 1.3x: (met|MISSED)\)", out), out
    assert re.search(rf"ratio repconsole / bare, {path}, per 1,000 delivered events: {NUMBER}x \({NUMBER}–{NUMBER}\) \(goal <= 1.3x: (met|MISSED)\)", out), out
    assert "server reported problems" not in out
