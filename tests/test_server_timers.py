"""The server's clock (repconsole.server.timers): the virtual one tests drive, and the real one.

The virtual clock is what every timer test of the server stands on, so its
rules are pinned here: nothing fires on its own; advance() runs what falls
due, in order of due time then of scheduling, each at its own time; a
callback may schedule more, which runs in the same advance if due within it.
The wall clock is checked against a fake wall that jumps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from conftest import TIMEOUT_SCALE
from server_helpers import run

from repconsole.server.timers import ServerClock, Timer, VirtualClock, WallClock

T0 = 1_800_000_000.0


def recorder(clock: ServerClock, log: list[tuple[str, float]]) -> Callable[[str], Callable[[], None]]:
    """``note(name)``: a callback that logs its name and the clock's time when it runs."""

    def note(name: str) -> Callable[[], None]:
        return lambda: log.append((name, clock.now()))

    return note


# ------------------------------------------------------------ the virtual clock


def test_a_virtual_clock_stands_still_until_advanced() -> None:
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []
    clock.call_later(0, recorder(clock, log)("now"))
    assert clock.now() == clock.monotonic() == clock() == T0
    assert log == [] and clock.pending() == [T0]
    assert clock.advance(0) == 1 and log == [("now", T0)]
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert clock.advance_to(T0 - 5) == 0 and clock.now() == T0  # never backwards


def test_advance_fires_in_order_of_due_time_then_of_scheduling_each_at_its_time() -> None:
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []
    note = recorder(clock, log)
    clock.call_at(T0 + 30, note("c"))
    clock.call_later(10, note("a"))
    clock.call_at(T0 + 20, note("b1"))
    clock.call_at(T0 + 20, note("b2"))  # same time: after b1, scheduled first
    clock.call_at(T0 + 60, note("later"))
    assert clock.advance(30) == 4
    assert log == [("a", T0 + 10), ("b1", T0 + 20), ("b2", T0 + 20), ("c", T0 + 30)]
    assert clock.now() == T0 + 30 and clock.pending() == [T0 + 60]
    assert clock.advance(29.999) == 0
    assert clock.advance(0.001) == 1 and log[-1] == ("later", T0 + 60)


def test_a_cancelled_timer_never_fires() -> None:
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []
    note = recorder(clock, log)
    kept, dropped = clock.call_later(5, note("kept")), clock.call_later(5, note("dropped"))
    dropped.cancel()
    assert dropped.cancelled() and not dropped.pending() and kept.pending()
    assert clock.pending() == [T0 + 5]
    assert clock.advance(10) == 1 and log == [("kept", T0 + 5)]
    assert not kept.pending() and not kept.cancelled()
    kept.cancel()  # after it ran: harmless
    assert not kept.cancelled()


def test_a_callback_can_cancel_and_re_arm_within_one_advance() -> None:
    """Timers scheduled by a callback run in the same advance if they fall due within it:
    advance(60) is advance(30) twice."""
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []
    note = recorder(clock, log)
    victim = clock.call_at(T0 + 15, note("victim"))

    def every_ten() -> None:
        log.append(("tick", clock.now()))
        clock.call_later(10, every_ten)

    def canceller() -> None:
        victim.cancel()
        clock.call_at(clock.now(), note("due at once"))  # due now: runs next, in this advance

    clock.call_later(10, every_ten)
    clock.call_at(T0 + 12, canceller)
    assert clock.advance(35) == 5
    assert log == [("tick", T0 + 10), ("due at once", T0 + 12), ("tick", T0 + 20), ("tick", T0 + 30)]
    assert clock.pending() == [T0 + 40]


def test_a_failing_callback_stops_the_advance_at_its_time() -> None:
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []

    def boom() -> None:
        raise RuntimeError("boom")

    clock.call_later(1, boom)
    clock.call_later(2, recorder(clock, log)("after"))
    with pytest.raises(RuntimeError, match="boom"):
        clock.advance(5)
    assert clock.now() == T0 + 1 and clock.pending() == [T0 + 2] and log == []
    assert clock.advance(4) == 1 and log == [("after", T0 + 2)] and clock.now() == T0 + 5


