"""Wait estimates (issue 14): the pure model, its calibration, and what the engine feeds it."""

from __future__ import annotations

import random

import msgspec
import pytest
from engine_helpers import intake

from repconsole.core.clock import ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.estimate import (
    MIN_SERVED,
    SOON,
    WINDOW,
    Calibration,
    WaitEstimate,
    answer_time,
    best_point,
    describe,
    estimate_wait,
    served_rate,
)
from repconsole.core.model import RepStatus, RoutingMode
from repconsole.protocol import EstimateData, EstimateView

NOW = 10_000.0


def every(seconds: float, n: int, *, until: float = NOW) -> list[float]:
    """``n`` customers served ``seconds`` apart, the last at ``until``."""
    return [until - i * seconds for i in range(n)][::-1]


def test_too_few_served_or_nobody_serving_is_no_data() -> None:
    assert estimate_wait(1, every(60, MIN_SERVED - 1), NOW, since=0) is None
    assert estimate_wait(1, every(60, 10), NOW, since=0, serving=False) is None
    # Served long ago (outside the window) counts for nothing.
    assert estimate_wait(1, every(60, 10, until=NOW - WINDOW - 1), NOW, since=0) is None
    assert describe(None) == "We are busier than usual."


def test_the_point_estimate_is_position_over_the_served_rate() -> None:
    served = every(60, 30)  # 30 served in the last half hour: one a minute
    assert served_rate(served, NOW, since=0) == (30, 30 / WINDOW)
    est = estimate_wait(4, served, NOW, since=0)
    assert est is not None
    assert est.seconds == pytest.approx(4 / (30 / WINDOW))  # 240 s
    assert est.low <= est.seconds / 60 <= est.high
    assert (est.low, est.high) == (1, 7)  # 240 s * (1 -/+ 1.2816 * sqrt(1/4 + 1/30)): 76 s .. 404 s, rounded out
    assert describe(est) == "about 1–7 minutes"


def test_a_young_log_measures_its_rate_over_its_life() -> None:
    # The engine started 10 minutes ago and served 10: one a minute, not 10 in 30 minutes.
    est = estimate_wait(1, every(60, 10), NOW, since=NOW - 600)
    assert est is not None and est.seconds == pytest.approx(60)


def test_free_capacity_serves_the_first_in_line_at_once() -> None:
    est = estimate_wait(2, [], NOW, since=0, free_slots=2)
    assert est == WaitEstimate(15.0, 0, 1)
    assert describe(est) == "less than a minute"
    # The third waits for one customer fewer than without the free slots.
    served = every(60, 30)
    with_room = estimate_wait(3, served, NOW, since=0, free_slots=2)
    without = estimate_wait(1, served, NOW, since=0)
    assert with_room is not None and with_room == without


def test_ranges_round_outwards_and_to_fives_past_ten_minutes() -> None:
    est = estimate_wait(20, every(60, 30), NOW, since=0)
    assert est is not None
    assert est.low % 5 == 0 and est.high % 5 == 0 and est.low <= est.seconds / 60 <= est.high
    assert describe(WaitEstimate(100, 0, 3)) == "less than 3 minutes"
    with pytest.raises(ValueError):
        estimate_wait(0, [], NOW, since=0)


@pytest.mark.parametrize("position", [1, 3, 10])
def test_the_range_holds_for_most_customers_when_service_is_random(position: int) -> None:
    """Simulated: customers served as a Poisson process; the end of the range is reached at least 80% of the time.

    (The issue's goal; the model aims at 90%.)  It also checks the
    estimate is not absurdly wide: the range's end is less than 4x the
    true mean wait on average.
    """
    rng = random.Random(position)
    rate = 1 / 45  # a customer served every 45 s on average
    held = 0
    ends = []
    trials = 400
    for _ in range(trials):
        # The history the estimate sees: the last 30 minutes.
        t, history = NOW - WINDOW, []
        while (t := t + rng.expovariate(rate)) <= NOW:
            history.append(t)
        est = estimate_wait(position, history, NOW, since=0)
        assert est is not None
        wait = sum(rng.expovariate(rate) for _ in range(position))  # the position-th service from now
        held += wait <= est.high * 60
        ends.append(est.high * 60)
    assert held / trials >= 0.8
    assert sum(ends) / trials < 4 * position / rate


