"""Co-browse relays across processes (repconsole/server/cluster/relay.py) on a real redis-server.

Two :class:`RedisRelay` instances on one Redis stand for two processes.
Process B's desk is a small stand-in (:class:`MirrorDesk`: the core relay
and the calls the backend makes); process A is either a stand-in too or a
real server in cluster mode with a real recorder socket, so that the hooks
in repconsole/server/cobrowse.py are what is tested.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)
from server_helpers import CustomerClient, RecorderClient, RepClient, eventually, page_change, page_snapshot, run, serving, write_site

from repconsole.core.cobrowse import Changed, Effect, Relay, WatchersChanged
from repconsole.protocol import CobrowseState, Started, Via
from repconsole.server.cluster.relay import RedisRelay, channel
from repconsole.server.cobrowse import CobrowseDesk

ORG = "acme"


class MirrorDesk:
    """What RedisRelay needs of a desk: the core relay and the calls it makes back, recorded."""

    def __init__(self, backend: RedisRelay) -> None:
        self.relay = Relay(time.time, monotonic=time.monotonic)
        self.backend = backend
        self.recording: set[str] = set()
        self.told: list[bytes] = []
        self.ended: list[tuple[str, str]] = []
        self.replaced_sessions: list[str] = []
        self.changes = 0
        backend.start(self)  # type: ignore[arg-type]  # the stand-in has what the backend calls

    def apply(self, effects: Iterable[Effect]) -> None:
        for e in effects:
            if isinstance(e, Changed):
                self.changes += 1
                stream = self.relay.stream(e.session)
                if stream is not None and e.session in self.recording:
                    self.backend.changed(stream)
            elif isinstance(e, WatchersChanged) and e.session not in self.recording:
                self.backend.watching(e.session, e.reps)

    def remote_watchers(self, sid: str, node: str, reps: Iterable[str]) -> None:
        stream = self.relay.stream(sid)
        if stream is None:
            return
        for key in [k for k in stream.viewers if isinstance(k, tuple) and k[1] == node]:
            self.relay.unwatch(sid, key)
        for rep in reps:
            self.relay.watch(sid, ("node", node, rep), rep)

    def replaced(self, sid: str) -> None:
        self.replaced_sessions.append(sid)
        self.recording.discard(sid)
        self.apply(self.relay.detach(sid))

    def drop_rep(self, sid: str, rep: str) -> None:
        effects, _ = self.relay.drop_rep(sid, rep)
        self.apply(effects)

    def tell_recorder(self, sid: str, frame: bytes) -> None:
        self.told.append(frame)

    def end(self, sid: str, detail: str) -> None:
        self.ended.append((sid, detail))
        self.relay.end(sid, detail)
        self.backend.ended(sid, detail)

    # -------------------------------------------------- driving it

    def attach(self, sid: str) -> None:
        self.recording.add(sid)
        effects = self.relay.attach(sid, url="https://shop.example/", title="Shop")
        self.backend.recording(sid)
        self.apply(effects)

    def record(self, sid: str, events: list[Any]) -> None:
        from repconsole.protocol import Record

        stream = self.relay.stream(sid)
        assert stream is not None
        no = getattr(self, "_batch", 0)
        self._batch = no + 1
        self.apply(self.relay.record(sid, Record(no, 0, 1, json.dumps(events, separators=(",", ":")))))

    def watch(self, sid: str, viewer: str, rep: str) -> None:
        self.apply(self.relay.watch(sid, viewer, rep))

    def unwatch(self, sid: str, viewer: str) -> None:
        self.apply(self.relay.unwatch(sid, viewer))

    def texts(self, sid: str) -> list[str]:
        stream = self.relay.stream(sid)
        return [b.text for b in stream.buffer] if stream is not None else []


def numsub(server: RedisServer, sid: str) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        [(_, n)] = client.pubsub_numsub(channel(ORG, sid))
        return int(n)
    finally:
        client.close()


async def two(server: RedisServer) -> tuple[RedisRelay, MirrorDesk, RedisRelay, MirrorDesk]:
    a, b = RedisRelay(server.url, ORG, node="a"), RedisRelay(server.url, ORG, node="b")
    return a, MirrorDesk(a), b, MirrorDesk(b)


def test_frames_recorded_on_one_process_reach_the_watchers_of_another_in_order(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, desk_a, b, desk_b = await two(redis_server)
        try:
            desk_a.attach("S1")
            desk_a.record("S1", page_snapshot("Hello"))
            desk_b.watch("S1", "console-1", "bob")
            await eventually(lambda: desk_b.texts("S1") == desk_a.texts("S1"))
            await eventually(lambda: desk_a.relay.stream("S1").reps() == ("bob",))  # type: ignore[union-attr]
            for n in range(200):
                desk_a.record("S1", [page_change(f"change {n}")])
            await eventually(lambda: len(desk_b.texts("S1")) == 201)
            assert desk_b.texts("S1") == desk_a.texts("S1")  # every batch, in order
            assert [b.no for b in desk_b.relay.stream("S1").buffer] == list(range(201))  # type: ignore[union-attr]
            assert desk_b.relay.stream("S1").state is CobrowseState.LIVE  # type: ignore[union-attr]

            b.tell("S1", b'{"type":"pointer"}')  # a rep's pointer on B reaches the recorder on A
            await eventually(lambda: desk_a.told == [b'{"type":"pointer"}'])
        finally:
            await a.aclose()
            await b.aclose()

    run(main())


def test_a_late_subscriber_asks_for_the_buffer_and_gets_the_snapshot_and_every_change_since(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, desk_a, b, desk_b = await two(redis_server)
        try:
            desk_a.attach("S1")
            desk_a.record("S1", page_snapshot("Old"))
            desk_a.record("S1", [page_change("before the new snapshot")])
            desk_a.record("S1", page_snapshot("Hello"))  # the buffer starts again here
            for n in range(30):
                desk_a.record("S1", [page_change(f"change {n}")])
            await a.drain()
            published = a.published
            assert published == 1  # the attach; nobody elsewhere watched, so no batch went out

            desk_b.watch("S1", "console-1", "bob")
            await eventually(lambda: len(desk_b.texts("S1")) == 31)
            assert desk_b.texts("S1") == desk_a.texts("S1")
            assert "Hello" in desk_b.texts("S1")[0] and "Old" not in "".join(desk_b.texts("S1"))
            desk_a.record("S1", [page_change("live")])
            await eventually(lambda: desk_b.texts("S1")[-1:] == desk_a.texts("S1")[-1:])

            # A second late joiner (another process) gets the buffer; B, in step, takes nothing twice.
            c = RedisRelay(redis_server.url, ORG, node="c")
            desk_c = MirrorDesk(c)
            changes_b = desk_b.changes
            desk_c.watch("S1", "console-2", "carol")
            await eventually(lambda: desk_c.texts("S1") == desk_a.texts("S1"))
            await b.drain()
            await asyncio.sleep(0.2)
            assert desk_b.texts("S1") == desk_a.texts("S1") and desk_b.changes <= changes_b + 1  # the status only
            assert desk_a.relay.stream("S1").reps() == ("bob", "carol")  # type: ignore[union-attr]
            await c.aclose()
        finally:
            await a.aclose()
            await b.aclose()

    run(main())


def test_unwatch_and_session_end_unsubscribe(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, desk_a, b, desk_b = await two(redis_server)
        try:
            desk_a.attach("S1")
            desk_a.record("S1", page_snapshot("Hello"))
            desk_b.watch("S1", "console-1", "bob")
            await eventually(lambda: desk_b.texts("S1") == desk_a.texts("S1"))
            assert numsub(redis_server, "S1") == 2
            desk_b.unwatch("S1", "console-1")  # nobody on B watches: B stops listening, A knows
            await eventually(lambda: numsub(redis_server, "S1") == 1)
            assert desk_b.relay.stream("S1") is None and b.subscribed() == set()
            await eventually(lambda: desk_a.relay.stream("S1").reps() == ())  # type: ignore[union-attr]

            desk_b.watch("S1", "console-1", "bob")
            await eventually(lambda: desk_b.texts("S1") == desk_a.texts("S1"))
            desk_a.end("S1", "the customer left")
            await eventually(lambda: desk_b.ended == [("S1", "the customer left")])
            await eventually(lambda: numsub(redis_server, "S1") == 0)
            assert a.subscribed() == set() == b.subscribed()
        finally:
            await a.aclose()
            await b.aclose()

    run(main())


def test_a_page_that_attaches_on_another_process_moves_the_recording_there(redis_server: RedisServer) -> None:
    async def main() -> None:
        a, desk_a, b, desk_b = await two(redis_server)
        try:
            desk_a.attach("S1")
            desk_a.record("S1", page_snapshot("Page one"))
            desk_b.watch("S1", "console-1", "bob")
            desk_a.watch("S1", "console-2", "alice")
            await eventually(lambda: desk_b.texts("S1") == desk_a.texts("S1"))

            desk_b.attach("S1")  # the customer reloaded and the page reconnected to B
            await eventually(lambda: desk_a.replaced_sessions == ["S1"])
            desk_b.record("S1", page_snapshot("Page two"))
            await eventually(lambda: any("Page two" in t for t in desk_a.texts("S1")))
            assert desk_a.texts("S1") == desk_b.texts("S1")
            await eventually(lambda: desk_b.relay.stream("S1").reps() == ("alice", "bob"))  # type: ignore[union-attr]
        finally:
            await a.aclose()
            await b.aclose()

    run(main())


# ------------------------------------------------- a real server as the recording process


def test_a_real_servers_recorder_streams_to_a_console_on_another_process(redis_server: RedisServer, tmp_path: Path) -> None:
    """Process A: a server in cluster mode, the customer's page and its recorder socket.  Process B: a relay whose
    console (bob) watches.  What B gets is the page; what the recorder hears names B's rep; B's pointer reaches it."""

    async def main() -> None:
        (tmp_path / "site").mkdir()
        site = write_site(tmp_path / "site", extra=f'[cluster]\nredis_url = "{redis_server.url}"\norganisation = "{ORG}"\nlease_ttl = 2\n')
        async with serving(site, tmp_path / "data") as server:
            desk = server.cobrowse
            assert isinstance(desk, CobrowseDesk) and isinstance(desk.backend, RedisRelay)
            alice = await RepClient.logged_in(server, "alice")
            customer = await CustomerClient.open(server)
            reply = await customer.start(Via.LINK, "link-alice", "Ann Lee", page_url="https://shop.example/")
            assert isinstance(reply, Started), reply
            sid = reply.session
            await alice.ok("accept", session=sid)
            recorder = await RecorderClient.attached_to(server, reply.token)
            await recorder.record(page_snapshot("Hello"))

            b = RedisRelay(redis_server.url, ORG, node="b")
            desk_b = MirrorDesk(b)
            try:
                desk_b.watch(sid, "console-1", "bob")
                await eventually(lambda: len(desk_b.texts(sid)) == 1)
                await recorder.until(lambda: bool(recorder.watching) and recorder.watching[-1].reps == ["Bob Ortiz"])
                for n in range(20):
                    await recorder.record([page_change(f"change {n}")])
                await eventually(lambda: len(desk_b.texts(sid)) == 21)
                own = desk.relay.stream(sid)
                assert own is not None and desk_b.texts(sid) == [b.text for b in own.buffer]

                from repconsole.protocol import Pointer, encode

                b.tell(sid, encode(Pointer(10, 20, "Bob Ortiz")))
                await recorder.until(lambda: bool(recorder.pointers))
                assert recorder.pointers[-1].by == "Bob Ortiz"

                await recorder.stop()
                await eventually(lambda: desk_b.relay.stream(sid).state is CobrowseState.STOPPED)  # type: ignore[union-attr]
                assert desk_b.texts(sid) == []
            finally:
                await b.aclose()

    run(main())


def test_a_mirror_keeps_the_buffers_bound_and_starts_again_at_each_snapshot() -> None:
    from repconsole.core.cobrowse import Limits

    relay = Relay(time.time, limits=Limits(buffer_bytes=100))
    assert relay.relayed("S1", "[inc]", 5, 1.0, snapshot=False) == []  # nothing to build on yet
    assert relay.relayed("S1", "[snap]", 60, 1.0, snapshot=True) == [Changed("S1")]
    assert relay.relayed("S1", "[inc]", 30, 2.0, snapshot=False) == [Changed("S1")]
    stream = relay.stream("S1")
    assert stream is not None and [b.no for b in stream.buffer] == [0, 1] and stream.batch_from(None) is stream.buffer[0]
    assert relay.relayed("S1", "[inc]", 30, 3.0, snapshot=False) == []  # over 100 bytes: dropped, a snapshot is needed
    assert stream.need_snapshot and stream.buffer == [] and stream.batch_from(2) is None
    assert relay.relayed("S1", "[snap2]", 50, 4.0, snapshot=True) == [Changed("S1")]
    assert [(b.no, b.text) for b in stream.buffer] == [(2, "[snap2]")]  # numbers go on: a cursor stays meaningful
    assert stream.batch_from(2) is stream.buffer[0] and stream.batch_from(1) is stream.buffer[0]


def test_a_real_servers_console_watches_a_page_recorded_on_another_process(redis_server: RedisServer, tmp_path: Path) -> None:
    """Process A: a server in cluster mode whose console (alice) watches; the page's recorder is on process O
    (a relay of its own).  Alice gets the snapshot and every change in order through A's mirror, her pointer
    reaches O, her unwatch unsubscribes A, and O's end of the session ends her watch."""

    async def main() -> None:
        from repconsole.protocol import CobrowseName, Pointer, parse_recorder_reply

        (tmp_path / "site").mkdir()
        site = write_site(tmp_path / "site", extra=f'[cluster]\nredis_url = "{redis_server.url}"\norganisation = "{ORG}"\nlease_ttl = 2\n')
        async with serving(site, tmp_path / "data") as server:
            desk = server.cobrowse
            assert isinstance(desk, CobrowseDesk) and isinstance(desk.backend, RedisRelay)
            alice = await RepClient.logged_in(server, "alice")
            customer = await CustomerClient.open(server)
            reply = await customer.start(Via.LINK, "link-alice", "Ann Lee", page_url="https://shop.example/")
            assert isinstance(reply, Started), reply
            sid = reply.session
            await alice.ok("accept", session=sid)

            o = RedisRelay(redis_server.url, ORG, node="o")
            desk_o = MirrorDesk(o)
            try:
                desk_o.attach(sid)
                desk_o.record(sid, page_snapshot("Hello"))
                await alice.ok(CobrowseName.WATCH, session=sid)
                await alice.until(lambda: alice.page.texts(sid) == ["Hello"])
                await eventually(lambda: desk_o.relay.stream(sid).reps() == ("alice",))  # type: ignore[union-attr]
                for n in range(20):
                    desk_o.record(sid, [page_change(f"change {n}")])
                await alice.until(lambda: len(alice.page.texts(sid)) == 21)
                assert alice.page.texts(sid) == ["Hello", *(f"change {n}" for n in range(20))]
                assert alice.page.state(sid) is CobrowseState.LIVE

                await alice.ok(CobrowseName.POINT, session=sid, x=5, y=6)
                await eventually(lambda: bool(desk_o.told))
                pointer = parse_recorder_reply(desk_o.told[-1])
                assert isinstance(pointer, Pointer) and (pointer.x, pointer.y, pointer.by) == (5, 6, "Alice Ng")

                await alice.ok(CobrowseName.UNWATCH, session=sid)
                await eventually(lambda: desk_o.relay.stream(sid).reps() == ())  # type: ignore[union-attr]
                await eventually(lambda: numsub(redis_server, sid) == 1)  # only O listens
                assert desk.relay.stream(sid) is None

                await alice.ok(CobrowseName.WATCH, session=sid)
                await alice.until(lambda: alice.page.state(sid) is CobrowseState.LIVE and len(alice.page.texts(sid)) >= 21)
                desk_o.end(sid, "the session has ended")
                await alice.until(lambda: alice.page.state(sid) is CobrowseState.ENDED)
                await eventually(lambda: numsub(redis_server, sid) == 0)
            finally:
                await o.aclose()

    run(main())


