"""A server with ``[cluster] redis_url``: it leads its organisation and logs every step in Redis.

Real servers (in-process) on a real redis-server (tests/redisfixture.py).
What is not built yet (followers serving consoles, command forwarding,
failover) is listed in docs/architecture.md "Cluster".
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TIMEOUT_SCALE
from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import RepClient, eventually, run, serving, site_toml, write_site

from repconsole.core import persist
from repconsole.core.clock import ManualClock
from repconsole.core.intake import Intake
from repconsole.protocol import Command, Result
from repconsole.server.app import Server
from repconsole.server.auth import LoginSession
from repconsole.server.cluster import follower as follower_module
from repconsole.server.cluster import member as member_module
from repconsole.server.cluster.entry import decode_entry, restore_snapshot
from repconsole.server.cluster.follower import LogFollower
from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.cluster.log import OrgLog, Record, connect
from repconsole.server.cluster.records import AnswerRecord, CustomerRecord, LoginRecord, decode_side
from repconsole.server.cluster.relay import RedisRelay
from repconsole.server.config import ConfigError, build_engine, load_config
from repconsole.server.fanout import Fanout
from repconsole.server.reload import ReloadRefused, plan
from repconsole.server.store import LoggedEvent, Store
from repconsole.server.timers import WallClock

KEYS = OrgKeys.of("acme")


def cluster_site(directory: Path, url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_site(directory, extra=f'[cluster]\nredis_url = "{url}"\norganisation = "acme"\nlease_ttl = 2\n')


def arrive(server: Server, name: str = "Ann Lee") -> str:
    rt = server.runtime
    assert rt is not None
    with rt.step():
        s = rt.engine.start_with_issue("vpn", Intake(name))
    return s.id


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("[cluster]\nlease_ttl = 5\n", 'cluster: redis_url is missing: [cluster] needs redis_url = "redis://host:port/0" (or leave [cluster] out)'),
        ('[cluster]\nredis_url = "http://h"\n', "cluster.redis_url: 'http://h' is not a Redis URL (redis://host:port/0, rediss://... or unix:///path)"),
        ('[cluster]\nredis_url = "redis://h:99999"\n', "cluster.redis_url: 'redis://h:99999' is not a Redis URL: Port out of range 0-65535"),
        ('[cluster]\nredis_url = "redis://h/x"\n', "cluster.redis_url: 'redis://h/x': the database after the host is a number, not 'x'"),
        ('[cluster]\nredis_url = "redis://h"\nlease_ttl = 0.5\n', "cluster.lease_ttl: must be between 1 and 60 seconds"),
        ('[cluster]\nredis_url = "redis://h"\norganisation = "a{b}"\n', "cluster.organisation: 'a{b}' is not a valid organisation id"),
    ],
)
def test_check_config_names_the_file_line_and_key_of_a_cluster_mistake(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "site.toml"
    text = site_toml(extra=section)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    key = message.split(":", 1)[0].rsplit(".", 1)[-1]
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(f"{key} =") or t == f"[{key}]")
    assert f"site.toml:{line}: {message}" in str(info.value), str(info.value)


def test_without_cluster_nothing_changes_and_a_change_of_it_needs_a_restart(tmp_path: Path) -> None:
    plain = load_config(write_site(tmp_path))
    assert plain.cluster.redis_url is None
    clustered = load_config(cluster_site(tmp_path / "c", "redis://127.0.0.1:6379/0"))
    assert (clustered.cluster.organisation, clustered.cluster.lease_ttl) == ("acme", 2.0)
    with pytest.raises(ReloadRefused, match=r"\[cluster\]"):
        plan(plain, clustered)


def test_every_step_is_in_the_log_and_a_copy_built_from_it_is_the_servers_engine(redis_server: RedisServer, tmp_path: Path) -> None:
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            assert rt is not None and rt.cluster is not None and rt.cluster.lease.epoch == 1
            alice = await RepClient.logged_in(server, "alice")
            ann = arrive(server)
            await alice.ok("accept", session=ann)
            await alice.ok("say", session=ann, text="Hello Ann")
            arrive(server, "Ben Fox")
            log = OrgLog(connect(redis_server.url), KEYS)
            assert log.head() == rt.engine.seq
            start = log.snapshot()
            assert start is not None and start[0] < rt.engine.seq
            copy = build_engine(load_config(site), ManualClock(rt.clock.now()))
            restore_snapshot(copy, start[1])
            logged = []
            for record in log.read(start[0]):
                entry = decode_entry(record.data)
                copy.apply_changes(entry.changes)
                logged += entry.events
            assert persist.dump(copy) == persist.dump(rt.engine)
            stored = [e for e in rt.store.load_events() if e.seq > start[0]]
            assert logged == stored, "the log holds exactly the events SQLite holds, seq for seq, byte for byte"
            await alice.close()

    run(main())


def test_a_second_server_follows_and_a_clean_stop_hands_over(redis_server: RedisServer, tmp_path: Path) -> None:
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "a") as first:
            arrive(first)
            async with serving(site, tmp_path / "b") as second:
                rt = second.runtime
                assert rt is not None and rt.follows and rt.cluster is None
                assert first.runtime is not None
                arrive(first, "Ben Fox")
                await eventually(lambda: rt.engine.seq == first.runtime.engine.seq)  # type: ignore[union-attr]
                assert persist.dump(rt.engine) == persist.dump(first.runtime.engine)
        # The first released its lease at stop; a server leads at once, epoch 3 (the second took 2 meanwhile,
        # or this one does): it rebuilds from Redis whatever its own file holds.
        async with serving(site, tmp_path / "c") as again:
            assert again.runtime is not None and again.runtime.cluster is not None
            assert again.runtime.cluster.lease.epoch is not None and again.runtime.cluster.lease.epoch >= 2
            assert len(list(again.runtime.engine.sessions())) == 2
            arrive(again)

    run(main())


def test_redis_down_stops_the_server_before_it_confirms(redis_server: RedisServer, tmp_path: Path) -> None:
    """A network cut to Redis: the step is not in the log, so it is never confirmed."""
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            redis_server.kill()
            await alice.send(Command("doomed", "accept", {"session": sid}))
            assert await alice.closed_with() in (1011, 1001)
            assert "doomed" not in alice.replies
            async with asyncio.timeout(5 * TIMEOUT_SCALE):
                await server.wait_closed()
            assert server.failed is not None

    run(main())


def test_a_lost_lease_stops_the_server(redis_server: RedisServer, tmp_path: Path) -> None:
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            connect(redis_server.url).set(KEYS.lease, b"someone-else 9")  # as if it expired and another took it
            async with asyncio.timeout(5 * TIMEOUT_SCALE):  # the next renewal (every ttl/3) finds out
                await server.wait_closed()
            assert server.failed is not None

    run(main())


def test_housekeeping_snapshots_the_state_and_trims_the_log_behind_it_and_the_resume_window(redis_server: RedisServer, tmp_path: Path) -> None:
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            assert rt is not None and rt.cluster is not None
            log = OrgLog(connect(redis_server.url), KEYS)
            for name in ("Ann Lee", "Ben Fox", "Cy Park"):
                arrive(server, name)
            rt.housekeeping()  # the resume window (300 s) keeps every event: nothing goes, no snapshot due yet
            begun = log.snapshot()
            assert begun is not None and begun[0] < rt.engine.seq
            assert [r.last for r in log.read(begun[0])][-1] == rt.engine.seq
            rt.cluster.snapshot_every = 0.0
            rt.cluster._next_snapshot = 0.0
            rt.fanout.resume_window = 0.0  # every event is out of the window now
            rt.housekeeping()
            snap = log.snapshot()
            assert snap is not None and snap[0] == rt.engine.seq
            assert log.read(snap[0]) == [] and connect(redis_server.url).xlen(KEYS.log) == 0
            arrive(server, "Di Moss")
            copy = build_engine(load_config(site), ManualClock(rt.clock.now()))
            restore_snapshot(copy, snap[1])
            for record in log.read(snap[0]):
                copy.apply_changes(decode_entry(record.data).changes)
            assert persist.dump(copy) == persist.dump(rt.engine)

    run(main())


def test_a_follower_tailing_the_log_publishes_the_leaders_events_under_the_same_seqs(redis_server: RedisServer, tmp_path: Path) -> None:
    """Same seqs, same bytes, same resume: what a console gets from a follower's fan-out is the leader's."""
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            assert rt is not None
            copy = build_engine(load_config(site), ManualClock(rt.clock.now()))
            fanouts: list[Fanout] = []

            def publish(events: list[LoggedEvent]) -> None:
                fanouts[0].publish(events)

            log = OrgLog(connect(redis_server.url), KEYS)
            follower = LogFollower.from_snapshot(log, copy, publish, tail_log=OrgLog(connect(redis_server.url, timeout=5), KEYS))
            start = follower.after
            fanouts.append(Fanout(asyncio.get_running_loop(), seq=start, resume_window=300.0))
            task = asyncio.create_task(follower.run(block=0.2))
            try:
                alice = await RepClient.logged_in(server, "alice")
                ann = arrive(server)
                await alice.ok("accept", session=ann)
                await alice.ok("say", session=ann, text="Hello Ann")
                arrive(server, "Ben Fox")
                await eventually(lambda: follower.after == rt.engine.seq)
                assert fanouts[0].seq == rt.fanout.seq
                for rep in ("alice", "bob", "carol"):
                    theirs = rt.fanout.replay_items(rep, start)
                    assert theirs and fanouts[0].replay_items(rep, start) == theirs
                assert persist.dump(copy) == persist.dump(rt.engine)
                await alice.close()
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

    run(main())


def test_a_network_cut_to_redis_makes_the_leader_stop_confirming(redis_server: RedisServer, tmp_path: Path) -> None:
    """Redis stops answering (SIGSTOP: a cut, not a refused connection): the append fails within the socket
    timeout (lease_ttl / 3), the command is never confirmed, and the server stops."""
    import os
    import signal

    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            sid = arrive(server)
            alice = await RepClient.logged_in(server, "alice")
            assert redis_server.proc is not None
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                await alice.send(Command("cut", "accept", {"session": sid}))
                async with asyncio.timeout(5 * TIMEOUT_SCALE):
                    await server.wait_closed()
                assert server.failed is not None
                assert "cut" not in alice.replies or not isinstance(alice.replies["cut"], Result)
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)

    run(main())


def test_two_processes_with_the_same_hostname_and_pid_have_different_ids(redis_server: RedisServer, tmp_path: Path) -> None:
    """Containers with a fixed hostname all run as pid 1: ``hostname-pid`` repeats, and a follower's replies
    (matched by number on its reply list) would reach another, presence would overwrite another's.  Two
    servers in this test process share hostname and pid exactly so."""
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "a") as first, serving(site, tmp_path / "b") as second:
            a, b = first.runtime.member, second.runtime.member  # type: ignore[union-attr]
            assert a is not None and b is not None
            assert a.origin != b.origin and a.origin.startswith(f"{socket.gethostname()}-{os.getpid()}-")
            assert a.node.lease.owner == a.origin and b.node.lease.owner == b.origin  # one id per process
            relays = [RedisRelay.from_settings(first.runtime.spec.cluster) for _ in range(2)]  # type: ignore[union-attr]
            try:
                assert relays[0].node != relays[1].node and len(relays[0].node.rsplit("-", 1)[1]) == 16
            finally:
                for relay in relays:
                    await relay.aclose()

    run(main())


def test_the_snapshots_side_part_carries_only_live_rows_read_at_the_snapshots_step(redis_server: RedisServer, tmp_path: Path) -> None:
    """The side part is what a joining process needs: unexpired logins, their answers within the resume
    window, unexpired customer tokens, snippets; not the expired ones kept a day (300k of them made it
    25 MB and a 0.7 s stall of the leader's loop every minute).  Built from a read transaction taken at
    the snapshot's step: rows committed after it are not in it."""
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            assert rt is not None and rt.cluster is not None
            now = rt.clock.now()
            window = rt.spec.server.resume_window
            live, expired = LoginSession(100, b"h" * 32, "alice", now, now + 3600), LoginSession(101, b"i" * 32, "bob", now - 7200, now - 3600)
            rows = [Store.login_row(live), Store.login_row(expired)]
            rows += [Store.answer_row(100, "fresh", now - 1, b"r"), Store.answer_row(100, "old", now - window - 1, b"r")]
            rows += [Store.answer_row(101, "of-expired", now - 1, b"r")]
            rows += [Store.customer_row(bytes([n]) * 32, f"S{n}", now + (600 if n < 3 else -600)) for n in range(10)]
            rt.store.execute(rows)
            rt.cluster._next_snapshot = 0.0
            pinned = rt.store.reader()  # a read transaction from before the next rows: they are not in its side
            rt.store.execute([Store.customer_row(b"z" * 32, "S99", now + 600)])
            assert rt.member is not None
            early = decode_side(rt.member._side(pinned, now))
            assert sum(isinstance(r, CustomerRecord) for r in early) == 3
            await rt.keep_house()  # the server's housekeeping pass: the side part in a thread
            side = decode_side(OrgLog(connect(redis_server.url), KEYS).snapshot_side())
            assert [r.id for r in side if isinstance(r, LoginRecord)] == [100]
            assert [r.request for r in side if isinstance(r, AnswerRecord)] == ["fresh"]
            assert sorted(r.session for r in side if isinstance(r, CustomerRecord)) == ["S0", "S1", "S2", "S99"]

    run(main())


def test_a_follower_rides_out_a_redis_restart_and_takes_over_from_the_leader_that_stepped_down(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis killed and started again (AOF): the leader's renewal fails and it stops (it must: it cannot
    confirm); a follower only reads, so it retries its tail with backoff, then takes the lease when the
    old one expires, and leads on from its exact copy."""
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "a") as first, serving(site, tmp_path / "b") as second:
            rt = second.runtime
            assert rt is not None and rt.member is not None and first.runtime is not None
            arrive(first)
            await eventually(lambda: rt.engine.seq == first.runtime.engine.seq)  # type: ignore[union-attr]
            redis_server.kill()
            async with asyncio.timeout(5 * TIMEOUT_SCALE):
                await first.wait_closed()
            redis_server.start()
            await eventually(lambda: rt.member is not None and rt.member.leads, timeout=10.0)
            assert second.failed is None
            assert rt.member.forwarder._task is None  # stopped: its reply reader no longer holds a connection
            arrive(second, "Ben Fox")
            assert len(list(rt.engine.sessions())) == 2

    run(main())


def test_reads_of_the_kept_log_are_paged(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A joiner's and a follower's range reads ask for at most PAGE entries at once (the kept log is 60,000
    entries at 200 events/s), and paging loses nothing: the joiner's events and engine are the leader's."""
    monkeypatch.setattr(follower_module, "PAGE", 2)
    monkeypatch.setattr(member_module, "PAGE", 2)
    counts: list[int | None] = []
    read = OrgLog.read

    def counted(self: OrgLog, after: int, count: int | None = None, sub: int = 0) -> list[Record]:
        counts.append(count)
        return read(self, after, count, sub)

    monkeypatch.setattr(OrgLog, "read", counted)
    site = cluster_site(tmp_path, redis_server.url)

    async def main() -> None:
        async with serving(site, tmp_path / "a") as first:
            assert first.runtime is not None and first.runtime.cluster is not None
            for name in ("Ann Lee", "Ben Fox", "Cy Park", "Di Moss", "Ed Ray"):
                arrive(first, name)
            first.runtime.cluster._next_snapshot = 0.0
            first.runtime.housekeeping()  # a snapshot at the head: the joiner's events before it come from _before
            for name in ("Fay Lo", "Gus Ng", "Hal Ito"):
                arrive(first, name)
            async with serving(site, tmp_path / "b") as second:
                rt = second.runtime
                assert rt is not None
                await eventually(lambda: rt.engine.seq == first.runtime.engine.seq)  # type: ignore[union-attr]
                assert persist.dump(rt.engine) == persist.dump(first.runtime.engine)
                assert rt.store.load_events() == first.runtime.store.load_events()
        assert counts and all(count == 2 for count in counts)

    run(main())


def test_a_followers_lease_poll_does_not_hold_its_loop() -> None:
    """The poll (every 0.5 s, a socket timeout of lease_ttl / 3) runs in a thread: while Redis stalls, the
    follower's loop goes on serving its consoles.  Here the lease acquisition waits for the loop itself."""
    loop_ran = threading.Event()
    saw: list[bool] = []

    def try_lead() -> bool:
        saw.append(loop_ran.wait(5.0))  # on the loop itself (before), nothing can set it: False after 5 s
        return True  # it leads: _take_over runs, the watch ends

    member = SimpleNamespace(poll=0.0, halted=False, node=SimpleNamespace(try_lead=try_lead, lease=SimpleNamespace(release=lambda: None)))
    member._take_over = lambda: None
    member._following = lambda: True

    async def main() -> None:
        watch = asyncio.create_task(member_module.Member._watch(member))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # a turn of the loop while the poll waits (not a timing: any turn will do)
        loop_ran.set()
        async with asyncio.timeout(10.0):
            await watch

    run(main())
    assert saw == [True]


def test_a_followers_presence_loop_ends_at_a_take_over_even_when_its_cancellation_is_lost() -> None:
    """A take-over cancels the presence loop in the same turn as a console leaving sets its event.
    With 3.11's ``wait_for`` the set won and the cancellation was lost: the loop went on telling
    "presence" to a leader that was now this process, and held the event loop's shutdown (a CI run
    hung until its limit).  The loop must end, and tell nothing more."""
    told: list[object] = []

    async def tell(request: object) -> None:
        told.append(request)

    member = SimpleNamespace(leads=False, halted=False, stopped=False, forwarder=SimpleNamespace(tell=tell))
    member._presence_request = lambda: "here"
    member._following = lambda: member_module.Member._following(member)  # type: ignore[arg-type]

    async def main() -> None:
        member._presence_due = asyncio.Event()
        loop = asyncio.create_task(member_module.Member._tell_presence(member))  # type: ignore[arg-type]
        async with asyncio.timeout(5.0):
            while not told:
                await asyncio.sleep(0)
            for _ in range(3):
                await asyncio.sleep(0)  # into the wait for the next presence
            # _take_over: it leads now and cancels the loop, while a console leaving sets the event.
            member.leads = True
            member._presence_due.set()
            loop.cancel()
            await asyncio.wait({loop})
        assert loop.done()

    run(main())
    assert told == ["here"]


def test_a_stored_answer_and_its_logged_record_carry_the_same_time(redis_server: RedisServer, tmp_path: Path) -> None:
    """Server._command read the clock twice: the leader's row and the record every other process stores differed."""
    site = cluster_site(tmp_path, redis_server.url)
    ticks = itertools.count(1)
    clock = WallClock(wall=lambda: 1_800_000_000.0 + next(ticks))  # every reading later than the last

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            rt = server.runtime
            assert rt is not None
            alice = await RepClient.logged_in(server, "alice")
            await alice.ok("accept", session=arrive(server))
            await alice.close()
            logged = [r for rec in OrgLog(connect(redis_server.url), KEYS).read(0) for r in decode_entry(rec.data).records]
            answers = [r for r in logged if isinstance(r, AnswerRecord)]
            assert answers
            for answer in answers:
                stored = rt.store.answer(answer.login, answer.request)
                assert stored is not None and stored[0] == answer.at

    run(main())
