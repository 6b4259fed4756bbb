"""Smoke runs of the issue 14 benchmarks (bench_estimate, bench_routing, bench_refresh): ``--quick`` runs and prints its figure lines.

Also that bench_routing's race checker can fail: it counts a double offer
and an offer over capacity when the event stream shows one.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_routing import Checker
from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.model import RoutingMode
from repconsole.protocol import OfferData, OfferView

ROOT = Path(__file__).resolve().parent.parent


def _quick(module: str, *extra: str, timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_estimate_quick_prints_its_figures_and_goals() -> None:
    out = _quick("bench.bench_estimate", timeout=60)
    assert "served by the end of the range shown on arrival:" in out and "(goal >= 80%:" in out
    assert "point estimate within 25% of the actual wait:" in out and "(goal >= 50%:" in out
    assert "'no data' estimates:" in out
    assert out.count("  day ") == 5  # a median of 5 days


def test_bench_refresh_quick_prints_both_paths_and_finds_the_same_frames() -> None:
    out = _quick("bench.bench_refresh", timeout=120)
    assert "before (inputs afresh per customer, one block):" in out
    assert "now (inputs once per team per slice, 2 slices of 1000):" in out and "longest slice" in out
    assert "x; frames identical; sent per refresh" in out  # it stops instead if the frames differ
    assert "team inputs worked out per refresh now: 8 (4 teams x 2 slices)" in out


@pytest.mark.slow
def test_bench_routing_quick_prints_its_figures_and_finds_no_double_offer() -> None:
    out = _quick("bench.bench_routing", "--races", "200", timeout=300)
    assert "offer latency after capacity frees: p50" in out and "(goal p99 <= 1000 ms" in out
    assert "anchor: the end command's own round trip" in out
    assert "sessions per rep, max/min over a day:" in out and "offers per session:" in out
    assert "double offers in 200 races: 0 (0–0); over capacity 0 (0–0); accepted twice 0 (0–0)  (must be 0: met)" in out
    assert "refused commands" not in out and "server reported problems" not in out


def test_the_race_checker_sees_a_double_offer_and_an_offer_over_capacity() -> None:
    e = QueueEngine(ManualClock(), rng=random.Random(1))
    e.add_team("t", "T", routing=RoutingMode.LEAST_BUSY)
    e.add_rep("a", "A", ["t"], max_sessions=1)
    check = Checker(e)

    def offer(sid: str) -> None:
        check.heard(Event(1, 0.0, OfferData(OfferView(sid, "a", "team:t", 0.0, 20.0)), frozenset({"a"})))

    offer("S1")
    check.check()
    assert (check.doubles, check.over) == (0, 0)
    offer("S1")  # again, while the first is open
    offer("S2")  # and a second offer to a rep of capacity 1
    check.check()
    assert (check.doubles, check.over) == (1, 1)
