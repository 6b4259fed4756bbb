"""One position refresh of every waiting customer's page, in-process: its cost before and after the per-team cache.

    python -m bench.bench_refresh              # 20,000 waiting, median of 7 refreshes
    python -m bench.bench_refresh --quick      # 2,000 waiting, 5 refreshes (a smoke run)
    python -m bench.bench_refresh --waiting N --rounds R

Every 0.5 s after a change the server refreshes each connected waiting
customer's status (position and estimate; :mod:`repconsole.server.customers`).
One :class:`QueueEngine` on a :class:`ManualClock`: three ``least-busy``
teams of 14 reps of capacity 2 and one pull team of 10, every rep busy, each
team 1,000 customers served (the most its rate is measured over), and
``--waiting`` customers waiting, spread over the four.  A refresh's work is
what the desk does, without sockets: ``publish_estimates``, then per
customer its session, :func:`~repconsole.server.customers.waiting_status`,
the frame encoded and compared with the last one sent (only a changed one
is sent).

* **now**: in slices of :data:`~repconsole.server.customers.REFRESH_SLICE`,
  each within :meth:`QueueEngine.estimating` (each team's inputs once per
  slice); the total, and the longest slice (what one tick of the event loop
  is held for).
* **anchor, measured in the same run**: the same loop outside
  :meth:`QueueEngine.estimating`, so that each customer's estimate works its
  team's inputs out afresh (the path before the cache), in one block as the
  server did.  Its ratio to *now* is the figure that does not move with the
  machine's load.

Each round moves the clock 0.5 s (a refresh's interval) and runs both, in
alternating order; the frames of both must be byte for byte the same (the
bench stops if not).  Printed: medians (min–max).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence

from repconsole.core.clock import ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.intake import Intake
from repconsole.core.model import RoutingMode, SessionState
from repconsole.protocol import encode
from repconsole.server import customers
from repconsole.server.customers import POSITION_EVERY, waiting_status

__all__ = ["build", "main", "refresh_before", "refresh_now"]

ROUTED = ["t0", "t1", "t2"]  # least-busy, 14 reps of capacity 2 each
PULL = "t3"  # no routing, 10 reps of capacity 2
SERVED = 1000  # per team: ServedLog keeps the last 1,000, which the rate walks


def build(waiting: int, seed: int = 1) -> tuple[QueueEngine, ManualClock, list[str]]:
    """The engine, its clock, and the waiting customers' sessions (in arrival order, as pages connect)."""
    rng = random.Random(seed)
    clock = ManualClock(100_000.0)
    e = QueueEngine(clock, rng=random.Random(1))
    for team_id in [*ROUTED, PULL]:
        routing = RoutingMode.NONE if team_id == PULL else RoutingMode.LEAST_BUSY
        e.add_team(team_id, team_id.upper(), routing=routing, max_sessions=2)
        e.add_issue(f"i{team_id}", team_id, "General", team_id)
        for n in range(10 if team_id == PULL else 14):
            e.add_rep(f"{team_id}r{n:02d}", f"Rep {team_id} {n}", [team_id])
    for i in range(SERVED):  # each team serves one customer every ~1.7 s, for about half an hour
        for team_id in [*ROUTED, PULL]:
            s = e.start_with_issue(f"i{team_id}", Intake(f"h{team_id}{i}"))
            offer = next((o for o in e.open_offers() if o.session == s.id), None)
            rep = offer.rep if offer is not None else rng.choice(sorted(e.teams[team_id].members))
            clock.now += rng.uniform(0.1, 0.8)
            if offer is not None:
                e.accept_offer(rep, s.id)
            else:
                e.accept(rep, s.id)
            e.end(rep, s.id)
    for team_id in [*ROUTED, PULL]:  # every rep busy: the waiting customers stay waiting
        for rep_id in sorted(e.teams[team_id].members):
            for _ in range(2):
                s = e.start_with_issue(f"i{team_id}", Intake("busy"))
                offer = next((o for o in e.open_offers() if o.session == s.id), None)
                if offer is not None:
                    e.accept_offer(offer.rep, s.id)
                else:
                    e.accept(rep_id, s.id)
    teams = [*ROUTED, PULL]
    ids = [e.start_with_issue(f"i{teams[n % len(teams)]}", Intake(f"w{n}")).id for n in range(waiting)]
    return e, clock, ids