# ---------------------------------------------------------------- engine


def _engine(routing: RoutingMode) -> tuple[ManualClock, QueueEngine]:
    clock = ManualClock(NOW)
    e = QueueEngine(clock, rng=random.Random(1))
    e.add_team("net", "Net", routing=routing, max_sessions=1)
    e.add_rep("a", "A", ["net"])
    e.add_rep("b", "B", ["net"])
    e.add_rep("solo", "Solo")
    e.add_issue("vpn", "VPN", "Network", "net")
    return clock, e


def test_the_engine_measures_what_its_team_queues_served() -> None:
    clock, e = _engine(RoutingMode.NONE)
    assert e.estimate("net") is None  # nobody served yet
    for i in range(6):
        clock.advance(60)
        s = e.start_with_issue("vpn", intake(f"c{i}"))
        e.accept("a", s.id)
        e.end("a", s.id)
    waiting = [e.start_with_issue("vpn", intake(f"w{i}")).id for i in range(3)]
    est = e.estimate_for(waiting[2])
    assert est is not None and est.seconds == pytest.approx(3 * 60)  # 6 served over the engine's 6 minutes
    assert e.estimate("net") == e.estimate("net", 4)
    # Customers who left are not customers served; a personal queue has no estimate.
    e.customer_leave(waiting[0])
    assert e.estimate_for(waiting[2]) == estimate_wait(2, [NOW + 60 * i for i in range(1, 7)], clock.now, since=NOW)
    assert e.estimate_for(e.start_with_rep("solo", intake()).id) is None
    # Nobody available: no data.
    e.set_status("a", RepStatus.AWAY)
    e.set_status("b", RepStatus.BUSY)
    assert e.estimate_for(waiting[2]) is None


def test_a_routed_team_counts_free_capacity() -> None:
    clock, e = _engine(RoutingMode.LEAST_BUSY)
    assert e.estimate("net") == WaitEstimate(15.0, 0, 1)  # two reps with room: offers go out at once
    first = e.start_with_issue("vpn", intake()).id
    second = e.start_with_issue("vpn", intake()).id
    assert e.estimate("net") is None  # both reps hold an offer; nothing served yet
    e.accept_offer(e.open_offers()[0].rep, first)
    assert e.session(second).owner is None


def test_estimates_are_published_to_the_team_when_they_change() -> None:
    clock, e = _engine(RoutingMode.LEAST_BUSY)
    heard = []
    e.subscribe(heard.append)
    assert e.publish_estimates() == 1  # net; solo's personal queue has none
    data = heard[-1].data
    assert isinstance(data, EstimateData) and data.team == "net" and data.estimate == EstimateView(0, 1, 15.0)
    assert heard[-1].audience == {"a", "b"}
    assert e.publish_estimates() == 0  # unchanged: nothing said
    e.set_status("a", RepStatus.AWAY)
    e.set_status("b", RepStatus.AWAY)
    assert e.publish_estimates() == 1
    last = heard[-1].data
    assert isinstance(last, EstimateData) and last.estimate is None


def test_only_a_new_range_is_published_not_a_new_point_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each arrival and accept moves the point estimate; an event for each (persisted, to every member)
    # cost the server a step per team twice a second, for a range on screen that had not changed.
    clock, e = _engine(RoutingMode.LEAST_BUSY)
    heard = []
    e.subscribe(heard.append)
    said: list[WaitEstimate | None] = [WaitEstimate(100.0, 1, 3)]
    monkeypatch.setattr(e._router, "estimate", lambda team, position: said[-1] if team == "net" else None)
    assert e.publish_estimates() == 1
    said.append(WaitEstimate(130.0, 1, 3))
    assert e.publish_estimates() == 0  # "about 1-3 minutes" still
    said.append(WaitEstimate(200.0, 2, 5))
    assert e.publish_estimates() == 1
    said.append(None)
    assert e.publish_estimates() == 1  # to "no estimate"
    assert e.publish_estimates() == 0
    said.append(WaitEstimate(200.0, 2, 5))
    assert e.publish_estimates() == 1  # and back
    told = [ev.data.estimate for ev in heard if isinstance(ev.data, EstimateData)]
    assert told == [EstimateView(1, 3, 100.0), EstimateView(2, 5, 200.0), None, EstimateView(2, 5, 200.0)]


