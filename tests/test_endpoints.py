"""The console's connection policy over several servers (issue 15): which address next, and when.

Sans-I/O: :class:`Endpoints` with an injected random generator (in its
:class:`Backoff`) and an injected clock; no sockets, no sleeping.
"""

from __future__ import annotations

import random

import pytest

from repconsole.backend.backoff import Backoff
from repconsole.backend.endpoints import Endpoints, format_servers, parse_servers, server_endpoint

A, B, C = "ws://a.example:8765", "ws://b.example:8765", "wss://c.example"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_list_is_read_from_commas_spaces_or_several_strings_and_checked() -> None:
    assert parse_servers(f" {A}, {B}/ ,{C} ") == [A, B, C]
    assert parse_servers([A, f"{B} {C}", A + "/"]) == [A, B, C], "several strings; a repeat counts once"
    assert parse_servers(format_servers([A, B])) == [A, B]
    assert format_servers([A, B]) == f"{A}, {B}"
    for bad, says in ((f"{A}, http://b.example", "ws:// or wss://"), ("ws://:8765", "no host"), ("ws://a:87x", "bad port"), (" , ", "no server address")):
        with pytest.raises(ValueError, match=says):
            parse_servers(bad)
    with pytest.raises(ValueError, match="no server address"):
        parse_servers([])
    assert server_endpoint(C) == "wss://c.example/rep"


def test_a_lost_connection_tries_the_current_server_then_the_others_in_turn() -> None:
    servers = Endpoints([A, B, C], Backoff(ceilings=(1, 2, 4), rng=random.Random(1)))
    assert servers.url == A and servers.order() == [A, B, C]
    servers.lost()
    tries = [servers.next_try() for _ in range(7)]
    assert [t.url for t in tries] == [A, B, C, A, B, C, A]
    assert [t.round for t in tries] == [0, 0, 0, 1, 1, 1, 2]
    assert [t.attempt for t in tries] == [1, 2, 3, 4, 5, 6, 7]
    # Each round starts after its jittered delay; the rest of the round follows at once.
    assert [t.delay for t in tries if t.url != A] == [0.0] * 4
    assert all(0 <= t.delay <= ceiling for t, ceiling in zip(tries[::3], (1, 2, 4), strict=True))
    assert sum(t.delay for t in tries[::3]) > 0, "jittered, not zero"
    # B answered: it is the server in use, and the next outage starts from it.
    assert servers.connected(B) is True and servers.url == B
    assert servers.connected(B) is False, "the same server again is no switch"
    # B answered but the sign-in failed after all (it timed out): the backoff goes on growing.
    assert (servers.next_try().round, servers.next_try().round) == (2, 2)
    servers.lost()
    assert [servers.next_try().url for _ in range(4)] == [B, C, A, B]


def test_try_times_are_on_the_injected_clock() -> None:
    clock = Clock(500.0)
    servers = Endpoints([A, B], Backoff(ceilings=(2,), rng=random.Random(3)), clock=clock)
    servers.lost()
    first = servers.next_try()
    assert first.at == 500.0 + first.delay and 0 < first.delay <= 2
    clock.now = 502.5
    second = servers.next_try()
    assert (second.url, second.delay, second.at) == (B, 0.0, 502.5)


def test_immediate_starts_the_first_round_at_once_and_later_rounds_back_off() -> None:
    servers = Endpoints([A, B], Backoff(ceilings=(10, 20), rng=random.Random(5)))
    servers.lost(immediate=True)
    tries = [servers.next_try() for _ in range(6)]
    assert [t.delay for t in tries[:2]] == [0.0, 0.0]
    assert 0 < tries[2].delay <= 10 and tries[3].delay == 0.0 and 0 < tries[4].delay <= 20


def test_one_server_backs_off_exactly_as_before() -> None:
    # The single-server console's delays are unchanged: try n waits Backoff.delay(n).
    servers = Endpoints([A], Backoff(0.5, 30.0, rng=random.Random(13)))
    reference = Backoff(0.5, 30.0, rng=random.Random(13))
    servers.lost()
    assert [servers.next_try().delay for _ in range(9)] == [reference.delay(n) for n in range(9)]
    assert {servers.next_try().url for _ in range(5)} == {A}


def test_use_replaces_the_list_and_starts_from_its_first() -> None:
    servers = Endpoints([A])
    servers.use(f"{B},{C}")
    assert servers.urls == (B, C) and servers.url == B
    with pytest.raises(ValueError, match="ws:// or wss://"):
        servers.use("ftp://x")
    assert servers.urls == (B, C), "a bad list changes nothing"


def test_two_thousand_consoles_dropped_together_are_spread_over_the_window() -> None:
    # A dies: its 2,000 consoles lose their connection in the same instant.  Each
    # has its own generator; their first tries (of A, refused at once, then B
    # straight after) must be spread evenly over the first ceiling, not one wave.
    master = random.Random(15)
    clock = Clock(0.0)
    consoles = [Endpoints([A, B], Backoff(0.5, 30.0, rng=random.Random(master.getrandbits(64))), clock=clock) for _ in range(2000)]
    for servers in consoles:
        servers.lost()
    first = [servers.next_try() for servers in consoles]
    assert {t.url for t in first} == {A}
    at_b = []
    for servers, tried in zip(consoles, first, strict=True):
        clock.now = tried.at  # A refused at once (SIGKILLed: nothing listens)
        at_b.append(servers.next_try())
    assert {t.url for t in at_b} == {B}
    times = [t.at for t in first]
    assert max(times) <= 0.5 and min(times) >= 0
    # Ten slices of 50 ms: each gets close to its 200 (binomial sd ~13), none a wave.
    bins = [0] * 10
    for t in times:
        bins[min(int(t / 0.05), 9)] += 1
    assert all(150 <= n <= 250 for n in bins), bins
    # The busiest 10 ms holds a few percent of the consoles, not most of them.
    fine = [0] * 50
    for t in times:
        fine[min(int(t / 0.01), 49)] += 1
    assert max(fine) <= 80, max(fine)
    # B sees them arrive as spread as A did: at the instants A refused them.
    assert [t.at for t in at_b] == times
    # The second round, for those B did not take either, spreads over [0, 1 s] after that.
    second = [servers.next_try() for servers in consoles]
    delays = [t.delay for t in second]
    assert max(delays) <= 1.0 and sum(d > 0.5 for d in delays) >= 800, "the second ceiling is twice the first"
