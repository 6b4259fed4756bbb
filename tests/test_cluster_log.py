"""The cluster's lease and ordered log against a real redis-server (tests/redisfixture.py).

docs/architecture.md ("Cluster: failure cases") names the test for each case.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)

from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.lease import DRIFT, Lease
from repconsole.server.cluster.log import AppendRefused, LogGap, LogUnavailable, OrgLog, connect

ROOT = Path(__file__).resolve().parent.parent
KEYS = OrgKeys.of("acme")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def leader(client: redis.Redis, owner: str, *, ttl: float = 30.0, clock: FakeClock | None = None) -> tuple[Lease, list[str]]:
    lost: list[str] = []
    lease = Lease(client, KEYS, owner, ttl=ttl, clock=clock or FakeClock(), on_lost=lost.append)
    assert lease.try_acquire()
    return lease, lost


def wait_gone(client: redis.Redis, key: str, limit: float = 5.0) -> None:
    """Until Redis itself expired ``key`` (a lease's PX running out is real time)."""
    deadline = time.monotonic() + limit
    while client.exists(key):
        assert time.monotonic() < deadline, f"{key} did not expire"
        time.sleep(0.01)


def test_appends_read_back_in_order_and_resume_by_seq_is_a_range_read(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    lease, lost = leader(client, "a")
    log = OrgLog(client, KEYS)
    log.append(lease, 1, 3, b"one")
    log.append(lease, 4, 4, b"two")
    log.append(lease, 5, 9, b"three")
    assert log.head() == 9
    assert [(r.first, r.last, r.epoch, r.data) for r in log.read(0)] == [(1, 3, 1, b"one"), (4, 4, 1, b"two"), (5, 9, 1, b"three")]
    # After seq 2 the entry 1..3 is still needed (it holds 3); after 3 it is not.
    assert [r.data for r in log.read(2)] == [b"one", b"two", b"three"]
    assert [r.data for r in log.read(3)] == [b"two", b"three"]
    assert [r.data for r in log.read(6, count=1)] == [b"three"]
    assert log.read(9) == []
    assert [r.data for r in log.tail(4, block=0.05)] == [b"three"]
    assert log.tail(9, block=0.05) == []
    assert lost == []


def test_tail_wakes_for_an_append_made_while_it_blocks(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    lease, _ = leader(client, "a")
    log = OrgLog(client, KEYS)
    log.append(lease, 1, 1, b"before")
    # A child appends after 0.3 s; the parent's tail (another connection) blocks for it.
    code = (
        f"import sys, time; sys.path[:0] = [{str(ROOT)!r}];"
        "from repconsole.server.cluster.log import connect;"
        f"c = connect({redis_server.url!r}); time.sleep(0.3);"
        f"c.xadd({KEYS.log!r}, {{'f': '2', 'e': '1', 'd': 'after'}}, id='2-0')"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        started = time.monotonic()
        tailer = OrgLog(connect(redis_server.url, timeout=5), KEYS)
        got = tailer.tail(1, block=3.0)
        assert [r.data for r in got] == [b"after"]
        assert time.monotonic() - started < 2.5
    finally:
        child.wait(10)


def test_an_append_must_start_right_after_the_head(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    lease, lost = leader(client, "a")
    log = OrgLog(client, KEYS)
    log.append(lease, 1, 2, b"x")
    with pytest.raises(AppendRefused) as refused:
        log.append(lease, 4, 4, b"skips 3")
    assert (refused.value.reason, refused.value.current) == ("seq", "2")
    assert lease.epoch is None and len(lost) == 1, "a refused append steps down at once"
    # Reusing a seq is refused too (a new term, same head).
    lease2, _ = leader(client, "b")
    with pytest.raises(AppendRefused) as again:
        log.append(lease2, 2, 3, b"reuses 2")
    assert again.value.reason == "seq"
    assert [r.data for r in log.read(0)] == [b"x"]


def test_a_stale_epoch_is_refused_and_steps_down(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    old, lost = leader(client, "old", ttl=0.2)
    log = OrgLog(client, KEYS)
    log.append(old, 1, 1, b"by old")
    wait_gone(client, KEYS.lease)
    new, _ = leader(client, "new")
    assert (old.epoch, new.epoch) == (1, 2), "a takeover raises the epoch"
    log.append(new, 2, 2, b"by new")
    with pytest.raises(AppendRefused) as refused:
        log.append(old, 3, 3, b"by old again")
    assert (refused.value.reason, refused.value.current) == ("epoch", "2")
    assert old.epoch is None and lost == [str(refused.value)]
    assert [(r.epoch, r.data) for r in log.read(0)] == [(1, b"by old"), (2, b"by new")]


def test_an_expired_lease_nobody_took_refuses_too(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    lease, lost = leader(client, "a", ttl=0.2)
    log = OrgLog(client, KEYS)
    wait_gone(client, KEYS.lease)
    with pytest.raises(AppendRefused) as refused:
        log.append(lease, 1, 1, b"late")
    assert refused.value.reason == "lease" and lost
    assert log.head() == 0


def test_takeover_waits_for_the_lease_to_expire_and_renewal_keeps_it(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    clock = FakeClock()
    a, lost = leader(client, "a", ttl=0.3, clock=clock)
    b = Lease(client, KEYS, "b", ttl=0.3)
    assert not b.try_acquire()
    for _ in range(5):  # renewals at ttl/3 keep it past several TTLs
        time.sleep(0.1)
        assert a.renew()
        assert not b.try_acquire()
    assert a.held
    clock.t += a.ttl * (1 - DRIFT)
    assert not a.held, "past its own deadline a leader no longer trusts its lease"
    wait_gone(client, KEYS.lease)
    assert b.try_acquire() and b.epoch == 2
    assert not a.renew() and lost == ["lease lost: it expired or another process took it"]


def test_release_lets_another_take_over_at_once(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    a, lost = leader(client, "a")
    a.release()
    assert lost == [] and a.epoch is None
    b, _ = leader(client, "b")
    assert b.epoch == 2


def test_trim_keeps_the_snapshot_and_the_resume_window_and_readers_see_the_gap(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    lease, _ = leader(client, "a")
    log = OrgLog(client, KEYS)
    for seq in range(1, 11):
        log.append(lease, seq, seq, b"%d" % seq)
    assert log.trim(lease, keep_after=8) == 0, "no snapshot yet: nothing may go"
    with pytest.raises(AppendRefused):
        log.write_snapshot(lease, 11, b"ahead of the log")
    lease, _ = leader(client, "a2")  # the refusal stepped down; lead again
    log.write_snapshot(lease, 6, b"state at 6")
    assert log.snapshot() == (6, b"state at 6")
    assert log.trim(lease, keep_after=4) == 4, "the resume window keeps 5 and 6"
    assert [r.last for r in log.read(4)] == [5, 6, 7, 8, 9, 10]
    assert log.trim(lease, keep_after=100) == 2, "never past the snapshot"
    assert [r.last for r in log.read(6)] == [7, 8, 9, 10]
    with pytest.raises(LogGap):
        log.read(3)
    with pytest.raises(LogGap):
        log.tail(3, block=0.05)
    log.write_snapshot(lease, 10, b"state at 10")
    log.trim(lease, keep_after=10)
    with pytest.raises(LogGap):
        log.read(8)  # the stream is empty, the head is 10
    assert log.read(10) == []


@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
def test_a_redis_restart_keeps_every_confirmed_append(tmp_path: Path, appendfsync: str) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync=appendfsync)
    server.start()
    try:
        client = connect(server.url)
        lease, _ = leader(client, "a")
        log = OrgLog(client, KEYS)
        confirmed = 0
        for seq in range(1, 301):
            log.append(lease, seq, seq, b"entry %d" % seq)
            confirmed = seq
        server.restart(hard=True)  # SIGKILL: no shutdown flush
        client = connect(server.url)
        log = OrgLog(client, KEYS)
        assert log.head() == confirmed and log.epoch() == 1
        assert [r.data for r in log.read(0)] == [b"entry %d" % seq for seq in range(1, confirmed + 1)]
        # The epoch survived, so a takeover after the restart still raises it.
        client.delete(KEYS.lease)
        assert leader(client, "b")[0].epoch == 2
    finally:
        server.kill()


def test_redis_down_makes_the_append_fail_and_the_leader_step_down(redis_server: RedisServer) -> None:
    client = connect(redis_server.url, timeout=0.5)
    lease, lost = leader(client, "a")
    log = OrgLog(client, KEYS)
    log.append(lease, 1, 1, b"ok")
    redis_server.kill()
    with pytest.raises(LogUnavailable):
        log.append(lease, 2, 2, b"no redis")
    assert lease.epoch is None and lost and lost[0].startswith("the log cannot be written")


def test_a_redis_that_stops_answering_fails_the_append_within_the_timeout(redis_server: RedisServer) -> None:
    """A network cut: the connection stays open and nothing answers (redis-server under SIGSTOP)."""
    client = connect(redis_server.url, timeout=0.3)
    lease, lost = leader(client, "a")
    log = OrgLog(client, KEYS)
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(LogUnavailable):
            log.append(lease, 1, 1, b"cut off")
        assert time.monotonic() - started < 2.0
        assert lease.epoch is None and lost
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


FROZEN_LEADER = """
import sys, time
sys.path[:0] = [{root!r}]
from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.lease import Lease
from repconsole.server.cluster.log import AppendRefused, OrgLog, connect

client = connect({url!r}, timeout=2.0)
keys = OrgKeys.of("acme")
lease = Lease(client, keys, "frozen", ttl={ttl})
log = OrgLog(client, keys)
assert lease.try_acquire()
print("leading", lease.epoch, flush=True)
seq = log.head()
epoch = lease.epoch
while True:
    # Sleep first: a SIGSTOP almost surely lands here, so the first thing it does on waking
    # is to append as if it still led (it does not ask its own clock: Redis must refuse it).
    time.sleep(lease.renew_every)
    try:
        log.append(lease, seq + 1, seq + 1, b"frozen leader")
    except AppendRefused as exc:
        print("refused", exc.reason, "stepped down" if lease.epoch is None else "still leading", flush=True)
        break
    seq += 1
    if not lease.renew():
        print("renewal failed", lease.lost_because, flush=True)
        break
"""


def test_a_leader_frozen_past_its_lease_cannot_append_and_steps_down(redis_server: RedisServer) -> None:
    ttl = 0.6
    code = FROZEN_LEADER.format(root=str(ROOT), url=redis_server.url, ttl=ttl)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["leading", "1"]
        client = connect(redis_server.url)
        log = OrgLog(client, KEYS)
        deadline = time.monotonic() + 5
        while log.head() < 3:  # it appends and renews for a while
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGSTOP)
        wait_gone(client, KEYS.lease, limit=ttl * 5)
        new, _ = leader(client, "new")
        assert new.epoch == 2
        head = log.head()
        log.append(new, head + 1, head + 1, b"new leader")
        os.kill(child.pid, signal.SIGCONT)
        out, _ = child.communicate(timeout=10)
        assert out.split() == ["refused", "epoch", "stepped", "down"]
        records = log.read(0)
        assert records[-1].data == b"new leader" and records[-1].epoch == 2
        assert all(r.epoch == 1 for r in records[:-1])
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
            child.wait()


def test_records_only_entries_sort_between_the_event_entries_and_readers_keep_their_position(redis_server: RedisServer) -> None:
    """OrgLog.note: a step with records and no events (a login, a stored refusal) is an entry ``<head>-n``;
    a reader at (seq, n) reads on from it, skipping nothing and taking nothing twice; a stale leader's note is refused."""
    client = connect(redis_server.url)
    lease, lost = leader(client, "a")
    log = OrgLog(client, KEYS)
    assert log.note(lease, b"login at 0") == (0, 1)
    log.append(lease, 1, 2, b"events 1-2")
    assert log.note(lease, b"answer") == (2, 1)
    assert log.note(lease, b"logout") == (2, 2)
    log.append(lease, 3, 3, b"event 3")
    assert log.head() == 3
    records = log.read(0)
    assert [(r.data, r.position, r.note) for r in records] == [
        (b"login at 0", (0, 1), True), (b"events 1-2", (2, 0), False), (b"answer", (2, 1), True),
        (b"logout", (2, 2), True), (b"event 3", (3, 0), False),
    ]  # fmt: skip
    assert [r.data for r in log.read(2, sub=1)] == [b"logout", b"event 3"]
    assert [r.data for r in log.tail(2, 0.1, sub=2)] == [b"event 3"]
    assert log.tail(3, 0.1) == []
    # A new leader (the lease expired): the old one's note is refused and it steps down.
    client.delete(KEYS.lease)
    newer, _ = leader(client, "b")
    with pytest.raises(AppendRefused) as info:
        log.note(lease, b"stale")
    assert info.value.reason == "epoch" and lost
    assert log.note(newer, b"fresh") == (3, 1)


def test_a_trim_never_drops_a_records_only_entry_the_snapshot_does_not_hold(redis_server: RedisServer) -> None:
    """Review rev15: a records-only entry written after the snapshot, at the same head (id ``<seq>-1``), is
    not in the snapshot's side.  Trimming up to the snapshot's seq (a quiet spell: the resume window is past
    it) must keep it, or a reader starting from the snapshot must get LogGap: never lose it silently (a
    process joining then would keep a logged-out token, a refusal's answer or a snippet edit unknown)."""
    client = connect(redis_server.url)
    lease, _ = leader(client, "a")
    log = OrgLog(client, KEYS)
    log.append(lease, 1, 1, b"event 1")
    log.write_snapshot(lease, 1, b"state at 1", b"side: login 7 live")
    assert log.note(lease, b"logout of login 7") == (1, 1)
    log.trim(lease, keep_after=1)  # the next housekeeping pass, before the next snapshot
    try:
        taken = log.read(1)  # Member._join: a joiner follows from the snapshot's seq
    except LogGap:
        return
    assert [r.data for r in taken] == [b"logout of login 7"], "the logout is in neither the snapshot nor the log"
