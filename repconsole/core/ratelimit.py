"""One rate limiter for every "at most N per window" rule.

Used for wrong session keys per address (the engine), failed logins per
username and sessions started per address (the server).

Design: a **sliding window log**, keeping per key only the times of its
last ``limit`` events.  A key is blocked while ``limit`` events fall within
the last ``window`` seconds, so it is free again exactly ``window`` seconds
after the oldest of them: "five wrong keys a minute" means what it says,
and "try again in a minute" is true.  A token bucket would need only one
number per key, but it lets a blocked caller back in one event at a time
(a bucket of 5 per 60 s refills one try every 12 s), which is neither what
users are told nor what the tests of these rules pin down; at the limits
used here (5 to a few dozen) the log costs a short list of floats per key.

Memory is bounded by the keys *active* within the last window: keys are
kept in order of their last event, so those idle for a whole window sit at
the front and every :meth:`hit` and :meth:`blocked` drops them from there,
in amortised O(1), with no timer and no scan.  A flood of distinct keys
(a botnet guessing session keys, one address each) is forgotten a window
after it stops.

Keys may be any hashable (a username, an address, a ``(username, address)``
pair, or one constant for a global cap).  The clock is injected: the
limiter never reads the time itself, and time as it sees it never runs
backwards (a clock stepped back counts as standing still), which keeps its
order of keys and each key's log sorted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["RateLimiter"]

K = TypeVar("K", bound=Hashable)


class RateLimiter(Generic[K]):
    """At most ``limit`` events per key within any ``window`` seconds.

    Attributes:
        limit: events allowed per window; may be changed at any time (a key
            that logged fewer than a raised limit just gets more room).
        window: the window, in seconds.
    """

    __slots__ = ("_clock", "_latest", "_log", "limit", "window")

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._latest = float("-inf")
        # key -> times of its last `limit` events, oldest first; keys in the
        # order of their last event, oldest first (move_to_end on each event).
        self._log: OrderedDict[K, list[float]] = OrderedDict()

    def _now(self) -> float:
        self._latest = max(self._latest, self._clock())
        return self._latest

    def _forget_idle(self, cutoff: float) -> None:
        log = self._log
        while log:
            key, times = next(iter(log.items()))
            if times[-1] > cutoff:
                return
            del log[key]

    def hit(self, key: K) -> None:
        """Count one event for ``key`` (a failure, a start: whatever is being limited)."""
        now = self._now()
        self._forget_idle(now - self.window)
        times = self._log.get(key)
        if times is None:
            self._log[key] = [now]
            return
        self._log.move_to_end(key)
        times.append(now)
        if len(times) > self.limit:
            del times[: len(times) - self.limit]

    def blocked(self, key: K) -> bool:
        """Whether ``key`` has had ``limit`` events within the last ``window`` seconds."""
        cutoff = self._now() - self.window
        self._forget_idle(cutoff)
        times = self._log.get(key)
        # Events at exactly now - window have left the window.
        return times is not None and len(times) >= self.limit and times[-self.limit] > cutoff

    def clear(self, key: K) -> None:
        """Forget ``key``'s events (a login that succeeded)."""
        self._log.pop(key, None)

    def prune(self) -> None:
        """Forget every key idle for a whole window now (hit() and blocked() also do, as they go)."""
        self._forget_idle(self._now() - self.window)

    def __len__(self) -> int:
        """Keys remembered: at most those with an event within the last window (after any call)."""
        return len(self._log)
