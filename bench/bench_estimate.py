"""Wait estimates against a simulated day: is the customer served by the end of the range shown on arrival?

    python -m bench.bench_estimate             # 7 simulated days (seeds), about a minute
    python -m bench.bench_estimate --quick     # 5 short days, a few seconds
    python -m bench.bench_estimate --hours     # and the figures per hour of the day
    python -m bench.bench_estimate --cost      # the cost of estimates at 20,000 waiting instead

One :class:`QueueEngine` on a :class:`ManualClock` that jumps from one thing
to the next (a 10-hour day takes seconds): one team, ``least-busy``
routing, 14 reps of capacity 2 (one of 3, one of 1).

* **Arrivals**: a Poisson process whose rate follows a daily profile
  (:data:`PROFILE`: a morning peak above what the team serves, a lunch
  dip, an afternoon peak, a quiet end), by thinning.
* **Service**: lognormal, mean 8 minutes (sigma 0.6); the rep ends the
  session when it is done.
* **Offers**: the offered rep answers after 1-8 s; 4% decline, 2% let it
  time out (``offer_timeout`` 20 s; two misses in a row set the rep away,
  and they are back 1-3 minutes later).
* **Reps**: two shifts (8 reps 08:00-16:30, 6 reps 09:00-18:30), a
  30-minute lunch and two 10-minute breaks each (away, then available);
  their sessions go on while they are away.
* **Customers give up** after a lognormal patience (median 20 minutes):
  counted, not scored.

For every customer: ``estimate_for`` right after arrival (what the page
shows first) and when they were served (accepted).  Printed per day and as
the median over the days (min-max):

* **served by the end of the range** shown on arrival (goal >= 80%);
* **point estimate within 25%** of the actual wait (goal >= 50%):
  ``|point - wait| <= 0.25 * wait``, over every served customer with an
  estimate, over those who waited a minute or more,
  and over those shown "less than a minute" (the wait of an offer's answer);
* **"no data"** estimates ("we are busier than usual").

No anchor: these are shares of customers, not times that move with the machine.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.intake import Intake
from repconsole.core.model import RepStatus, RoutingMode, SessionState, SiteConfig
from repconsole.protocol import OfferData, OfferEndedData

__all__ = ["TARGET_POINT", "TARGET_RANGE", "Day", "main", "simulate_day"]

TARGET_RANGE = 80.0  # % served by the end of the range shown on arrival
TARGET_POINT = 50.0  # % of point estimates within 25% of the actual wait
TEAM = "support"
HOUR = 3600.0
OPEN = 8 * HOUR  # engine time is seconds since midnight; the day runs 08:00-18:00
# Arrivals per hour from 08:00.  14 reps x 2 / 8 minutes serve 210 an hour while all are in.
PROFILE = [100, 180, 220, 180, 130, 150, 200, 170, 110, 70]
MEAN_SERVICE = 480.0
SERVICE_SIGMA = 0.6
PATIENCE_MEDIAN = 1200.0
DECLINE, MISS = 0.04, 0.02
# (count, capacity-by-index, shift start, shift end)
SHIFTS = [(8, OPEN, OPEN + 8.5 * HOUR), (6, OPEN + HOUR, OPEN + 10.5 * HOUR)]
CAPACITY = {0: 3, 13: 1}  # the others: 2


@dataclass
class Customer:
    arrived: float
    estimate: tuple[float, int, int] | None  # point (s), low and high (minutes); None: "no data"
    served: float | None = None

    @property
    def wait(self) -> float:
        assert self.served is not None
        return self.served - self.arrived


@dataclass
class Day:
    customers: list[Customer] = field(default_factory=list)
    offers: int = 0
    gave_up: int = 0
    sessions: Counter[str] = field(default_factory=Counter)  # accepted, per rep
    wall: float = 0.0

    def scored(self, hour: int | None = None, min_wait: float = 0.0) -> list[Customer]:
        """Served customers who were shown a number on arrival."""
        return [
            c for c in self.customers
            if c.served is not None and c.estimate is not None and c.wait >= min_wait
            and (hour is None or int((c.arrived - OPEN) // HOUR) == hour)
        ]  # fmt: skip

    def no_data(self) -> int:
        return sum(1 for c in self.customers if c.estimate is None)


def share(cs: Sequence[Customer], ok: Callable[[Customer], bool]) -> float:
    return 100.0 * sum(1 for c in cs if ok(c)) / len(cs) if cs else float("nan")


def in_range(c: Customer) -> bool:
    assert c.estimate is not None
    return c.wait <= c.estimate[2] * 60


def point_ok(c: Customer) -> bool:
    assert c.estimate is not None
    return abs(c.estimate[0] - c.wait) <= 0.25 * c.wait


def simulate_day(seed: int, hours: int = len(PROFILE), *, equal: bool = False, fixed_service: bool = False) -> Day:
    """One day of ``hours`` (the first hours of :data:`PROFILE`) on a fresh engine.

    ``equal``: every rep has capacity 2 and the same shift, 08:00 to half an
    hour after the last arrival (bench_routing's fairness day); breaks and
    lunch stay at random times.  ``fixed_service``: every session lasts
    exactly the mean service time (what is left of unfairness is routing's).
    """
    rng = random.Random(seed)
    clock = ManualClock(OPEN - 1)
    engine = QueueEngine(clock, rng=random.Random(seed), site=SiteConfig(offer_timeout=20.0, misses_before_away=2))
    engine.add_team(TEAM, "Support", routing=RoutingMode.LEAST_BUSY)
    engine.add_issue("help", "Help", "General", TEAM)
    heap: list[tuple[float, int, str, tuple[str, ...]]] = []
    order = itertools.count()

    def at(when: float, kind: str, *args: str) -> None:
        heapq.heappush(heap, (when, next(order), kind, args))

    scale = hours / len(PROFILE)
    reps: dict[str, float] = {}  # rep -> end of their shift
    n = 0
    shifts = [(14, OPEN, OPEN + 10.5 * HOUR)] if equal else SHIFTS
    for count, start, end in shifts:
        start, end = OPEN + (start - OPEN) * scale, OPEN + (end - OPEN) * scale
        for _ in range(count):
            rep = f"r{n:02d}"
            engine.add_rep(rep, f"Rep {n}", [TEAM], max_sessions=2 if equal else CAPACITY.get(n, 2))
            engine.set_status(rep, RepStatus.AWAY)
            reps[rep] = end
            at(start, "status", rep, "available")
            at(end, "status", rep, "off")
            span = end - start
            for offset, length in ((0.25, 600.0), (0.5, 1800.0), (0.75, 600.0)):
                begin = start + span * offset + rng.uniform(-0.08, 0.08) * span
                at(begin, "status", rep, "away")
                at(begin + length * scale, "status", rep, "available")
            n += 1
    # Arrivals: a Poisson process with the hourly PROFILE's rate, by thinning.
    top = max(PROFILE) / HOUR
    t = OPEN
    close = OPEN + hours * HOUR
    while True:
        t += rng.expovariate(top)
        if t >= close:
            break
        if rng.random() < PROFILE[int((t - OPEN) // HOUR)] / HOUR / top:
            at(t, "arrive")

    day = Day()
    waiting: dict[str, Customer] = {}
    off: set[str] = set()  # reps whose shift is over
    pending: list[tuple[str, str]] = []  # offers heard during a command: (rep, session)

    def heard(event: Event) -> None:
        data = event.data
        if isinstance(data, OfferData):
            pending.append((data.offer.rep, data.offer.session))
            day.offers += 1
        elif isinstance(data, OfferEndedData) and data.away and data.rep not in off:
            at(clock.now + rng.uniform(60, 180), "status", data.rep, "available")

    engine.subscribe(heard)

    def flush() -> None:
        for rep, sid in pending:
            roll = rng.random()
            if roll < MISS:
                continue  # the offer times out
            at(clock.now + rng.uniform(1, 8), "decline" if roll < MISS + DECLINE else "accept", rep, sid)
        pending.clear()

    started = time.perf_counter()
    while heap:
        when, _, kind, args = heapq.heappop(heap)
        while (deadline := engine.next_deadline()) is not None and deadline <= when:
            clock.now = max(clock.now, deadline)
            engine.advance()
            flush()
        clock.now = max(clock.now, when)
        try:
            if kind == "arrive":
                s = engine.start_with_issue("help", Intake(f"Customer {len(day.customers)}"))
                est = engine.estimate_for(s.id)
                c = Customer(when, (est.seconds, est.low, est.high) if est is not None else None)
                day.customers.append(c)
                waiting[s.id] = c
                at(when + PATIENCE_MEDIAN * math.exp(rng.gauss(0, 0.8)), "give_up", s.id)
            elif kind == "accept":
                rep, sid = args
                engine.accept_offer(rep, sid)
                waiting.pop(sid).served = when
                day.sessions[rep] += 1
                service = rng.lognormvariate(math.log(MEAN_SERVICE) - SERVICE_SIGMA**2 / 2, SERVICE_SIGMA)
                at(when + (MEAN_SERVICE if fixed_service else service), "end", rep, sid)
            elif kind == "decline":
                engine.decline_offer(*args)
            elif kind == "end":
                engine.end(*args)
            elif kind == "give_up":
                (sid,) = args
                if sid in waiting and engine.session(sid).state is SessionState.WAITING:
                    engine.customer_leave(sid)
                    del waiting[sid]
                    day.gave_up += 1
            elif kind == "status":
                rep, status = args
                if status == "off":
                    off.add(rep)
                    engine.set_status(rep, RepStatus.AWAY)
                elif rep not in off:
                    engine.set_status(rep, RepStatus(status))
        except CommandError:
            pass  # the offer was withdrawn or the customer left meanwhile: as a console would, move on
        flush()
    day.wall = time.perf_counter() - started
    return day


def cost(waiting: int = 20_000, rounds: int = 7) -> None:
    """Time ``publish_estimates`` (a fresh forecast) and ``estimate_for`` of every waiting customer, ``rounds`` times.

    One routed team of 14 reps of capacity 2, all busy, 60 sessions of history, ``waiting`` in its queue.
    """
    clock = ManualClock(OPEN)
    engine = QueueEngine(clock, rng=random.Random(1))
    engine.add_team(TEAM, "Support", routing=RoutingMode.LEAST_BUSY)
    engine.add_issue("help", "Help", "General", TEAM)
    for n in range(14):
        engine.add_rep(f"r{n:02d}", f"Rep {n}", [TEAM], max_sessions=2)
    rng = random.Random(2)

    def serve(name: str, length: float | None) -> None:
        s = engine.start_with_issue("help", Intake(name))
        offer = next(o for o in engine.open_offers() if o.session == s.id)
        clock.now += rng.uniform(1, 8)
        engine.accept_offer(offer.rep, s.id)
        if length is not None:
            clock.now += length
            engine.end(offer.rep, s.id)

    for n in range(60):
        serve(f"h{n}", rng.uniform(60, 900))
    for n in range(28):
        serve(f"f{n}", None)
        clock.now += 20
    ids = [engine.start_with_issue("help", Intake(f"w{n}")).id for n in range(waiting)]
    publish, sweep = [], []
    for _ in range(rounds):
        clock.now += 11  # older than any forecast kept
        started = time.perf_counter()
        engine.publish_estimates()
        publish.append(1000 * (time.perf_counter() - started))
        clock.now += 11
        started = time.perf_counter()
        for sid in ids:
            engine.estimate_for(sid)
        sweep.append(1000 * (time.perf_counter() - started))
    print(f"bench_estimate --cost: {waiting} waiting, median of {rounds} (min–max)")
    print(f"publish_estimates: {_med(publish)} ms; estimate_for of every waiting customer: {_med(sweep, '{:.0f}')} ms")


def _med(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _verdict(values: Sequence[float], goal: float) -> str:
    return "met" if statistics.median(values) >= goal else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 days of 3 hours (a smoke run)")
    parser.add_argument("--days", type=int, default=None, help="simulated days, one seed each (default 7; 5 with --quick)")
    parser.add_argument("--seed", type=int, default=1, help="the first day's seed")
    parser.add_argument("--hours", action="store_true", help="print the figures per hour of the day too")
    parser.add_argument("--cost", action="store_true", help="time the estimates at 20,000 waiting instead")
    args = parser.parse_args(argv)
    if args.cost:
        cost()
        return
    days = args.days or (5 if args.quick else 7)
    hours = 3 if args.quick else len(PROFILE)
    print(f"bench_estimate: {days} simulated days of {hours} h, least-busy routing, 14 reps; median over the days (min–max)")
    results = []
    for i in range(days):
        day = simulate_day(args.seed + i, hours)
        scored = day.scored()
        waited = day.scored(min_wait=60)
        print(
            f"  day {i + 1} (seed {args.seed + i}): {len(day.customers)} customers, {len(scored)} scored, "
            f"{day.gave_up} gave up, {day.no_data()} no data; in range {share(scored, in_range):.1f}%, "
            f"point within 25% {share(scored, point_ok):.1f}% (waited >= 1 min: {share(waited, point_ok):.1f}% of {len(waited)}); "
            f"{day.offers / max(1, len(day.customers)):.2f} offers/customer; {day.wall:.1f} s",
            flush=True,
        )
        results.append(day)
    ranges = [share(d.scored(), in_range) for d in results]
    points = [share(d.scored(), point_ok) for d in results]
    print(f"served by the end of the range shown on arrival: {_med(ranges)}%  (goal >= {TARGET_RANGE:.0f}%: {_verdict(ranges, TARGET_RANGE)})")
    print(f"point estimate within 25% of the actual wait: {_med(points)}%  (goal >= {TARGET_POINT:.0f}%: {_verdict(points, TARGET_POINT)})")
    widths = [float(c.estimate[2] - c.estimate[1]) for d in results for c in d.scored() if c.estimate is not None]
    print(f"  range shown: median {statistics.median(widths):.0f} min wide (over every day's customers)")
    print(f"  of customers who waited >= 1 min: {_med([share(d.scored(min_wait=60), point_ok) for d in results])}%")
    at_once = [[c for c in d.scored() if c.estimate is not None and c.estimate[1:] == (0, 1)] for d in results]
    print(f"  of customers shown 'less than a minute' ({_med([100 * len(a) / max(1, len(d.scored())) for a, d in zip(at_once, results, strict=True)])}% "
          f"of them): {_med([share(a, point_ok) for a in at_once])}% (their wait is an offer's answer, 1-8 s here)")
    print(f"'no data' estimates: {_med([float(d.no_data()) for d in results], '{:.0f}')} per day "
          f"of {_med([float(len(d.customers)) for d in results], '{:.0f}')} customers")
    print(f"gave up waiting (not scored): {_med([float(d.gave_up) for d in results], '{:.0f}')} per day")
    if args.hours:
        for h in range(hours):
            rs = [d.scored(hour=h) for d in results]
            print(f"  {8 + h:02d}:00  in range {_med([share(cs, in_range) for cs in rs])}%  "
                  f"point within 25% {_med([share(cs, point_ok) for cs in rs])}%  (n {_med([float(len(cs)) for cs in rs], '{:.0f}')})")


if __name__ == "__main__":
    main(sys.argv[1:])
