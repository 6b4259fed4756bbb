"""What a team's wait estimates play forward from (issue 14; :mod:`repconsole.core.forecast`).

The router tells it what it sees: sessions served out of a team queue and
when they end (the team's session lengths), members going away or coming
back (how long stretches away last), and any change to who is in what or
to offers (so that a forecast is made afresh).  :meth:`Outlook.forecast`
gives the team's :class:`~repconsole.core.forecast.Forecast`, made at most
once per ``REFRESH`` seconds of engine time per team, and only when
something changed since or it is ``MAX_AGE`` old: estimates are asked for
every connected waiting customer at each position refresh, and with tens of
thousands waiting the simulation must run once per team, not per customer.
Not persisted: a restarted server learns afresh (the rate model serves
until then).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterable

from repconsole.core.clock import Clock
from repconsole.core.forecast import Forecast, Member, slot_waits
from repconsole.core.model import Rep, RepStatus, Session, SessionState, StepKind

__all__ = ["KEEP", "MAX_AGE", "MAX_PLACES", "MIN_LENGTHS", "REFRESH", "REMAKES_PER_SECOND", "RUNS", "STALE_AT_MOST", "Outlook", "joined_at", "runs_for"]

KEEP = 500  # session lengths and stretches away remembered (the last)
MIN_LENGTHS = 20  # fewer ended sessions seen in a team: no forecast (the rate model only)
RUNS = 300  # runs of a forecast: fewer make the best point noisy (bench_estimate: 100 runs measured ~1 point worse)
# A run draws when each of the team's places frees, then plays MAX_PLACES forward: its cost grows with
# the places (measured: 29 us a run for 28 places, 83 us for 100).  A team with more places than
# REFERENCE_PLACES gets fewer runs, so that a forecast costs what one of bench_estimate's team (14 reps of
# 2) does, ~9 ms: 300 runs at 100 places took 25 ms, a stall of every command of a big routed team
# (bench_routing's p99 went from 8 to 28 ms).  More places also make the k-th one's time less spread,
# so fewer runs lose less; never fewer than MIN_RUNS.
REFERENCE_PLACES = 28
RUN_OVERHEAD = 11  # a run's fixed share (the heap, the places played forward), in places' worth of work
MIN_RUNS = 50
MAX_PLACES = 48  # places played forward; past them the forecast goes on at its own pace
REFRESH = 1.0  # seconds: a forecast younger than this is used even if something changed since
MAX_AGE = 10.0  # seconds: a forecast older than this is made afresh even if nothing changed
# Forecasts made per second of engine time, over all teams (a token bucket of this many): one costs
# ~10 ms of the event loop's thread, and any change anywhere makes every team's stale, so a site of 40
# routed teams would otherwise spend ~0.4 s of each second on them.  Over the budget a team keeps its
# last forecast up to STALE_AT_MOST old, else it gets the rate model's estimate.
REMAKES_PER_SECOND = 2.0
STALE_AT_MOST = 60.0


def runs_for(places: int) -> int:
    """The runs of a forecast for a team with ``places`` places (RUNS up to REFERENCE_PLACES, then fewer)."""
    work = max(places, REFERENCE_PLACES) + RUN_OVERHEAD
    return max(MIN_RUNS, RUNS * (REFERENCE_PLACES + RUN_OVERHEAD) // work)


def joined_at(s: Session, rep_id: str) -> float:
    """When ``rep_id`` joined ``s``: as a participant, or when they last accepted it as its owner."""
    at = s.participants.get(rep_id)
    if at is not None:
        return at
    for step in reversed(s.timeline):
        if step.by == rep_id and step.kind is StepKind.ACCEPTED:
            return step.at
    return s.created_at


class Outlook:
    """The teams' session lengths, the reps' stretches away, and each team's last forecast."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lengths: dict[str, deque[float]] = {}  # team -> lengths of the sessions served out of its queue
        self._serving: dict[str, tuple[str, float]] = {}  # session -> (the team it was served from, when)
        self._off_since: dict[str, float] = {}  # rep -> since when they have been away or disconnected
        self._spells: deque[float] = deque(maxlen=KEEP)  # stretches away that ended (any rep)
        self._forecasts: dict[str, tuple[Forecast, int, int]] = {}  # team -> (forecast, epoch, places)
        self._epoch = 0  # bumped by any change a forecast depends on
        self._tokens = (REMAKES_PER_SECOND, 0.0)  # forecasts that may be made now, and when that was counted
        self.remakes = 0  # forecasts made (tests and benchmarks count them)

    def add_team(self, team_id: str) -> None:
        self._lengths[team_id] = deque(maxlen=KEEP)

    def changed(self) -> None:
        """Something a forecast depends on changed (an offer made or closed)."""
        self._epoch += 1

    def rep_changed(self, rep: Rep) -> None:
        """The rep's status, connection, pause or capacity changed."""
        self._epoch += 1
        here = rep.connected and rep.status is RepStatus.AVAILABLE
        if not here:
            self._off_since.setdefault(rep.id, self._clock())
        elif (since := self._off_since.pop(rep.id, None)) is not None:
            self._spells.append(self._clock() - since)

    def session_changed(self, s: Session, served_from: str | None, old_in: frozenset[str], now_in: frozenset[str]) -> None:
        """Every session change; ``served_from``: the team queue it was just accepted out of."""
        if old_in != now_in:
            self._epoch += 1
        if served_from is not None:
            self._serving[s.id] = (served_from, self._clock())
        elif s.state is not SessionState.ACTIVE and self._serving:
            began = self._serving.pop(s.id, None)
            if began is not None and s.state is SessionState.ENDED:
                self._lengths[began[0]].append(self._clock() - began[1])

    def away_for(self, rep_id: str, now: float) -> float:
        """How long the rep has been away or disconnected (0 if not seen going)."""
        return now - self._off_since.get(rep_id, now)

    def forecast(self, team_id: str, places: int, members: Callable[[], Iterable[Member]],
                 answers: Iterable[float]) -> Forecast | None:  # fmt: skip
        """The team's forecast, covering ``places`` places (at most MAX_PLACES); None: too few sessions seen."""
        lengths = self._lengths[team_id]
        if len(lengths) < MIN_LENGTHS:
            return None
        now = self._clock()
        places = max(1, min(places, MAX_PLACES))
        cached = self._forecasts.get(team_id)
        if cached is not None:
            made, epoch, covered = cached
            age = now - made.at
            if 0 <= age < MAX_AGE and covered >= places and (epoch == self._epoch or age < REFRESH):
                return made
        if not self._take_token(now):
            return cached[0] if cached is not None and 0 <= now - cached[0].at < STALE_AT_MOST else None
        # Seeded from the engine's own state: the same commands at the same times give the same estimates.
        seed = (zlib.crc32(team_id.encode()) << 64) ^ (round(now * 1000) << 20) ^ self._epoch
        team = list(members())
        samples = slot_waits(team, sorted(lengths), sorted(answers), sorted(self._spells), places,
                             runs=runs_for(sum(len(m.ages) + m.empty for m in team)), seed=seed)  # fmt: skip
        made = Forecast(samples, now)
        self.remakes += 1
        self._forecasts[team_id] = (made, self._epoch, places)
        return made

    def _take_token(self, now: float) -> bool:
        """One forecast's worth of the budget (REMAKES_PER_SECOND), if there is one left."""
        tokens, at = self._tokens
        tokens = min(REMAKES_PER_SECOND, tokens + max(0.0, now - at) * REMAKES_PER_SECOND)
        if tokens < 1.0:
            self._tokens = (tokens, now)
            return False
        self._tokens = (tokens - 1.0, now)
        return True
