"""Leader -> Redis log -> follower: entries carry a step's logged events and its changes.

Random engine traffic (tests/engine_helpers.py) on a leader; every step is
appended to the log on a real redis-server; followers read the log (one
from the start, one from a snapshot after trimming) and must end with the
leader's state and the leader's event bytes, seq for seq.
"""

from __future__ import annotations

import msgspec
import pytest
from engine_helpers import RandomDriver, Site, build_site, snapshot_view
from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)

from repconsole.core import persist
from repconsole.server.cluster.entry import decode_entry, encode_entry, encode_snapshot, restore_snapshot
from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.lease import Lease
from repconsole.server.cluster.log import OrgLog, connect
from repconsole.server.fanout import encode_event
from repconsole.server.store import LoggedEvent

KEYS = OrgKeys.of("acme")


def same_state(a: Site, b: Site) -> None:
    assert b.engine.seq == a.engine.seq
    assert persist.dump(b.engine) == persist.dump(a.engine)
    for rep_id in a.engine.reps:
        assert snapshot_view(b.engine, rep_id) == snapshot_view(a.engine, rep_id)


def catch_up(log: OrgLog, follower: Site, after: int, published: list[LoggedEvent]) -> int:
    for record in log.read(after):
        entry = decode_entry(record.data)
        assert (entry.first, entry.last) == (record.first, record.last)
        published += [e for e in entry.events if e.seq > after]
        follower.engine.apply_changes(entry.changes)
        after = record.last
    return after


def test_an_entry_round_trips_and_refuses_a_step_without_contiguous_events() -> None:
    site = build_site(3)
    RandomDriver(site, 3).run(40)
    logged = [encode_event(e) for e in site.events[-3:]]
    changes = site.engine.changes_of(site.events[-3:])
    entry = decode_entry(encode_entry(logged, changes))
    assert entry.events == logged
    assert persist.dump_changes(entry.changes) == persist.dump_changes(changes)
    with pytest.raises(ValueError):
        encode_entry([logged[0], logged[2]], changes)
    with pytest.raises(ValueError):
        encode_entry([], changes)


def test_followers_of_the_log_hold_the_leaders_state_and_publish_its_bytes(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    lease = Lease(client, KEYS, "leader")
    assert lease.try_acquire()
    log = OrgLog(client, KEYS)
    leader = build_site(11)
    sent: list[LoggedEvent] = []
    seen = 0

    def commit() -> None:  # what Runtime._commit does as the leader: the log before anything is confirmed
        nonlocal seen
        events = leader.events[seen:]
        seen = len(leader.events)
        if events:
            logged = [encode_event(e) for e in events]
            log.append(lease, logged[0].seq, logged[-1].seq, encode_entry(logged, leader.engine.changes_of(events)))
            sent.extend(logged)

    driver = RandomDriver(leader, 11)
    driver.run(300, each=commit)
    follower, published = build_site(11), []
    at = catch_up(log, follower, 0, published)
    follower.clock.now = leader.clock.now
    same_state(leader, follower)
    assert published == sent, "the same bytes under the same seqs: a console resumes on any process"

    # A snapshot, a trim behind it, more traffic: a new process starts from the snapshot.
    seq, snap = encode_snapshot(leader.engine)
    log.write_snapshot(lease, seq, snap)
    assert log.trim(lease, keep_after=seq) > 0
    driver.run(200, each=commit)
    late = build_site(11)
    snap_seq, data = log.snapshot() or (0, b"")
    assert restore_snapshot(late.engine, data) == []
    late_published: list[LoggedEvent] = []
    catch_up(log, late, snap_seq, late_published)
    at = catch_up(log, follower, at, published)
    late.clock.now = follower.clock.now = leader.clock.now
    same_state(leader, late)
    same_state(leader, follower)
    assert published == sent and late_published == [e for e in sent if e.seq > snap_seq]
    assert msgspec.json.decode(snap)["counters"]["seq"] == snap_seq