def test_a_customer_whose_offer_is_out_is_being_served() -> None:
    # Found by bench_estimate: the customer who took the last free slot was told "one customer ahead" (1 / rate),
    # and everyone behind offered customers waited for them too (an overestimate of the offers out).
    clock, e = _engine(RoutingMode.LEAST_BUSY)
    for i in range(6):  # a served history: one a minute
        clock.advance(60)
        s = e.start_with_issue("vpn", intake(f"c{i}"))
        e.accept_offer(e.open_offers()[0].rep, s.id)
        e.end(e.session(s.id).owner or "", s.id)
    first = e.start_with_issue("vpn", intake()).id
    second = e.start_with_issue("vpn", intake()).id
    third = e.start_with_issue("vpn", intake()).id
    assert {o.session for o in e.open_offers()} == {first, second}  # both reps hold an offer: no room left
    est_first, est_second = e.estimate_for(first), e.estimate_for(second)
    assert est_first is not None and (est_first.low, est_first.high) == (0, 1)
    assert est_second == est_first
    # The third waits for one customer to be served, not three.
    est_third = e.estimate_for(third)
    assert est_third is not None and est_third.seconds == pytest.approx(60)


def test_served_at_once_is_the_time_offers_take_to_be_answered() -> None:
    assert answer_time([]) == SOON == 15.0  # too few answers seen: the default
    assert answer_time([4.0, 2.0]) == SOON
    assert answer_time([4.0, 2.0, 9.0]) == 4.0
    # Not the median (5): the point within 25% of the most answers (6 and 9), the nearest the median of those.
    assert answer_time([4.0, 2.0, 9.0, 6.0]) == 6.75
    assert estimate_wait(1, [], NOW, since=0, free_slots=1, soon=4.0) == WaitEstimate(4.0, 0, 1)
    clock, e = _engine(RoutingMode.LEAST_BUSY)
    for i in range(3):
        s = e.start_with_issue("vpn", intake(f"c{i}"))
        clock.advance(3.0 + i)  # answered after 3, 4 and 5 s
        e.accept_offer(e.open_offers()[0].rep, s.id)
        e.end(e.session(s.id).owner or "", s.id)
    assert e.estimate("net") == WaitEstimate(3.75, 0, 1)  # within 25% of all three answers


def test_the_best_point_is_within_25_percent_of_more_values_than_the_median() -> None:
    # Offers answered in 1 to 8 s, evenly: the median (4.5) is within 25% of 3.6..6 s, 34% of them;
    # the best point, about 6, of 4.8..8 s, 46%.
    answers = [1 + 7 * i / 999 for i in range(1000)]

    def within(p: float) -> float:
        return sum(1 for a in answers if abs(p - a) <= 0.25 * a) / len(answers)

    best = best_point(answers)
    assert best is not None and 5.8 <= best <= 6.1
    assert within(best) >= 0.45 > 0.35 > within(4.5)
    assert best_point([]) is None
    assert best_point([10.0]) == 10.0  # one value: itself (7.5 and 12.5 are as good; the nearest the median)


