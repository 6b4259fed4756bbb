"""The fan-out in isolation: projection, batching, grouping, backlog, slow consumers, the ring."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import pytest
from engine_helpers import RandomDriver, build_site, intake

from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event
from repconsole.core.feed import RepFeed
from repconsole.protocol import Event as WireEvent
from repconsole.protocol import Events, RepData, RepStatus, RepView, SessionGoneEvent, encode, parse_rep_reply
from repconsole.server import fanout as fanout_module
from repconsole.server.fanout import Fanout, RepLink, encode_event


def item(raw: bytes) -> WireEvent:
    """One pre-encoded event, typed."""
    return msgspec.json.decode(raw, type=WireEvent)


class FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeWs:
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport = FakeTransport()
        self.frames: list[Events] = []
        self.raw: list[bytes] = []
        self.closed: int | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = code


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], Events]]:
    calls: list[tuple[list[str], Events]] = []

    def fake_broadcast(connections: list[FakeWs], frame: bytes, *, text: bool) -> None:
        assert text is True
        message = parse_rep_reply(frame)
        assert isinstance(message, Events), message
        calls.append(([ws.name for ws in connections], message))
        for ws in connections:
            ws.frames.append(message)
            ws.raw.append(frame)

    monkeypatch.setattr(fanout_module, "broadcast", fake_broadcast)
    return calls


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _traffic() -> tuple[list[Event], Any]:
    site = build_site()
    e = site.engine
    a = e.start_with_issue("vpn", intake("Ann"))
    e.start_with_issue("invoice", intake("Bo"))
    e.accept("alice", a.id)  # bob and erin lose sight of it: session_gone
    e.say("alice", a.id, "hi")
    e.team_say("erin", "bill", "psst")
    return list(site.events), site


def _link(fo: Fanout, name: str, rep: str, prev: int = 0, *, ready: bool = True) -> RepLink:
    link = RepLink(FakeWs(name), rep, None, prev)  # type: ignore[arg-type]
    fo.attach(link)
    if ready:
        fo.ready(link)
    return link


def test_each_rep_gets_exactly_its_feed_and_identical_frames_are_written_once(writes: list, loop: Any) -> None:
    events, _ = _traffic()
    fo = Fanout(loop, seq=0, resume_window=300, clock=lambda: 0.0)
    links = {name: _link(fo, name, rep) for name, rep in [("bob1", "bob"), ("bob2", "bob"), ("erin", "erin"), ("dave", "dave"), ("alice", "alice")]}
    fo.publish([encode_event(e) for e in events])
    fo.flush()
    for name, link in links.items():
        feed = RepFeed(link.rep)
        expected = [fe for e in events if (fe := feed.project(e)) is not None]
        got = [item for frame in link.ws.frames for item in frame.events]
        assert got == expected, name
    # bob's two consoles got one write; dave (nothing to see) got none.
    assert sorted(sorted(names) for names, _ in writes) == [["alice"], ["bob1", "bob2"], ["erin"]]
    assert all(frame.prev == 0 for _, frame in writes)


def test_an_event_is_encoded_at_most_twice() -> None:
    events, _ = _traffic()
    taken = next(e for e in events if e.gone)
    logged = encode_event(taken)
    assert item(logged.item).data == taken.data
    assert isinstance(item(logged.gone_item), SessionGoneEvent)
    assert encode_event(events[0]).gone_item is None


def test_events_wait_behind_a_snapshot_and_follow_it_in_order(writes: list, loop: Any) -> None:
    events, _ = _traffic()
    fo = Fanout(loop, seq=0, resume_window=300, clock=lambda: 0.0)
    link = _link(fo, "bob", "bob", prev=0, ready=False)
    fo.publish([encode_event(e) for e in events[:2]])
    fo.flush()
    assert writes == [] and len(link.backlog) == 1  # the invoice is not bob's
    fo.ready(link)
    fo.publish([encode_event(e) for e in events[2:]])
    fo.flush()
    frames = link.ws.frames
    assert frames[0].prev == 0 and frames[1].prev == frames[0].events[-1].seq


def test_a_connection_that_does_not_drain_is_closed_4408(writes: list, loop: Any) -> None:
    events, _ = _traffic()
    fo = Fanout(loop, seq=0, resume_window=300, slow_limit=1000, clock=lambda: 0.0)
    slow, fine = _link(fo, "slow", "bob"), _link(fo, "fine", "bob")
    slow.ws.transport.buffered = 5000
    fo.publish([encode_event(e) for e in events])
    fo.flush()
    loop.run_until_complete(asyncio.sleep(0))
    assert slow.dropped and slow.ws.closed == 4408 and not slow.ws.frames
    assert fine.ws.frames and fo.has_links("bob")
    # A console still waiting for its snapshot is dropped when its backlog passes the limit.
    waiting = _link(fo, "waiting", "alice", ready=False)
    fo.publish([encode_event(e) for e in events] * 20)
    fo.flush()
    loop.run_until_complete(asyncio.sleep(0))
    assert waiting.dropped and waiting.ws.closed == 4408


def test_the_ring_serves_resumes_within_its_window(loop: Any) -> None:
    events, _ = _traffic()
    now = [100.0]
    fo = Fanout(loop, seq=0, resume_window=60, ring_limit=1000, clock=lambda: now[0])
    logged = [encode_event(e) for e in events]
    fo.publish(logged)
    items, last = fo.replay("bob", 0)
    assert [item(i).seq for i in items] == [e.seq for e in events if "bob" in e.audience or "bob" in e.gone]
    assert last == item(items[-1]).seq
    assert fo.replay("bob", fo.seq) == ([], fo.seq)
    assert fo.replay("bob", fo.seq + 1) is None
    now[0] = events[-1].at + 61  # ManualClock time of the events is T0; all are older than the window
    fo.prune()
    assert fo.floor == fo.seq and fo.replay("bob", 0) is None and fo.replay("bob", fo.seq) == ([], fo.seq)
    fo.ring_limit = 2
    clock = ManualClock(now[0])
    someone = RepData(RepView("bob", "Bob Ortiz", ["net"], RepStatus.AVAILABLE, 3, True, None))
    more = [encode_event(Event(fo.seq + i, clock(), someone, frozenset({"bob"}))) for i in range(1, 5)]
    fo.publish(more)
    fo.prune()
    assert fo.floor == more[1].seq and fo.replay("bob", more[0].seq) is None and len(fo.replay("bob", more[1].seq)[0]) == 2


@pytest.mark.parametrize("disjoint_check", [0, fanout_module.DISJOINT_CHECK, 1000])
@pytest.mark.parametrize("seed", range(4))
def test_frames_made_per_audience_are_byte_for_byte_what_per_connection_encoding_writes(
    writes: list, loop: Any, seed: int, disjoint_check: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random traffic, flushed at random moments, to consoles that start (snapshot) and resume
    (replay) in the middle of a tick: each connection's frames are exactly
    ``encode(Events(prev, [its events]))`` with its own ``prev``, which is what encoding per
    connection wrote, and together with its snapshot or replay they are every event its rep
    may see, each once, in order.  Whichever way a tick's reps are found (``disjoint_check``
    0: by mask unless the tick has one audience; 1,000: by set intersection whenever the
    audiences do not overlap), and both ways are taken."""
    monkeypatch.setattr(fanout_module, "DISJOINT_CHECK", disjoint_check)
    by_mask = [0]
    real_by_mask = Fanout._by_mask

    def counted(*args: Any) -> Any:
        by_mask[0] += 1
        return real_by_mask(*args)

    monkeypatch.setattr(Fanout, "_by_mask", staticmethod(counted))
    site = build_site(seed)
    fo = Fanout(loop, seq=site.engine.seq, resume_window=1e9, clock=lambda: 0.0)
    driver = RandomDriver(site, seed)
    driver.run(50)  # some history for the resumes to replay
    rng = random.Random(seed)
    reps = sorted(site.engine.reps)
    # Per connection: its link, the seq it started from, and what its snapshot or replay served.
    started: list[tuple[RepLink, int, list[WireEvent]]] = []
    waiting: list[RepLink] = []  # snapshot or replay still being sent
    logged_so_far = 0

    def publish() -> None:
        nonlocal logged_so_far
        fresh = site.events[logged_so_far:]
        logged_so_far = len(site.events)
        fo.publish([encode_event(e) for e in fresh])

    publish()
    for n in range(800):
        driver.step()
        publish()
        roll = rng.random()
        rep = rng.choice(reps)
        if roll < 0.06:  # a sign-in: a snapshot as of now, events pending in the tick included
            link = RepLink(FakeWs(f"snap{n}"), rep, None, fo.seq)  # type: ignore[arg-type]
            fo.attach(link)
            started.append((link, fo.seq, []))
            waiting.append(link)
        elif roll < 0.12:  # a resume from some seq back: the replay covers what waits in the tick
            last_seq = rng.randrange(max(0, fo.seq - 40), fo.seq + 1)
            replay = fo.replay(rep, last_seq)
            assert replay is not None
            items, last = replay
            link = RepLink(FakeWs(f"resume{n}"), rep, None, last, served=fo.seq)  # type: ignore[arg-type]
            fo.attach(link)
            started.append((link, last_seq, [item(i) for i in items]))
            waiting.append(link)
        elif roll < 0.4:
            fo.flush()
        if waiting and rng.random() < 0.3:
            fo.ready(waiting.pop(rng.randrange(len(waiting))))
    fo.flush()
    for link in waiting:
        fo.ready(link)
    assert len(started) > 40
    for link, since, served in started:
        feed = RepFeed(link.rep)
        expected = [fe for e in site.events if e.seq > since and (fe := feed.project(e)) is not None]
        prev = served[-1].seq if served else since
        got = list(served)
        for raw in link.ws.raw:
            frame = parse_rep_reply(raw)
            assert isinstance(frame, Events) and frame.prev == prev and frame.events
            assert raw == encode(Events(prev, frame.events))  # what encoding per connection made
            got.extend(frame.events)
            prev = frame.events[-1].seq
        assert got == expected, link
    if disjoint_check == 0:
        assert by_mask[0] > 0


