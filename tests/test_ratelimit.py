"""repconsole.core.ratelimit: at most N events per key in any window, and idle keys are forgotten."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repconsole.core.clock import ManualClock
from repconsole.core.ratelimit import RateLimiter


def _limiter(limit: int = 5, window: float = 60.0) -> tuple[RateLimiter[object], ManualClock]:
    clock = ManualClock(1000.0)
    return RateLimiter(limit, window, clock), clock


def test_a_key_is_blocked_at_the_limit_and_free_exactly_a_window_after_its_oldest_event() -> None:
    limiter, clock = _limiter()
    for _ in range(4):
        limiter.hit("bob")
        clock.advance(1)
    assert not limiter.blocked("bob")
    limiter.hit("bob")  # events at +0 .. +4
    assert limiter.blocked("bob") and not limiter.blocked("alice")
    clock.now = 1000.0 + 59.999
    assert limiter.blocked("bob")
    clock.now = 1000.0 + 60.0  # the event at +0 has left the window: four remain
    assert not limiter.blocked("bob")
    limiter.hit("bob")
    assert limiter.blocked("bob")  # +1 .. +4 and +60
    clock.now = 1000.0 + 61.0
    assert not limiter.blocked("bob")


def test_an_event_counted_while_blocked_extends_the_block() -> None:
    """Why callers check blocked() first and count only what they let through."""
    limiter, clock = _limiter(limit=2, window=10.0)
    limiter.hit("k")
    clock.advance(1)
    limiter.hit("k")  # +0, +1: blocked until +10
    clock.advance(4)
    limiter.hit("k")  # +5: now +1 and +5 count, blocked until +11
    clock.now = 1000.0 + 10.5
    assert limiter.blocked("k")
    clock.now = 1000.0 + 11.0
    assert not limiter.blocked("k")


def test_clear_forgets_a_key() -> None:
    limiter, _ = _limiter(limit=1)
    limiter.hit(("bob", "198.51.100.7"))
    assert limiter.blocked(("bob", "198.51.100.7"))
    limiter.clear(("bob", "198.51.100.7"))
    assert not limiter.blocked(("bob", "198.51.100.7")) and len(limiter) == 0
    limiter.clear("never seen")  # no error


def test_keys_may_be_any_hashable() -> None:
    limiter, _ = _limiter(limit=1)
    for key in ("alice", ("alice", "203.0.113.9"), None, 7, frozenset({"x"})):
        limiter.hit(key)
        assert limiter.blocked(key)
    assert len(limiter) == 5


def test_a_flood_of_distinct_keys_is_forgotten_a_window_after_it_stops() -> None:
    limiter, clock = _limiter(limit=5, window=60.0)
    for i in range(100_000):  # a botnet: one guess per address
        limiter.hit(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        if i % 1000 == 999:
            clock.advance(0.01)
    assert len(limiter) == 100_000
    clock.advance(60.0)
    limiter.hit("198.51.100.7")  # any later use sweeps the idle keys, no housekeeping needed
    assert len(limiter) == 1
    clock.advance(60.0)
    assert not limiter.blocked("x") and len(limiter) == 0


def test_memory_is_bounded_by_the_keys_active_in_the_last_window() -> None:
    limiter, clock = _limiter(limit=3, window=10.0)
    for second in range(1000):
        for k in range(50):  # 50 new keys a second, each seen once
            limiter.hit((second, k))
        limiter.hit("steady")  # and one key that never goes idle
        clock.advance(1.0)
        assert len(limiter) <= 50 * 10 + 1
    assert limiter.blocked("steady")


def test_each_key_keeps_at_most_limit_events() -> None:
    limiter, clock = _limiter(limit=3, window=1000.0)
    for _ in range(10_000):
        limiter.hit("k")  # a caller that counts even when blocked
        clock.advance(0.001)
    assert limiter.blocked("k")
    assert all(len(times) <= 3 for times in limiter._log.values())


def test_prune_forgets_idle_keys() -> None:
    limiter, clock = _limiter(limit=2, window=5.0)
    limiter.hit("a")
    clock.advance(3)
    limiter.hit("b")
    clock.advance(2)
    limiter.prune()
    assert len(limiter) == 1  # "a" was idle for exactly a window
    clock.advance(3)
    limiter.prune()
    assert len(limiter) == 0


def test_a_clock_stepped_back_counts_as_standing_still() -> None:
    limiter, clock = _limiter(limit=2, window=10.0)
    limiter.hit("k")
    clock.now -= 100.0
    limiter.hit("k")
    assert limiter.blocked("k")
    clock.now += 100.0 + 9.9  # 9.9 s after the events, as the limiter saw them
    assert limiter.blocked("k")
    clock.now += 0.1
    assert not limiter.blocked("k") and len(limiter) == 0


def test_the_limit_may_change() -> None:
    limiter, _ = _limiter(limit=5)
    for _ in range(3):
        limiter.hit("k")
    assert not limiter.blocked("k")
    limiter.limit = 3
    assert limiter.blocked("k")
    limiter.limit = 4
    assert not limiter.blocked("k")


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (5, 0.0), (5, -1.0)])
def test_nonsense_limits_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError):
        RateLimiter(limit, window, ManualClock())


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 6),
    steps=st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 30), st.booleans()), max_size=60),
)
def test_blocked_means_limit_events_within_the_window(limit: int, steps: list[tuple[str, float, bool]]) -> None:
    """Against a model that keeps every event: blocked iff at least ``limit`` events in (now - window, now]."""
    limiter, clock = _limiter(limit=limit, window=20.0)
    seen: dict[str, list[float]] = {}
    for key, pause, hit in steps:
        clock.advance(pause)
        now = clock.now
        if hit:
            limiter.hit(key)
            seen.setdefault(key, []).append(now)
        for k in "abc":
            recent = [t for t in seen.get(k, []) if t > now - 20.0]
            assert limiter.blocked(k) == (len(recent) >= limit), (k, recent)
        assert len(limiter) <= sum(1 for k in "abc" if any(t > now - 20.0 for t in seen.get(k, [])))
