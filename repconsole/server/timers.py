"""The server's clock: what time it is, and callbacks at given times.

Every timer of the server goes through one :class:`ServerClock`: the
engine's rule deadlines and grace periods, customer grace, position
refreshes, housekeeping (resume window, expired tokens and keys), the login
timeout.  So a test can give the server a :class:`VirtualClock` and move
time itself: a 120 s grace period ends in microseconds, exactly when due,
and nothing sleeps.

Two readings of time:

* :meth:`ServerClock.now`: seconds since the Unix epoch.  The engine's
  times, token expiries and everything stored are on it: a rule deadline
  must mean the same instant after a restart.  :meth:`~ServerClock.call_at`
  takes a time on it.
* :meth:`ServerClock.monotonic`: for durations only (rate-limit windows).
  :meth:`~ServerClock.call_later` and :meth:`~ServerClock.timeout` measure
  their delay on it.  A wall clock can jump (NTP, a suspended VM); a
  120 s grace period should still last 120 s.

What does *not* go through here: transport pacing that decides nothing
about the site (websockets' pings and open/close timeouts, the fan-out's
ticks, the shutdown grace).  Those stay on the event loop's
own clock, so that events flow under a virtual clock without a test having
to move time for every frame.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["MAX_TIMER_SLEEP", "ServerClock", "Timer", "VirtualClock", "WallClock"]

# A wall-clock timer sleeps at most this long before it looks at the wall
# clock again: the clock can jump, and the loop's timers run on a monotonic
# clock that does not follow it.
MAX_TIMER_SLEEP = 60.0
# Wall-clock timers fire a hair late rather than early: the loop's clock and
# the wall clock are different clocks, and a callback that checks "is it due?"
# (the engine's advance()) must find that it is.
_LATE = 0.001


class Timer:
    """A callback scheduled on a :class:`ServerClock`.

    Attributes:
        when: the time it is due (on :meth:`ServerClock.now`; for
            :meth:`~ServerClock.call_later` on a wall clock, an estimate).
    """

    __slots__ = ("_callback", "_handle", "_state", "when")

    _PENDING, _CANCELLED, _DONE = 0, 1, 2

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self._callback: Callable[[], object] | None = callback
        self._state = Timer._PENDING
        # The loop timer a WallClock keeps for it (None on a VirtualClock).
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        """Never call it (harmless once it ran or was cancelled)."""
        if self._state == Timer._PENDING:
            self._state = Timer._CANCELLED
            self._callback = None  # drop what it holds: a cancelled timer may wait long in a heap
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None

    def cancelled(self) -> bool:
        return self._state == Timer._CANCELLED

    def pending(self) -> bool:
        """Neither run nor cancelled."""
        return self._state == Timer._PENDING

    def _run(self) -> None:
        if self._state != Timer._PENDING:
            return
        callback = self._callback
        self._state, self._callback, self._handle = Timer._DONE, None, None
        assert callback is not None
        callback()

    def __repr__(self) -> str:
        state = ("pending", "cancelled", "done")[self._state]
        return f"<Timer when={self.when:.3f} {state}>"


class ServerClock(ABC):
    """The time, and timers, for one server.

    A ServerClock is also a plain clock (``clock()`` is ``clock.now()``), so
    that it can be given as is to the engine and to anything else that takes
    a ``Callable[[], float]``.
    """

    def __call__(self) -> float:
        return self.now()

    @abstractmethod
    def now(self) -> float:
        """Seconds since the Unix epoch, on this clock."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, to measure durations (any origin)."""

    @abstractmethod
    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` once :meth:`now` reaches ``when`` (soon, if it has already)."""

    @abstractmethod
    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` once ``delay`` seconds (measured as :meth:`monotonic`) have passed."""

    @asynccontextmanager
    async def timeout(self, delay: float) -> AsyncIterator[None]:
        """:func:`asyncio.timeout` on this clock: the body is cancelled and
        :class:`TimeoutError` raised once ``delay`` seconds have passed."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as expiry:
            # Expire now, on the loop: asyncio.Timeout does the cancelling and
            # turns it into TimeoutError, exactly as with a loop deadline.
            timer = self.call_later(delay, lambda: expiry.reschedule(loop.time()))
            try:
                yield
            finally:
                timer.cancel()


class WallClock(ServerClock):
    """The real clock: the wall clock for :meth:`now`, the event loop's timers underneath.

    Args:
        wall: the wall clock (injectable to test how jumps are handled).
        max_sleep: a :meth:`call_at` timer looks at the wall clock again
            at least this often, so that a jump forward is noticed within
            ``max_sleep`` and a jump back does not fire anything early.
        loop: the event loop for the timers; by default the running one,
            looked up when a timer is scheduled.
    """

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        max_sleep: float = MAX_TIMER_SLEEP,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._wall = wall
        self.max_sleep = max_sleep
        self._loop = loop

    def now(self) -> float:
        return self._wall()

    def monotonic(self) -> float:
        return time.monotonic()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop if self._loop is not None else asyncio.get_running_loop()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(when, callback)
        self._arm(timer)
        return timer

    def _arm(self, timer: Timer) -> None:
        left = timer.when - self._wall()
        delay = 0.0 if left <= 0 else min(left + _LATE, self.max_sleep)
        timer._handle = self._event_loop().call_later(delay, self._check, timer)

    def _check(self, timer: Timer) -> None:
        if not timer.pending():
            return
        if timer.when <= self._wall():
            timer._run()
        else:
            # Woken for a re-check (max_sleep), or the wall clock went back: sleep again.
            self._arm(timer)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        # On the loop's monotonic clock: a jump of the wall clock neither
        # shortens nor stretches a delay.
        timer = Timer(self._wall() + delay, callback)
        timer._handle = self._event_loop().call_later(delay, timer._run)
        return timer


class VirtualClock(ServerClock):
    """A clock for tests: time stands still until :meth:`advance` moves it.

    Nothing fires on its own.  :meth:`advance` moves time forward one due
    timer at a time, in order of due time (then of scheduling), and runs each
    with :meth:`now` equal to its due time; a timer scheduled by a callback
    runs in the same :meth:`advance` if it falls due within it.  A timer
    whose time has already come (a deadline that passed while a server was
    down) runs at the next :meth:`advance`, ``advance(0)`` included.

    A callback's exception propagates out of :meth:`advance`; the clock then
    stands at that callback's time and the later timers are still pending.

    :meth:`monotonic` is :meth:`now`: virtual time has no jumps.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()  # ties fire in the order they were scheduled
        self._advancing = False

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return self.call_at(self._now + delay, callback)

    def pending(self) -> list[float]:
        """The due times of the timers not yet run or cancelled, soonest first."""
        return sorted(when for when, _, timer in self._heap if timer.pending())

    def advance(self, seconds: float) -> int:
        """Move time ``seconds`` forward, running every timer that falls due.  Returns how many ran."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        return self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> int:
        """Move time forward to ``when`` (not back), running every timer due by then."""
        if self._advancing:
            # From inside a callback, time would move under the callbacks still due before it.
            raise RuntimeError("advance() called from a timer callback")
        target = max(when, self._now)
        ran = 0
        self._advancing = True
        try:
            heap = self._heap
            while heap and heap[0][0] <= target:
                due, _, timer = heapq.heappop(heap)
                if not timer.pending():
                    continue
                self._now = max(self._now, due)  # a timer set in the past runs now: time never goes back
                ran += 1
                timer._run()
            self._now = target
        finally:
            self._advancing = False
        return ran