def test_a_console_that_starts_mid_tick_does_not_force_the_tick_out(writes: list, loop: Any) -> None:
    """A sign-in or resume while events wait for the tick: nothing is written before the
    tick, and the new console's frame leaves out what its snapshot or replay covered."""
    events, _ = _traffic()
    fo = Fanout(loop, seq=0, resume_window=300, clock=lambda: 0.0)
    early = _link(fo, "bob-early", "bob")
    fo.publish([encode_event(e) for e in events[:3]])
    since = fo.seq
    late = RepLink(FakeWs("bob-late"), "bob", None, since)  # type: ignore[arg-type]  # a snapshot as of now
    fo.attach(late)
    fo.ready(late)
    assert writes == []  # the tick is not forced out
    fo.publish([encode_event(e) for e in events[3:]])
    fo.flush()
    feed = RepFeed("bob")
    mine = [fe for e in events if (fe := feed.project(e)) is not None]
    assert [fe for frame in early.ws.frames for fe in frame.events] == mine
    assert [fe for frame in late.ws.frames for fe in frame.events] == [fe for fe in mine if fe.seq > since]


def test_presence_alone_waits_for_company_and_any_other_event_brings_the_tick_back(writes: list, loop: Any) -> None:
    """A tick of presence events alone goes out after the lazy window (a stream of sign-ins
    costs each console a few frames a second); any other event, after the normal window."""
    events, _ = _traffic()
    fo = Fanout(loop, seq=0, resume_window=300, clock=lambda: 0.0, window=0.01, lazy_window=0.25)
    bob = _link(fo, "bob", "bob")
    clock = ManualClock(0.0)
    presence = [
        encode_event(Event(i, clock(), RepData(RepView(f"r{i}", "R", ["net"], RepStatus.AVAILABLE, 3, True, None)), frozenset({"bob"})))
        for i in range(100, 105)
    ]
    delivered: list[float] = []
    fo.on_delivery = delivered.append

    async def main() -> None:
        start = loop.time()
        fo.publish(presence[:2], lazy=True)
        await asyncio.sleep(0.1)
        fo.publish(presence[2:3], lazy=True)  # does not push the tick back
        await asyncio.sleep(0.1)
        assert writes == []
        await asyncio.sleep(0.1)
        assert len(writes) == 1 and [e.seq for e in bob.ws.frames[0].events] == [100, 101, 102]
        assert loop.time() - start >= 0.25 and delivered == []  # a lazy tick is not a delivery latency
        fo.publish(presence[3:], lazy=True)
        arrival = Event(105, clock(), events[0].data, frozenset({"bob"}))
        fo.publish([encode_event(arrival)])  # a customer arrives: the tick goes at the normal window
        await asyncio.sleep(0.05)
        assert len(writes) == 2 and [e.seq for e in bob.ws.frames[1].events] == [103, 104, 105]
        assert len(delivered) == 1 and delivered[0] < 0.05

    loop.run_until_complete(main())