def _pass(e: QueueEngine, sids: Sequence[str], sent: dict[str, bytes]) -> int:
    """The desk's loop over pages: each waiting customer's status frame, sent (counted) only if it changed."""
    told = 0
    for sid in sids:
        s = e.session(sid)
        if s.state is SessionState.WAITING and s.queue is not None:
            frame = encode(waiting_status(e, s))
            if sent.get(sid) != frame:
                sent[sid] = frame
                told += 1
    return told


def refresh_now(e: QueueEngine, sids: Sequence[str], sent: dict[str, bytes]) -> tuple[float, float, int]:
    """A refresh as the server does it now: (total ms, longest slice ms, frames sent)."""
    size = customers.REFRESH_SLICE
    total = longest = 0.0
    told = 0
    for at in range(0, max(1, len(sids)), size):
        started = time.perf_counter()
        with e.estimating():
            if at == 0:
                e.publish_estimates()
            told += _pass(e, sids[at : at + size], sent)
        took = 1000 * (time.perf_counter() - started)
        total += took
        longest = max(longest, took)
    return total, longest, told


def refresh_before(e: QueueEngine, sids: Sequence[str], sent: dict[str, bytes]) -> tuple[float, int]:
    """A refresh as the server did it before the cache, in one block: (ms, frames sent)."""
    started = time.perf_counter()  # outside QueueEngine.estimating: each estimate's inputs worked out afresh
    e.publish_estimates()
    told = _pass(e, sids, sent)
    return 1000 * (time.perf_counter() - started), told


def _med(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_refresh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 waiting, 5 rounds (a smoke run)")
    parser.add_argument("--waiting", type=int, default=None, help="customers waiting (default 20,000)")
    parser.add_argument("--rounds", type=int, default=None, help="refreshes timed (default 7; at least 5)")
    args = parser.parse_args(argv)
    waiting = args.waiting or (2_000 if args.quick else 20_000)
    rounds = max(5, args.rounds or (5 if args.quick else 7))
    built = time.perf_counter()
    e, clock, sids = build(waiting)
    print(f"bench_refresh: {waiting} waiting over 3 least-busy teams of 14 reps and a pull team of 10, {SERVED} served each "
          f"(built in {time.perf_counter() - built:.1f} s); one refresh's work, median of {rounds} (min–max)")
    sent_now: dict[str, bytes] = {}
    sent_before: dict[str, bytes] = {}
    refresh_now(e, sids, sent_now)  # a first refresh: every page's first frame, the forecasts made
    refresh_before(e, sids, sent_before)
    now_ms, longest_ms, before_ms, ratios, told = [], [], [], [], []
    made = 0  # team inputs worked out by the refreshes "now" (the anchor's are one per customer)
    for r in range(rounds):
        clock.now += POSITION_EVERY
        if r % 2:
            before, told_before = refresh_before(e, sids, sent_before)
        counted = e._router.inputs_made
        total, longest, told_now = refresh_now(e, sids, sent_now)
        made += e._router.inputs_made - counted
        if not r % 2:
            before, told_before = refresh_before(e, sids, sent_before)
        if sent_now != sent_before or told_now != told_before:
            raise SystemExit("bench_refresh: the cached refresh sent other frames than the uncached one")
        now_ms.append(total)
        longest_ms.append(longest)
        before_ms.append(before)
        ratios.append(before / total)
        told.append(float(told_now))
    slices = -(-len(sids) // customers.REFRESH_SLICE)
    print(f"  before (inputs afresh per customer, one block): {_med(before_ms)} ms")
    print(f"  now (inputs once per team per slice, {slices} slices of {customers.REFRESH_SLICE}): {_med(now_ms)} ms in all, "
          f"longest slice {_med(longest_ms, '{:.1f}')} ms")
    print(f"  before/now: {_med(ratios, '{:.1f}')}x; frames identical; sent per refresh {_med(told)} of {waiting} "
          f"(a page whose status did not change is sent nothing)")
    per = made / rounds
    print(f"  team inputs worked out per refresh now: {per:.0f} (4 teams x {slices} slices)")


if __name__ == "__main__":
    main(sys.argv[1:])
