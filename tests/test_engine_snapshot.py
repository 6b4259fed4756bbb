"""A snapshot built a part at a time (``QueueEngine.snapshot_cursor``) is exact as of its seq.

The server sends a big snapshot in parts and serves everyone else between
them, so the engine changes while the parts are built.  Whatever changes,
the parts together must be exactly what ``snapshot()`` returned at the
cursor's seq: the same sessions, in the same order, each as it was then
(copy-on-write: a session about to change is copied first).
"""

from __future__ import annotations

import msgspec
import pytest
from engine_helpers import RandomDriver, build_site, intake, site  # noqa: F401  (site: a fixture)

from repconsole.core.engine import SnapshotCursor
from repconsole.core.model import QueueRef
from repconsole.protocol import SnapshotData


def _take_all(cursor: SnapshotCursor, n: int, between: object = None) -> SnapshotData:
    sessions = []
    while cursor.left:
        sessions.extend(cursor.take(n))
        if callable(between):
            between()
    return msgspec.structs.replace(cursor.head, sessions=sessions)


def test_a_cursor_with_no_change_meanwhile_is_the_snapshot(site) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        site.waiting_in_net(f"C{i}")
    site.active("alice")
    site.engine.start_with_button("btn-alice", intake("Mine"))
    expected = site.engine.snapshot("alice")
    with site.engine.snapshot_cursor("alice") as cursor:
        assert (cursor.seq, cursor.total, cursor.left) == (expected.seq, 32, 32)
        assert cursor.head.sessions == [] and msgspec.structs.replace(cursor.head, at=expected.at, sessions=expected.sessions) == expected
        got = _take_all(cursor, 7)
    assert got.sessions == expected.sessions


def test_sessions_that_change_before_their_part_is_built_are_handed_out_as_they_were(site) -> None:  # type: ignore[no-untyped-def]
    """Taken, moved, ended, held, shared, re-keyed, marked overdue: each after the cursor, before its part."""
    e = site.engine
    ids = [site.waiting_in_net(f"C{i}").id for i in range(14)]
    mine = site.active("alice")
    e.say("alice", mine.id, "hello")
    e.accept("erin", ids[12])
    e.share("erin", ids[12], QueueRef.team("net"))  # alice sees it by the invitation alone
    e.transfer("erin", ids[12], QueueRef.team("bill"), stay=True)
    expected = e.snapshot("alice")
    assert ids[12] in {v.id for v in expected.sessions}
    with e.snapshot_cursor("alice") as cursor:
        first = cursor.take(2)
        e.accept("bob", ids[5])  # taken by someone else: alice can no longer see it
        e.customer_leave(ids[6])  # ended
        e.accept("erin", ids[7])
        e.transfer("erin", ids[7], QueueRef.team("bill"), "billing")  # moved out of alice's sight
        e.accept("bob", ids[8])
        e.hold("bob", ids[8])  # into bob's personal queue
        e.accept("alice", ids[9])  # alice takes it herself: now hers, with chat
        e.say("alice", mine.id, "a line after the cursor")  # alice's own session's chat moves on
        e.accept("erin", ids[10])
        e.share("erin", ids[10], QueueRef.team("net"))  # an invitation to alice's team
        e.set_external_key("erin", ids[10], "TCK-1")
        site.waiting_in_net("a new arrival")  # after the cursor: not in it
        e.set_external_key("erin", ids[12], "TCK-2")  # the invited one changes, then ends
        e.customer_leave(ids[12])
        e.accept("bob", ids[13])
        e.transfer("bob", ids[13], QueueRef.team("bill"))
        e.accept("carol", ids[13])
        e.transfer("carol", ids[13], QueueRef.team("net"))  # back in alice's queue, at its end
        rest = cursor.take(100)
    assert first + rest == expected.sessions
    [ours] = [s for s in first + rest if s.id == mine.id]
    assert isinstance(ours.chat, list) and [line.text for line in ours.chat][-1] == "hello"  # as of the cursor


@pytest.mark.parametrize("seed", range(6))
def test_random_traffic_between_parts_never_shows_in_the_parts(seed: int) -> None:
    """Every rep's cursor, taken a few sessions at a time with random traffic (every command, arrivals,
    customers leaving, rules firing, reps dropping) between the parts: the parts are the snapshot at the cursor's seq."""
    site = build_site(seed)
    driver = RandomDriver(site, seed)
    driver.run(300)
    for _ in range(5):
        expected = {rep: site.engine.snapshot(rep) for rep in site.engine.reps}
        cursors = {rep: site.engine.snapshot_cursor(rep) for rep in site.engine.reps}
        parts: dict[str, list] = {rep: [] for rep in cursors}  # type: ignore[type-arg]
        while any(c.left for c in cursors.values()):
            for rep, cursor in cursors.items():
                parts[rep].extend(cursor.take(driver.rng.randint(1, 4)))
            driver.run(driver.rng.randint(1, 6))
        for rep, cursor in cursors.items():
            cursor.close()
            assert parts[rep] == expected[rep].sessions, rep
            assert cursor.head.seq == expected[rep].seq
        driver.run(50)
    assert site.engine._queues.watchers == []  # closed cursors watch nothing


def test_a_closed_cursor_stops_watching_and_closing_twice_is_fine(site) -> None:  # type: ignore[no-untyped-def]
    e = site.engine
    sid = site.waiting_in_net().id
    cursor = e.snapshot_cursor("alice")
    assert len(e._queues.watchers) == 1
    cursor.close()
    cursor.close()
    assert e._queues.watchers == []
    e.accept("bob", sid)  # nothing is copied for a closed cursor
    assert cursor.left == 1 and "0 of 1 taken" in repr(cursor)
