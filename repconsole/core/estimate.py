"""Wait estimates (issue 14): how long a waiting customer should expect to wait, as pure functions.

The model (docs/architecture.md, "Wait estimates"):

* A team queue is served at a rate ``r``: the customers it served
  (accepted out of it, by pull or by offer) in the last ``window``
  seconds, divided by the time observed (the window, or less when the
  engine has not been running that long).  Fewer than ``MIN_SERVED``
  served: no data.
* The first ``free_slots`` customers in line are served at once: in a
  routed team an offer goes out to a rep with room as soon as they arrive,
  and a customer whose offer is out is being served already (the engine
  counts open offers among the free slots).  Their wait is about one
  offer's answer (``soon``): the point within 25% of the most of the
  team's last 200 answers (:func:`best_point`; answers are skewed, so it
  lies above their median), 15 s until it has seen ``MIN_SERVED``.  The
  others wait for ``k = position - free_slots`` more customers to be
  served: the model says ``k / r``.
* The model is calibrated by what it got wrong lately (:class:`Calibration`):
  the point estimate is ``k / r`` times the median of ``actual / model``
  over the team's last 200 served customers with about as many ahead
  (bands 1, 2-3, 4-7, ...), each compared with the first number they were
  shown.  The ranges scale with it.
* Served customers come and go roughly like a Poisson process, so the time
  to the ``k``-th is about Gamma(k, r): relative spread ``1/sqrt(k)``; the
  rate measured from ``n`` customers adds about ``1/sqrt(n)``.  The range
  is the point estimate times ``1 ± Z * sqrt(1/k + 1/n)`` with ``Z`` the
  normal's 90th percentile, so about 90% of customers should be served by
  its end (the issue asks for 80%), rounded out to whole minutes.
* Nobody who could serve the queue (no member connected and available):
  no data.  "No data" is never a number: the page says "we are busier
  than usual".

* A routed team that has seen enough of its sessions end is estimated by
  playing its members' sessions forward instead (:mod:`repconsole.core.forecast`,
  :func:`forecast_wait`); the model above stays the fallback, and its
  calibration keeps learning.

Nothing here reads a clock or the engine: the engine hands in what it saw.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repconsole.protocol.views import EstimateView

if TYPE_CHECKING:
    from repconsole.core.forecast import Forecast

__all__ = [
    "MIN_SERVED",
    "SOON",
    "TOLERANCE",
    "WINDOW",
    "Calibration",
    "ServedLog",
    "WaitEstimate",
    "Z",
    "answer_time",
    "best_point",
    "describe",
    "estimate_wait",
    "forecast_wait",
    "served_rate",
    "wait_at_rate",
]

WINDOW = 1800.0  # seconds of history the rate is measured over
MIN_SERVED = 3  # fewer served customers than this in the window: no data
Z = 1.2816  # the standard normal's 90th percentile
TOLERANCE = 0.25  # the measure of a good point estimate: within 25% of the actual wait
SOON = 15.0  # the point estimate when a rep has room now, until the team's offers have been answered a few times


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """A wait: the point estimate in seconds and a range in whole minutes (``low`` < ``high``).

    ``ahead``: the customers to be served before this one (0: served at once); ``model``: the
    point estimate before calibration (``ahead / rate``), what :class:`Calibration` learns from.
    """

    seconds: float
    low: int
    high: int
    ahead: int = 0
    model: float = 0.0

    def view(self) -> EstimateView:
        return EstimateView(self.low, self.high, round(self.seconds, 1))


class ServedLog:
    """When a team queue's customers were served (accepted out of it), the last ``keep``; engine times.

    Attributes:
        since: when the log began (the rate of a young log is measured over its life, not the whole window).
    """

    __slots__ = ("_times", "since")

    def __init__(self, since: float, keep: int = 1000) -> None:
        self.since = since
        self._times: deque[float] = deque(maxlen=keep)

    def add(self, at: float) -> None:
        self._times.append(at)

    def times(self) -> Iterable[float]:
        return self._times


def best_point(values: Iterable[float], tolerance: float = TOLERANCE) -> float | None:
    """The point within ``tolerance`` (relative) of the most of ``values``; None without values.

    A point ``p`` is within 25% of a value ``v`` when ``|p - v| <= 0.25 v`` (relative to the value,
    as bench_estimate scores a wait), i.e. ``0.75 v <= p <= 1.25 v``: the best ``p`` is a mode in
    relative terms, which need not be the median (for values spread evenly over 1-8 it lies above
    it, as the window ``[p / 1.25, p / 0.75]`` is wider at larger ``p``).  Among equally good
    points, the one nearest the median.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    n = len(ordered)
    median = ordered[n // 2]
    lo_f, hi_f = 1 - tolerance, 1 + tolerance
    # How many values each candidate p (v * lo_f, v, v * hi_f for every v) is within tolerance of:
    # those with p / hi_f <= v <= p / lo_f.  Candidates of one kind grow with v, and so do their
    # windows' ends: one pass of two pointers per kind, not a bisection per candidate (a forecast
    # asks this of 300 samples for each of 48 places).
    counts: list[list[int]] = []
    for f in (lo_f, 1.0, hi_f):
        row: list[int] = []
        left = right = 0
        for v in ordered:
            p = v * f if f != 1.0 else v
            top, bottom = p / lo_f, p / hi_f
            while right < n and ordered[right] <= top:
                right += 1
            while left < n and ordered[left] < bottom:
                left += 1
            row.append(right - left)
        counts.append(row)
    most = max(max(row) for row in counts)
    point, nearest = median, math.inf
    for i, v in enumerate(ordered):
        for j, p in enumerate((v * lo_f, v, v * hi_f)):
            if counts[j][i] == most and abs(p - median) < nearest:
                point, nearest = p, abs(p - median)
    return point


def answer_time(answers: Iterable[float]) -> float:
    """How long offers take to be accepted: the best point (:func:`best_point`) of ``answers``, SOON below MIN_SERVED."""
    ordered = list(answers)
    if len(ordered) < MIN_SERVED:
        return SOON
    return best_point(ordered) or SOON


def served_rate(served_at: Iterable[float], now: float, *, since: float, window: float = WINDOW) -> tuple[int, float] | None:
    """``(n, rate)``: the customers served in the last ``window`` (or since ``since``) and per second; None below MIN_SERVED."""
    start = max(now - window, since)
    span = now - start
    n = sum(1 for t in served_at if start < t <= now)
    if n < MIN_SERVED or span <= 0:
        return None
    return n, n / span


class Calibration:
    """How the model's waits compared with the real ones lately: the ratios ``actual / model`` by band of ``ahead``.

    The model's ``ahead / rate`` is a steady-state figure; a team's real waits are shorter or
    longer in ways it does not see (the first completion comes sooner than a whole session, as
    sessions in progress are part done; customers ahead give up; breaks and shifts move the
    capacity).  Each served customer who was shown a number tells how far off it was; the point
    estimate is the model's times the median of the last ``keep`` ratios of its band (1, 2-3,
    4-7, 8-15, 16-31, 32 or more ahead), or of all bands while the band has fewer than
    ``least``, or 1 while all have.
    """

    __slots__ = ("_all", "_bands", "_factors", "least")

    BANDS = 6

    def __init__(self, keep: int = 200, least: int = 20) -> None:
        self.least = least
        self._bands: list[deque[float]] = [deque(maxlen=keep) for _ in range(self.BANDS)]
        self._all: deque[float] = deque(maxlen=keep)
        self._factors: dict[int, float] = {}  # by band, until the next ratio: estimates are asked far more often

    @classmethod
    def band(cls, ahead: int) -> int:
        return min(max(ahead, 1).bit_length() - 1, cls.BANDS - 1)

    def add(self, ahead: int, ratio: float) -> None:
        if ahead < 1 or not ratio > 0:
            return
        self._bands[self.band(ahead)].append(ratio)
        self._all.append(ratio)
        self._factors.clear()

    def factor(self, ahead: int) -> float:
        band = self.band(ahead)
        factor = self._factors.get(band)
        if factor is None:
            factor = self._factors[band] = self._factor(band)
        return factor

    def _factor(self, band: int) -> float:
        ratios = self._bands[band]
        if len(ratios) < self.least:
            ratios = self._all
        if len(ratios) < self.least:
            return 1.0
        ordered = sorted(ratios)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _minutes(low: float, high: float) -> tuple[int, int]:
    """A range in seconds as whole minutes, rounded outwards (at least a minute wide); past 10 minutes to fives."""
    lo = math.floor(low / 60)
    hi = max(math.ceil(high / 60), lo + 1)
    if hi > 10:
        lo = lo // 5 * 5
        hi = -(-hi // 5) * 5
    return lo, hi


def estimate_wait(
    position: int,
    served_at: Iterable[float],
    now: float,
    *,
    since: float,
    free_slots: int = 0,
    serving: bool = True,
    window: float = WINDOW,
    soon: float = SOON,
    calibration: Calibration | None = None,
) -> WaitEstimate | None:
    """The wait of the customer at ``position`` (1: next) in a team queue; None: no data.

    ``free_slots``: offers that can go out at once (routed teams: the free
    capacity of the members who take offers, and the offers already out; 0
    for a pull-only team, where nobody is bound to take the next customer
    now).  ``serving``: someone could serve the queue at all (a member
    connected and available).  ``soon``: the wait of a customer served at
    once (how long offers take to be answered).
    """
    if position < 1:
        raise ValueError("a position starts at 1")
    if free_slots >= position:
        return WaitEstimate(soon, 0, 1)
    if not serving:
        return None
    rate = served_rate(served_at, now, since=since, window=window)
    return wait_at_rate(position, rate, free_slots=free_slots, soon=soon, calibration=calibration)


def wait_at_rate(position: int, rate: tuple[int, float] | None, *, free_slots: int = 0, serving: bool = True,
                 soon: float = SOON, calibration: Calibration | None = None) -> WaitEstimate | None:  # fmt: skip
    """:func:`estimate_wait` with the rate measured already (:func:`served_rate`'s answer, None: too few served).

    The same answer for the same inputs: a refresh of every waiting customer measures each team's
    rate once (it walks up to 1,000 served times) and asks this per customer.
    """
    if position < 1:
        raise ValueError("a position starts at 1")
    if free_slots >= position:
        return WaitEstimate(soon, 0, 1)
    if not serving or rate is None:
        return None
    n, r = rate
    k = position - max(0, free_slots)
    model = k / r
    point = model * (calibration.factor(k) if calibration is not None else 1.0)
    spread = Z * math.sqrt(1 / k + 1 / n)
    return WaitEstimate(point, *_minutes(point * max(0.0, 1 - spread), point * (1 + spread)), k, model)


def forecast_wait(forecast: Forecast, ahead: int, now: float, *, model: float = 0.0) -> WaitEstimate | None:
    """The wait of a customer with ``ahead`` to be served first, from a team's forecast; None: it sees no number."""
    got = forecast.wait(ahead, now)
    if got is None:
        return None
    point, low, high = got
    return WaitEstimate(point, *_minutes(low, high), ahead, model)


def describe(estimate: WaitEstimate | EstimateView | None) -> str:
    """What a customer reads: "about 2–4 minutes", "less than a minute", or the honest "no data"."""
    if estimate is None:
        return "We are busier than usual."
    if estimate.high <= 1:
        return "less than a minute"
    if estimate.low == 0:
        return f"less than {estimate.high} minutes"
    return f"about {estimate.low}–{estimate.high} minutes"