def test_a_process_that_dies_leaves_nothing_stale(redis_server: RedisServer) -> None:
    """kill -9 sends no goodbye: the origin forgets a silent mirror's reps, a mirror whose origin went silent says
    the page is waiting, and the page's next attach (on a third process) streams to it again."""

    async def main() -> None:
        a = RedisRelay(redis_server.url, ORG, node="a", refresh=0.1)
        b = RedisRelay(redis_server.url, ORG, node="b", refresh=0.1)
        c = RedisRelay(redis_server.url, ORG, node="c", refresh=0.1)
        desk_a, desk_b, desk_c = MirrorDesk(a), MirrorDesk(b), MirrorDesk(c)
        try:
            desk_a.attach("S1")
            desk_a.record("S1", page_snapshot("Hello"))
            desk_b.watch("S1", "console-1", "bob")
            desk_c.watch("S1", "console-2", "carol")
            await eventually(lambda: desk_a.relay.stream("S1").reps() == ("bob", "carol"))  # type: ignore[union-attr]
            await c.aclose()  # c dies
            await eventually(lambda: desk_a.relay.stream("S1").reps() == ("bob",))  # type: ignore[union-attr]
            await asyncio.sleep(0.5)
            assert desk_b.relay.stream("S1").state is CobrowseState.LIVE  # type: ignore[union-attr]  # a is alive

            await a.aclose()  # the origin dies
            await eventually(lambda: desk_b.relay.stream("S1").state is CobrowseState.WAITING)  # type: ignore[union-attr]
            assert desk_b.relay.stream("S1").detail == "the page's server stopped answering"  # type: ignore[union-attr]

            d = RedisRelay(redis_server.url, ORG, node="d", refresh=0.1)
            desk_d = MirrorDesk(d)
            desk_d.attach("S1")  # the page reconnected to d
            desk_d.record("S1", page_snapshot("Back"))
            await eventually(lambda: any("Back" in t for t in desk_b.texts("S1")))
            await eventually(lambda: desk_b.relay.stream("S1").state is CobrowseState.LIVE)  # type: ignore[union-attr]
            await eventually(lambda: desk_d.relay.stream("S1").reps() == ("bob",))  # type: ignore[union-attr]
            await d.aclose()
        finally:
            await a.aclose()
            await b.aclose()

    run(main())


