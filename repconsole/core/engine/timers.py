"""The engine's timers: waiting-session rules, grace periods, offers and paused offers, soonest first."""

from __future__ import annotations

import heapq
from typing import Literal

__all__ = ["TimerKind", "Timers"]

# "rule" and "offer" (an offer's deadline): the target is a session id;
# "grace" and "resume" (the end of a rep's pause of offers): a rep id.
TimerKind = Literal["rule", "grace", "offer", "resume"]

# A timer is (deadline, order, kind, target): a plain tuple, because the heap
# compares them constantly and tuple comparison runs in C.
_Timer = tuple[float, int, TimerKind, str]


class Timers:
    """A heap of deadlines.

    Timers are never cancelled: a timer whose reason went away (the session
    was accepted, the rep came back) stays in the heap and is recognised as
    stale when it fires, which is cheaper than finding and removing it.
    """

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[_Timer] = []
        self._order = 0

    def add(self, deadline: float, kind: TimerKind, target: str) -> None:
        self._order += 1
        heapq.heappush(self._heap, (deadline, self._order, kind, target))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[float, TimerKind, str] | None:
        """The soonest timer if it is due at ``now``, removed; else None.

        A plain call rather than a generator: the driver may ask after every
        command, and nothing is due almost every time.
        """
        heap = self._heap
        if heap and heap[0][0] <= now:
            deadline, _, kind, target = heapq.heappop(heap)
            return deadline, kind, target
        return None
