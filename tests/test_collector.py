"""The garbage-collector tools: paused builds, frozen state, and the server's freeze policy.

Each test observes the collector itself (enabled or not, the permanent
generation's size, whether a cycle was reclaimed), never the clock.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from repconsole.collector import FreezePolicy, collector_paused


class Node:
    """Something that can be in a cycle and be watched with a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-node cycle with no outside reference: only the cyclic collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    gc.unfreeze()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:  # pragma: no cover - pytest runs with the collector on
        gc.disable()


def test_a_paused_block_runs_without_the_collector_and_turns_it_back_on() -> None:
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # only the outermost block re-enables
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_paused_block_leaves_the_collector_off_if_it_was_off() -> None:
    gc.disable()
    with collector_paused(freeze=True):
        pass
    assert not gc.isenabled()


def test_the_collector_comes_back_even_when_the_block_fails() -> None:
    with pytest.raises(ZeroDivisionError), collector_paused(freeze=True):
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_freezing_puts_what_the_block_built_out_of_the_collectors_reach() -> None:
    with collector_paused(freeze=True):
        built = [{"id": i, "tags": [i]} for i in range(10_000)]
        ref = cycle()
    # Every list and dict built is in the permanent generation now ...
    assert gc.get_freeze_count() >= 2 * len(built)
    # ... so even a full collection does not reclaim a cycle among them,
    gc.collect()
    assert ref() is not None
    # until it is thawed.
    gc.unfreeze()
    gc.collect()
    assert ref() is None


def test_a_policy_tick_frees_young_cycles_and_freezes_the_survivors() -> None:
    policy = FreezePolicy(freeze_every=30, sweep_every=3600, now=0)
    before = gc.get_freeze_count()
    keep = [Node() for _ in range(1000)]
    young = cycle()
    step = policy.tick(30)
    assert not step.swept
    assert young() is None, "a cycle younger than one tick must not be frozen"
    assert step.collected >= 2
    assert gc.get_freeze_count() - before >= len(keep)
    assert gc.get_count()[0] < 100  # nothing left young to walk


def test_a_tick_does_not_count_the_frozen_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    # Counting walks every frozen object (the server's engine, its consoles: millions, tens of ms on the
    # loop every 30 s, which bench_server --diagnose caught); only a sweep, which walks them anyway, counts.
    policy = FreezePolicy(freeze_every=30, sweep_every=90, now=0)

    def walk() -> int:
        raise AssertionError("a tick walked the permanent generation")

    monkeypatch.setattr(gc, "get_freeze_count", walk)
    assert policy.tick(30).frozen is None
    monkeypatch.undo()
    step = policy.tick(90)
    assert step.swept and step.frozen == gc.get_freeze_count()


def test_frozen_cyclic_garbage_lives_only_until_the_next_sweep() -> None:
    policy = FreezePolicy(freeze_every=30, sweep_every=90, now=0)
    kept = Node()
    kept.other = kept  # alive and cyclic: must survive every sweep
    policy.tick(30)
    # Made garbage after it was frozen: no young collection can reach it.
    a, b = Node(), Node()
    a.other, b.other = b, a
    orphan = weakref.ref(a)
    policy.tick(31)  # freezes the new pair
    del a, b
    assert not policy.tick(60).swept
    assert orphan() is not None
    step = policy.tick(90)
    assert step.swept and step.collected >= 2
    assert orphan() is None
    assert kept.other is kept
    assert policy.last_sweep == 90
    assert not policy.tick(120).swept  # the next sweep is 90 s after this one


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="0 < freeze_every <= sweep_every"):
        FreezePolicy(freeze_every=0)
    with pytest.raises(ValueError, match="0 < freeze_every <= sweep_every"):
        FreezePolicy(freeze_every=60, sweep_every=30)


def test_starting_the_policy_collects_then_freezes_everything_alive() -> None:
    garbage = cycle()
    FreezePolicy().start()
    assert garbage() is None
    assert gc.get_freeze_count() > 0
    assert gc.get_count()[0] < 100


def test_the_server_builds_each_part_of_a_snapshot_with_the_collector_paused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from server_helpers import RepClient, run, serving, write_site

    from repconsole.core.engine import SnapshotCursor
    from repconsole.protocol import SessionView

    seen: list[bool] = []
    real = SnapshotCursor.take

    def take(self: SnapshotCursor, n: int) -> list[SessionView]:
        seen.append(gc.isenabled())
        return real(self, n)

    monkeypatch.setattr(SnapshotCursor, "take", take)

    async def main() -> None:
        async with serving(write_site(tmp_path), tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            assert alice.snapshot is not None and alice.snapshot.you.id == "alice"
            await alice.close()

    run(main())
    assert seen == [False]
    assert gc.isenabled()