def test_end_to_end_the_customers_page_on_the_leader_and_the_reps_console_on_a_follower(redis_server: RedisServer, tmp_path: Path) -> None:
    """Issue 15: the customer's page and its recorder socket on process A (the leader), the rep's console on process
    B (a follower): the rep watches, gets the snapshot and every change in order, the recorder hears her name and her
    pointer, and the session's end (her command, forwarded to A) ends her watch."""

    async def main() -> None:
        from repconsole.protocol import CobrowseName

        (tmp_path / "site").mkdir()
        site = write_site(tmp_path / "site", extra=f'[cluster]\nredis_url = "{redis_server.url}"\norganisation = "{ORG}"\nlease_ttl = 2\n')
        async with serving(site, tmp_path / "a") as a, serving(site, tmp_path / "b") as b:
            assert b.runtime is not None and b.runtime.follows
            customer = await CustomerClient.open(a)
            reply = await customer.start(Via.LINK, "link-alice", "Ann Lee", page_url="https://shop.example/")
            assert isinstance(reply, Started), reply
            sid = reply.session
            alice = await RepClient.logged_in(b, "alice")  # on the follower
            await alice.ok("accept", session=sid)  # forwarded to the leader
            await eventually(lambda: b.runtime.engine.session(sid).owner == "alice")  # type: ignore[union-attr]
            recorder = await RecorderClient.attached_to(a, reply.token)
            await recorder.record(page_snapshot("Hello"))

            await alice.ok(CobrowseName.WATCH, session=sid)
            await alice.until(lambda: alice.page.texts(sid) == ["Hello"])
            await recorder.until(lambda: bool(recorder.watching) and recorder.watching[-1].reps == ["Alice Ng"])
            assert isinstance(b.cobrowse, CobrowseDesk) and isinstance(b.cobrowse.backend, RedisRelay)
            assert sid in b.cobrowse.backend.subscribed() and b.cobrowse.counts()["recorders"] == 0  # B mirrors: the page is on A
            for n in range(30):
                await recorder.record([page_change(f"change {n}")])
            await alice.until(lambda: len(alice.page.texts(sid)) == 31)
            assert alice.page.texts(sid) == ["Hello", *(f"change {n}" for n in range(30))]
            assert alice.page.state(sid) is CobrowseState.LIVE

            await alice.ok(CobrowseName.POINT, session=sid, x=1, y=2)
            await recorder.until(lambda: bool(recorder.pointers))
            assert recorder.pointers[-1].by == "Alice Ng"

            await alice.ok("end", session=sid)  # forwarded; the leader's relay ends the stream everywhere
            await alice.until(lambda: alice.page.state(sid) is CobrowseState.ENDED)
            await eventually(lambda: numsub(redis_server, sid) == 0)

    run(main())