def test_the_best_point_counts_values_as_bench_estimate_scores_a_wait() -> None:
    """Within 25% of the value (the actual wait), not of the point: ``|p - v| <= 0.25 v``, as bench_estimate's point_ok.

    A skewed set (like the waits of customers with one ahead): the best point
    is within 25% of as many values as the best of a fine grid of points,
    counted the bench's way; counted relative to the point instead
    (``|p - v| <= 0.25 p``) the best would lie elsewhere.
    """
    rng = random.Random(14)
    values = [rng.expovariate(1.0) for _ in range(400)]

    def within(p: float) -> int:
        return sum(1 for v in values if abs(p - v) <= 0.25 * v)

    best = best_point(values)
    assert best is not None
    grid = [i / 1000 for i in range(1, 4000)]
    assert within(best) == max(within(p) for p in grid)
    by_point = max(grid, key=lambda p: sum(1 for v in values if abs(p - v) <= 0.25 * p))
    assert within(by_point) < within(best)


def test_the_calibration_learns_the_models_error_by_band_of_customers_ahead() -> None:
    cal = Calibration(keep=50, least=20)
    assert [Calibration.band(k) for k in (1, 2, 3, 4, 7, 8, 16, 32, 500)] == [0, 1, 1, 2, 2, 3, 4, 5, 5]
    assert cal.factor(1) == 1.0  # nothing learnt
    for _ in range(19):
        cal.add(2, 0.5)
    assert cal.factor(3) == 1.0  # fewer than `least` ratios anywhere
    cal.add(3, 0.5)
    assert cal.factor(2) == 0.5
    assert cal.factor(40) == 0.5  # a band with too few of its own: all bands
    for _ in range(20):
        cal.add(40, 2.0)
    assert cal.factor(40) == 2.0 and cal.factor(2) == 0.5
    assert cal.factor(1) == 1.25  # all 40: the median of twenty 0.5 and twenty 2.0
    cal.add(0, 9.0)  # served at once: not the model's error
    cal.add(5, 0.0)
    assert cal.factor(1) == 1.25


def test_the_engine_calibrates_a_teams_estimates_with_the_waits_it_saw() -> None:
    clock, e = _engine(RoutingMode.NONE)
    for i in range(6):  # a served history: one a minute
        clock.advance(60)
        s = e.start_with_issue("vpn", intake(f"c{i}"))
        e.accept("a", s.id)
        e.end("a", s.id)
    for i in range(25):
        ahead = e.start_with_issue("vpn", intake(f"x{i}")).id
        me = e.start_with_issue("vpn", intake(f"y{i}")).id
        shown = e.estimate_for(me)  # the first estimate with a number is the one remembered
        assert shown is not None and shown.ahead == 2
        if i == 0:
            assert shown.seconds == shown.model  # nothing learnt yet
        clock.advance(shown.model / 2)  # served in half the time the model said
        assert e.estimate_for(me) is not None  # asked again: still compared with the first
        for sid in (ahead, me):
            e.accept("a", sid)
            e.end("a", sid)
    late = e.start_with_issue("vpn", intake("z")).id
    never_asked = e.start_with_issue("vpn", intake("n")).id
    est = e.estimate_for(never_asked)
    assert est is not None and est.ahead == 2 and est.seconds == pytest.approx(est.model / 2)
    e.customer_leave(late)  # left: not a wait to learn from (nor any longer ahead)
    est = e.estimate_for(never_asked)
    assert est is not None and est.ahead == 1 and est.seconds == pytest.approx(est.model / 2)  # all bands: band 1 has none


def test_the_snapshot_carries_the_estimates_last_published_of_the_reps_teams() -> None:
    clock, e = _engine(RoutingMode.LEAST_BUSY)
    e.add_team("hw", "Hardware")
    e.add_rep("c", "C", ["hw"])
    assert e.snapshot("a").estimates is msgspec.UNSET  # nothing estimated yet: left off
    e.publish_estimates()
    assert e.snapshot("a").estimates == {"net": EstimateView(0, 1, 15.0)}  # a rep with room: at once
    assert e.snapshot("c").estimates == {"hw": None}  # nobody served: no data
    assert e.snapshot("solo").estimates is msgspec.UNSET  # no team
    e.set_status("a", RepStatus.AWAY)
    e.set_status("b", RepStatus.AWAY)
    assert e.snapshot("a").estimates == {"net": EstimateView(0, 1, 15.0)}  # as published, not estimated afresh
    e.publish_estimates()
    assert e.snapshot("a").estimates == {"net": None}
