"""Wait estimates played forward (issue 14): the forecast of when a routed team's next places free."""

from __future__ import annotations

import bisect
import math
import random
from typing import Any

import pytest
from engine_helpers import both_serving, intake, routed_pair
from hypothesis import given
from hypothesis import strategies as st

import repconsole.core.engine.outlook as outlook
from repconsole.core.clock import ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.estimate import best_point
from repconsole.core.forecast import Forecast, Member, relative_mode, slot_waits
from repconsole.core.model import RepStatus, RoutingMode

LENGTHS = [100.0 + 9 * i for i in range(101)]  # sessions of 100 to 1,000 s, evenly
ANSWERS = [4.0]


def within(p: float, values: list[float]) -> int:
    """As bench_estimate scores a point: within 25% of the value."""
    return sum(1 for v in values if abs(p - v) <= 0.25 * v)


def reference_best_point(values: list[float]) -> float:
    """best_point as it was (a bisection per candidate): the faster one must choose the same point."""
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    best: tuple[int, float] | None = None
    point = median
    for v in ordered:
        for p in (v * 0.75, v, v * 1.25):
            n = bisect.bisect_right(ordered, p / 0.75) - bisect.bisect_left(ordered, p / 1.25)
            if best is None or (-n, abs(p - median)) < best:
                best, point = (-n, abs(p - median)), p
    return point


positive = st.lists(st.floats(0.5, 5000, allow_nan=False), min_size=1, max_size=80)


@given(positive)
def test_best_point_chooses_as_before(values: list[float]) -> None:
    assert best_point(values) == reference_best_point(values)


@given(positive)
def test_the_relative_mode_is_within_25_percent_of_as_many_as_the_best_point(values: list[float]) -> None:
    ordered = sorted(values)
    best = best_point(ordered)
    assert best is not None
    # At least as many: best_point puts its point on a window's edge, where rounding can lose a value.
    assert within(relative_mode(ordered), ordered) >= within(best, ordered)


def test_a_session_that_has_gone_on_ends_sooner_than_a_new_one() -> None:
    # One place, its session 900 s old: sessions last at most 1,000 s, so it frees within 100 s (plus the answer).
    old = slot_waits([Member((900.0,))], LENGTHS, ANSWERS, [], 2, runs=200, seed=1)
    assert max(old[0]) <= 100 + 4
    new = slot_waits([Member((0.0,))], LENGTHS, ANSWERS, [], 2, runs=200, seed=1)
    assert min(new[0]) >= 100 + 4 and sum(new[0]) / 200 == pytest.approx(550 + 4, rel=0.1)
    # The second place is the first one again after a whole new session (at least 100 s), in every run.
    assert min(old[1]) >= 100 + 4 + 4


def test_a_member_away_frees_nothing_until_back() -> None:
    spells = [600.0, 1200.0]  # stretches away seen end: 10 and 20 minutes
    # Away 5 minutes with one session in progress and one empty place: back in 5 or 15 minutes, not sooner.
    samples = slot_waits([Member((0.0,), empty=1, away=300.0)], LENGTHS, ANSWERS, spells, 1, runs=200, seed=2)[0]
    assert min(samples) >= 300 and {round(s) for s in samples} <= {304, 904}
    # Away longer than anyone came back from: not in sight; the forecast gives no number.
    gone = slot_waits([Member((0.0,), away=1300.0)], LENGTHS, ANSWERS, spells, 1, runs=50, seed=2)
    assert gone[0] == [math.inf] * 50
    assert Forecast(gone, 0.0).wait(1, 0.0) is None
    # A pause ends at a known time.
    paused = slot_waits([Member((), empty=1, back=90.0)], LENGTHS, ANSWERS, [], 1, runs=50, seed=2)[0]
    assert paused == [94.0] * 50


def test_the_same_seed_gives_the_same_forecast_and_another_a_different_one() -> None:
    members = [Member((30.0, 400.0)), Member((10.0,), empty=1), Member((700.0,), away=60.0)]
    one = slot_waits(members, LENGTHS, ANSWERS, [120.0, 900.0], 10, runs=50, seed=7)
    assert one == slot_waits(members, LENGTHS, ANSWERS, [120.0, 900.0], 10, runs=50, seed=7)
    assert one != slot_waits(members, LENGTHS, ANSWERS, [120.0, 900.0], 10, runs=50, seed=8)
    assert all(s == sorted(s) for s in one)


def test_the_forecast_goes_on_past_its_places_and_ages_with_the_clock() -> None:
    f = Forecast([[10.0 * k] * 20 for k in range(1, 5)], at=100.0)
    point4 = f.wait(4, 100.0)
    point8 = f.wait(8, 100.0)
    assert point4 is not None and point8 is not None and point8[0] == pytest.approx(point4[0] * 2)  # 10 s a place
    later = f.wait(4, 103.0)
    assert later is not None and later[0] == pytest.approx(point4[0] - 3)
    assert f.wait(0, 100.0) is None