def test_a_rep_on_a_follower_who_leaves_the_session_stops_watching(redis_server: RedisServer, tmp_path: Path) -> None:
    """The leader sees alice leave the session (a transfer forwarded from her console on the follower): her watch
    there ends (``revoke``), the recorder hears nobody watches, and nothing more of the page reaches her."""

    async def main() -> None:
        from repconsole.protocol import CobrowseName

        (tmp_path / "site").mkdir()
        site = write_site(tmp_path / "site", extra=f'[cluster]\nredis_url = "{redis_server.url}"\norganisation = "{ORG}"\nlease_ttl = 2\n')
        async with serving(site, tmp_path / "a") as a, serving(site, tmp_path / "b") as b:
            customer = await CustomerClient.open(a)
            reply = await customer.start(Via.LINK, "link-alice", "Ann Lee", page_url="https://shop.example/")
            assert isinstance(reply, Started), reply
            sid = reply.session
            alice = await RepClient.logged_in(b, "alice")
            await alice.ok("accept", session=sid)
            await eventually(lambda: b.runtime.engine.session(sid).owner == "alice")  # type: ignore[union-attr]
            recorder = await RecorderClient.attached_to(a, reply.token)
            await recorder.record(page_snapshot("Hello"))
            await alice.ok(CobrowseName.WATCH, session=sid)
            await alice.until(lambda: alice.page.texts(sid) == ["Hello"])
            await recorder.until(lambda: bool(recorder.watching) and recorder.watching[-1].reps == ["Alice Ng"])

            await alice.ok("transfer", session=sid, target="team:net")  # alice is out of the session
            await recorder.until(lambda: recorder.watching[-1].reps == [])
            assert isinstance(b.cobrowse, CobrowseDesk)
            await eventually(lambda: b.cobrowse.relay.stream(sid) is None)  # type: ignore[union-attr]  # B dropped its mirror
            await recorder.record([page_change("after the transfer")])
            await asyncio.sleep(0.3)
            await alice.drain()
            assert alice.page.texts(sid) == ["Hello"]

    run(main())


def test_a_failed_subscribe_keeps_no_waiter_and_the_subscriber_checks_its_connection(redis_server: RedisServer) -> None:
    """Review rev15: a subscribe that fails must not leave its confirmation waiter behind (one per failed
    subscribe, for the process's life); the subscriber connection has a health check (a PING after quiet),
    so a dead connection (a Redis restart, a cut) is found rather than waited on."""

    async def main() -> None:
        relay = RedisRelay(redis_server.url, "acme")

        async def broken(*args: object, **kwargs: object) -> None:
            raise redis.ConnectionError("Redis went away")

        relay._pubsub.subscribe = broken  # type: ignore[method-assign]
        relay._writer = asyncio.get_running_loop().create_task(relay._write())
        try:
            relay._ops.put_nowait(("sub", "S1", b""))
            await relay.drain()
            assert relay._confirmed == {}
            assert relay._sub.connection_pool.connection_kwargs.get("health_check_interval", 0) > 0
        finally:
            await relay.aclose()

    run(main())