def test_time_cannot_move_from_inside_a_callback() -> None:
    clock = VirtualClock(T0)
    clock.call_later(1, lambda: clock.advance(1))
    with pytest.raises(RuntimeError, match="from a timer callback"):
        clock.advance(1)


def test_a_timeout_on_the_virtual_clock_expires_only_when_advanced() -> None:
    async def main() -> None:
        clock = VirtualClock(T0)
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def wait() -> None:
            async with clock.timeout(10):
                await never

        task = asyncio.ensure_future(wait())
        await asyncio.sleep(0)  # into the timeout
        clock.advance(9.999)
        await asyncio.sleep(0)
        assert not task.done()
        clock.advance(0.001)
        with pytest.raises(TimeoutError):
            await task
        # A body that finishes in time leaves no timer behind.
        async with clock.timeout(10):
            await asyncio.sleep(0)
        assert clock.pending() == []

    run(main(), 5)


# --------------------------------------------------------------- the wall clock


class FakeWall:
    """A wall clock that moves only when told (and may jump either way)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def _until(check: Callable[[], bool], seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds * TIMEOUT_SCALE):
        while not check():
            await asyncio.sleep(0.005)


def test_the_wall_clock_notices_a_jump_forward_within_its_recheck_interval() -> None:
    async def main() -> None:
        wall = FakeWall()
        clock = WallClock(wall=wall, max_sleep=0.02)
        log: list[tuple[str, float]] = []
        note = recorder(clock, log)
        clock.call_at(T0 + 3600, note("in an hour"))
        clock.call_at(T0 - 1, note("overdue"))  # already due: runs soon
        await _until(lambda: len(log) == 1)
        assert log == [("overdue", T0)]
        await asyncio.sleep(0.05)  # a few re-checks: the wall has not moved
        assert len(log) == 1
        wall.now += 3600  # NTP, a resumed VM: the loop's monotonic timers would not notice
        await _until(lambda: len(log) == 2)
        assert log[1] == ("in an hour", T0 + 3600)

    run(main(), 5)


def test_the_wall_clock_never_fires_early_when_the_wall_goes_back() -> None:
    async def main() -> None:
        wall = FakeWall()
        clock = WallClock(wall=wall, max_sleep=0.02)
        log: list[tuple[str, float]] = []
        timer = clock.call_at(T0 + 10, recorder(clock, log)("due"))
        wall.now -= 3600
        await asyncio.sleep(0.1)
        assert log == [] and timer.pending()
        wall.now = T0 + 10
        await _until(lambda: bool(log))
        assert log == [("due", T0 + 10)]  # at its time on the wall clock: never before

    run(main(), 5)


def test_the_wall_clock_runs_delays_on_the_loop_and_cancels() -> None:
    async def main() -> None:
        wall = FakeWall()
        clock = WallClock(wall=wall)
        log: list[tuple[str, float]] = []
        note = recorder(clock, log)
        clock.call_later(0.01, note("soon"))
        dropped: Timer = clock.call_later(0.01, note("dropped"))
        dropped.cancel()
        wall.now -= 86400  # a delay does not follow the wall clock
        await _until(lambda: bool(log))
        await asyncio.sleep(0.03)
        assert [name for name, _ in log] == ["soon"] and dropped.cancelled()
        # The login timeout's form: TimeoutError after the delay, on the loop.
        with pytest.raises(TimeoutError):
            async with clock.timeout(0.01):
                await asyncio.sleep(10)

    run(main(), 5)


def test_the_real_wall_clock_is_the_default_and_fires_a_hair_late() -> None:
    async def main() -> None:
        clock = WallClock()
        fired: list[float] = []
        when = clock.now() + 0.02
        clock.call_at(when, lambda: fired.append(clock.now()))
        await _until(lambda: bool(fired))
        assert fired[0] >= when  # the engine's advance() must find its deadline due

    run(main(), 5)