def test_the_range_holds_when_sessions_end_as_their_history_says() -> None:
    """Ground truth drawn from the same session lengths: the end of the range is reached >= 80% of the time,
    and the point is within 25% of the wait more often than that of a forecast that ignores the sessions' ages."""
    rng = random.Random(5)
    lengths = sorted(rng.lognormvariate(math.log(480) - 0.18, 0.6) for _ in range(500))
    held = good = good_blind = trials = 0
    for trial in range(200):
        ages = [rng.uniform(0, 600) for _ in range(8)]
        k = rng.choice([1, 3, 6, 10])
        f = Forecast(slot_waits([Member((a,)) for a in ages], lengths, ANSWERS, [], k, runs=200, seed=trial), 0.0)
        got = f.wait(k, 0.0)
        blind = Forecast(slot_waits([Member((0.0,)) for _ in ages], lengths, ANSWERS, [], k, runs=200, seed=trial), 0.0)
        got_blind = blind.wait(k, 0.0)
        assert got is not None and got_blind is not None
        # The truth: each session's own length (longer than its age), then new ones, one place at a time.
        ends = []
        for a in ages:
            i = bisect.bisect_right(lengths, a)
            ends.append(lengths[rng.randrange(i, len(lengths))] - a if i < len(lengths) else 1.0)
        for _ in range(k - 1):
            t = min(ends)
            ends[ends.index(t)] = t + 4 + rng.choice(lengths)
        wait = min(ends) + 4
        trials += 1
        held += wait <= got[2]
        good += abs(got[0] - wait) <= 0.25 * wait
        good_blind += abs(got_blind[0] - wait) <= 0.25 * wait
    assert held / trials >= 0.85
    assert good > good_blind + trials // 20


# ---------------------------------------------------------------- engine


def _team(clock: ManualClock) -> QueueEngine:
    """A routed team of two reps of capacity 1 who have each served 12 sessions of 600 s."""
    return routed_pair(clock, served=outlook.MIN_LENGTHS + 4)


def _busy(e: QueueEngine, clock: ManualClock, age: float) -> str:
    """Both reps in a session that began ``age`` ago; returns the id of a customer next in line."""
    both_serving(e, clock, age)
    return e.start_with_issue("vpn", intake("me")).id


def test_the_engine_plays_the_sessions_in_progress_forward() -> None:
    # The rate model sees the same history in both teams; the forecast sees how long the sessions have gone on.
    clock_old, clock_new = ManualClock(10_000.0), ManualClock(10_000.0)
    old, new = _team(clock_old), _team(clock_new)
    late = old.estimate_for(_busy(old, clock_old, 590.0))
    early = new.estimate_for(_busy(new, clock_new, 5.0))
    assert late is not None and early is not None and late.ahead == early.ahead == 1
    assert late.seconds < 60 < 500 < early.seconds
    assert late.model > 0 and early.model > 0  # the rate model's own figure is kept beside it (its calibration)


def test_a_member_away_is_back_as_the_stretches_away_seen_say() -> None:
    clock = ManualClock(10_000.0)
    e = _team(clock)
    for _ in range(3):  # stretches away of two minutes, seen end
        e.set_status("a", RepStatus.AWAY)
        clock.advance(120)
        e.set_status("a", RepStatus.AVAILABLE)
    me = _busy(e, clock, 5.0)
    e.set_status("a", RepStatus.AWAY)
    clock.advance(60)
    # a ends their session while away: their place frees when they are back, in about a minute.
    sid = next(sid for sid in e._queues.involved("a"))
    e.end("a", sid)
    est = e.estimate_for(me)
    assert est is not None and est.seconds < 120  # the rate model says about a session's length
    assert est.model > 300
    clock.advance(100)  # away longer than any stretch seen: not back within sight, b's session is what frees
    e.set_status("b", RepStatus.AVAILABLE)
    later = e.estimate_for(me)
    assert later is not None and later.seconds > 300


def test_a_forecast_is_made_once_per_team_for_every_customer_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(10_000.0)
    e = _team(clock)
    _busy(e, clock, 5.0)
    runs: list[int] = []
    real = outlook.slot_waits

    def counted(*args: object, **kwargs: object) -> list[list[float]]:
        runs.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outlook, "slot_waits", counted)
    waiting = [e.start_with_issue("vpn", intake(f"w{i}")).id for i in range(200)]
    estimates = [e.estimate_for(sid) for sid in waiting]
    e.publish_estimates()
    assert len(runs) == 1
    assert all(est is not None for est in estimates)
    points = [est.seconds for est in estimates if est is not None]
    assert points == sorted(points) and points[-1] > points[0]  # further back, longer, past the places played too
    clock.advance(outlook.REFRESH / 2)
    e.set_status("a", RepStatus.AWAY)  # a change, but the forecast is younger than REFRESH: used still
    e.estimate_for(waiting[0])
    assert len(runs) == 1
    clock.advance(outlook.REFRESH)
    e.estimate_for(waiting[0])
    assert len(runs) == 2  # changed and old enough: made afresh
    clock.advance(outlook.MAX_AGE / 2)
    e.estimate_for(waiting[0])
    assert len(runs) == 2  # nothing changed
    clock.advance(outlook.MAX_AGE)
    e.estimate_for(waiting[0])
    assert len(runs) == 3  # too old


