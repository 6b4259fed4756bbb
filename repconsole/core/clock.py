"""Clocks the engine can be given.

The engine never reads the time itself: it calls the clock it was given.
Production code passes :func:`time.monotonic` (or wall time, for a server
that must survive restarts); tests pass a :class:`ManualClock` and move
time by hand.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]

__all__ = ["Clock", "ManualClock"]


class ManualClock:
    """A clock that only moves when told to.

    Attributes:
        now: the current time in seconds.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self.now += seconds
        return self.now
