"""When the next places in a team queue free up (issue 14): a small seeded simulation of the team now.

The dequeue rate of the last 30 minutes (:mod:`repconsole.core.estimate`)
is a steady state; what the engine knows *now* says more about the next
few minutes: which members take offers, the sessions each is in and how
long each has gone on, who is away and for how long already.  For a team
queue, :func:`slot_waits` plays the next ``k_max`` places forward ``runs``
times:

* a session in progress of age ``a`` ends after ``d - a``, ``d`` drawn
  from the team's recent session lengths longer than ``a`` (the empirical
  conditional residual: a session that has gone on 10 minutes is not a
  new one);
* its member's place then goes to the next in line, after an offer's
  answer (drawn from the team's recent answers), for a new session (a
  length drawn from the same lengths), whose end frees the place again;
* a member who is away (or disconnected) frees nothing until they are
  back: after a stretch drawn from the stretches away the engine saw end
  that were longer than theirs so far (none: not back within sight); one
  who paused offers is back when the pause ends.  What they were in ends
  meanwhile, and their places free when they are back;
* offers out and room now are places taken by sessions starting now.

The wait of the ``k``-th in line (after those served at once) is the time
the ``k``-th place frees plus the answer to its offer.  :class:`Forecast`
keeps, per ``k``, the point within 25% of the most samples (:func:`relative_mode`, what bench_estimate scores) and
quantiles for the range.

Pure and deterministic: the caller hands in a seed (the engine's from its
own state), no clock, no engine.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HIGH", "LOW", "Forecast", "Member", "relative_mode", "slot_waits"]

LOW, HIGH = 0.05, 0.95  # the range's quantiles of the simulated waits


@dataclass(frozen=True, slots=True)
class Member:
    """One member's places: ``ages`` (seconds) of the sessions holding one, ``empty`` places (room, offers out).

    ``back``: seconds until they take offers again (0: now; a pause's end); ``away``: how long
    they have been away, when they will be back is not known (then ``back`` is not used).
    """

    ages: tuple[float, ...]
    empty: int = 0
    back: float = 0.0
    away: float | None = None


def _draw(values: Sequence[float], above: float, u: float) -> float | None:
    """One of the sorted ``values`` longer than ``above``, less ``above`` (a conditional residual); None: none is."""
    i = bisect.bisect_right(values, above)
    n = len(values)
    if i >= n:
        return None
    return values[i + int(u * (n - i))] - above


def slot_waits(
    members: Sequence[Member],
    durations: Sequence[float],
    answers: Sequence[float],
    spells: Sequence[float],
    k_max: int,
    *,
    runs: int,
    seed: int,
) -> list[list[float]]:
    """Samples of the wait for the ``k``-th next place (``k`` = 1..``k_max``), each sorted; ``inf``: not in sight.

    ``durations``, ``answers``, ``spells``: sorted, the team's recent session lengths and offer
    answers and the stretches away the engine saw end.  Empty ``durations``: no samples.
    """
    out: list[list[float]] = [[] for _ in range(max(0, k_max))]
    n = len(durations)
    if n == 0 or k_max <= 0:
        return out
    rand = random.Random(seed).random
    na, inf = len(answers), math.inf
    # Older than every session seen: the rest is drawn from an exponential of a quarter of the median length.
    tail = max(60.0, durations[n // 2] / 4)
    starts = [[bisect.bisect_right(durations, a) for a in m.ages] for m in members]
    for _ in range(runs):
        # When each place frees next.  A place frees no sooner than its member is back, so what
        # follows (a new session after it) ends later than that anyway: the heap needs only times.
        heap: list[float] = []
        for m, st in zip(members, starts, strict=True):
            back = m.back
            if m.away is not None:
                d = _draw(spells, m.away, rand())
                if d is None:
                    continue  # not back within sight: their places free nothing
                back = d
            for a, i in zip(m.ages, st, strict=True):
                u = rand()
                r = durations[i + int(u * (n - i))] - a if i < n else -tail * math.log(1.0 - u)
                heap.append(r if r > back else back)
            for _ in range(m.empty):
                if back > 0:
                    heap.append(back)
                else:  # taken now by someone served at once
                    heap.append((answers[int(rand() * na)] if na else 0.0) + durations[int(rand() * n)])
        if not heap:
            for samples in out:
                samples.append(inf)
            continue
        heapq.heapify(heap)
        for samples in out:
            t = heap[0]
            answer = answers[int(rand() * na)] if na else 0.0
            heapq.heapreplace(heap, t + answer + durations[int(rand() * n)])
            samples.append(t + answer)
    for samples in out:
        samples.sort()
    return out


def relative_mode(samples: Sequence[float], tolerance: float = 0.25) -> float:
    """A point within ``tolerance`` of the most of the sorted, positive ``samples``, as bench_estimate scores a
    wait (``|p - v| <= 0.25 v``: :func:`best_point <repconsole.core.estimate.best_point>`, in one pass).

    The values a point is within 25% of lie in a window ``[v, v * 1.25 / 0.75]``; for the fullest
    window starting at a sample, the point is the middle of those within 25% of all of it (not its
    edge, where rounding could lose one); among equally full ones, the one nearest the median.
    """
    n = len(samples)
    median = samples[n // 2]
    lo_f, hi_f = 1 - tolerance, 1 + tolerance
    reach = hi_f / lo_f
    right, most, point = 0, -1, median
    for i, v in enumerate(samples):
        top = v * reach
        while right < n and samples[right] <= top:
            right += 1
        count = right - i
        p = (lo_f * samples[right - 1] + hi_f * v) / 2
        if count > most or (count == most and abs(p - median) < abs(point - median)):
            most, point = count, p
    return point


class Forecast:
    """Per ``k`` (1..``places``): the point estimate and the range's ends in seconds, as of engine time ``at``.

    Worked out per place when first asked (a customer asks for one place, the consoles for the last).
    """

    __slots__ = ("_done", "_samples", "at")

    def __init__(self, samples: list[list[float]], at: float) -> None:
        self.at = at
        self._samples = samples
        self._done: dict[int, tuple[float, float, float] | None] = {}

    @property
    def places(self) -> int:
        return len(self._samples)

    def place(self, k: int) -> tuple[float, float, float] | None:
        """The ``k``-th place's (point, low, high) as of ``at``; None: too many runs see no place free in time."""
        if k in self._done:
            return self._done[k]
        s = self._samples[k - 1]
        n = len(s)
        high = s[math.ceil(HIGH * (n - 1))] if n else math.inf
        got = None
        if high < math.inf:
            finite = s if s[-1] < math.inf else [v for v in s if v < math.inf]
            got = (relative_mode(finite), s[int(LOW * (n - 1))], high)
        self._done[k] = got
        return got

    def wait(self, k: int, now: float) -> tuple[float, float, float] | None:
        """The ``k``-th place's (point, low, high) seen at ``now`` (a little after ``at``: that much less); None: not known."""
        size = self.places
        if k < 1 or size == 0:
            return None
        got = self.place(min(k, size))
        if got is None:
            return None
        if k > size:
            # Past the places played forward: on at the pace of their second half, the range as wide relatively.
            half = self.place(size // 2) if size >= 2 else None
            if half is None or got[0] <= half[0]:
                return None
            point = got[0] + (k - size) * (got[0] - half[0]) / (size - size // 2)
            got = (point, point * got[1] / got[0], point * got[2] / got[0])
        gone = max(0.0, now - self.at)
        return max(got[0] - gone, 0.0), max(got[1] - gone, 0.0), max(got[2] - gone, 0.0)