def test_the_same_commands_give_the_same_estimates() -> None:
    def run() -> list[float]:
        clock = ManualClock(10_000.0)
        e = _team(clock)
        me = _busy(e, clock, 100.0)
        return [est.seconds for _ in range(3) if (est := e.estimate_for(me)) is not None and clock.advance(11) is None]

    assert run() == run()


def test_forecasts_over_all_teams_keep_to_their_budget_per_second() -> None:
    # Twelve routed teams with history; every change anywhere makes each team's forecast stale. Asked for
    # every team every half second for a minute, the engine makes at most REMAKES_PER_SECOND a second
    # (plus the bucket's start), and every team still gets a number: a forecast, kept, or the rate model's.
    clock = ManualClock(10_000.0)
    e = QueueEngine(clock, rng=random.Random(1))
    teams = [f"t{n}" for n in range(12)]
    for t in teams:
        e.add_team(t, t.upper(), routing=RoutingMode.LEAST_BUSY, max_sessions=1)
        e.add_rep(f"{t}-a", "A", [t])
        e.add_issue(f"{t}-i", "Issue", "Network", t)
    for i in range(outlook.MIN_LENGTHS + 2):
        for t in teams:
            s = e.start_with_issue(f"{t}-i", intake(f"{t}-c{i}"))
            offer = next(o for o in e.open_offers() if o.session == s.id)
            e.accept_offer(offer.rep, s.id)
        clock.advance(300)
        for t in teams:
            e.end(f"{t}-a", next(iter(e._queues.involved(f"{t}-a"))))
    for t in teams:  # busy again, two waiting behind
        s = e.start_with_issue(f"{t}-i", intake(f"{t}-busy"))
        e.accept_offer(f"{t}-a", s.id)
        e.start_with_issue(f"{t}-i", intake(f"{t}-w1"))
        e.start_with_issue(f"{t}-i", intake(f"{t}-w2"))
    made = e._router.outlook.remakes
    started = clock()
    for _ in range(120):
        clock.advance(0.5)
        e.set_status(teams[0] + "-a", RepStatus.AVAILABLE)  # a change every turn: all stale
        e._router.outlook.changed()
        assert all(e.estimate(t) is not None for t in teams)
    elapsed = clock() - started
    assert e._router.outlook.remakes - made <= outlook.REMAKES_PER_SECOND * elapsed + outlook.REMAKES_PER_SECOND
    assert e._router.outlook.remakes - made >= outlook.REMAKES_PER_SECOND * elapsed / 2  # the budget is used


def test_a_big_team_plays_fewer_runs_so_that_a_forecast_costs_what_a_small_one_does(monkeypatch: pytest.MonkeyPatch) -> None:
    assert outlook.runs_for(outlook.REFERENCE_PLACES) == outlook.RUNS == outlook.runs_for(1)
    assert outlook.MIN_RUNS < outlook.runs_for(100) < outlook.runs_for(50) < outlook.RUNS
    assert outlook.runs_for(10**6) == outlook.MIN_RUNS
    # The engine passes its team's places: 40 reps of capacity 1 (bench_routing has 100).
    clock = ManualClock(10_000.0)
    e = QueueEngine(clock, rng=random.Random(1))
    e.add_team("big", "Big", routing=RoutingMode.LEAST_BUSY, max_sessions=1)
    reps = [f"r{i}" for i in range(40)]
    for rep in reps:
        e.add_rep(rep, rep.upper(), ["big"])
    e.add_issue("i", "Issue", "Network", "big")
    for round_ in range(2):
        for rep in reps:
            s = e.start_with_issue("i", intake(f"{rep}-{round_}"))
            e.accept_offer(next(o for o in e.open_offers() if o.session == s.id).rep, s.id)
        clock.advance(300)
        if round_ == 0:
            for rep in reps:
                e.end(rep, next(iter(e._queues.involved(rep))))
    me = e.start_with_issue("i", intake("me")).id
    asked: list[int] = []
    real = outlook.slot_waits

    def counted(*args: Any, **kwargs: Any) -> list[list[float]]:
        asked.append(kwargs["runs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(outlook, "slot_waits", counted)
    assert e.estimate_for(me) is not None
    assert asked == [outlook.runs_for(40)]
