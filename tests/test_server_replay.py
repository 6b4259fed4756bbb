"""A resume's replay over a real socket: in bounded parts, in order, no gap, no duplicate,
and what happens meanwhile follows it.

The server streams a replay of many events (up to the resume ring's 50,000) in
events frames of at most ``REPLAY_EVENTS`` events, each frame's ``prev`` the
last seq of the one before (docs/protocol.md, Login and resume).  The client
(:class:`RepClient`) checks every frame's ``prev`` against the last seq it saw.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from server_helpers import RepClient, run, serving, write_site

from repconsole.core.intake import Intake
from repconsole.protocol import PROTOCOL_VERSION, Events, Resume, Welcome
from repconsole.server.fanout import visible_to
from repconsole.server.snapshots import REPLAY_EVENTS

GAP = 20_000  # events alice may see while she is away: 20 parts


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


def _arrivals(server: object, count: int, *, step: int = 1000) -> None:
    rt = server.runtime  # type: ignore[attr-defined]
    for first in range(0, count, step):
        with rt.step():
            for i in range(first, min(count, first + step)):
                # Mostly alice's team (net); every fifth to billing, which alice may not see.
                rt.engine.start_with_issue("vpn" if i % 5 else "invoice", Intake(f"Customer {i}"))


@pytest.mark.parametrize("protocol", [PROTOCOL_VERSION, 2])  # 2: without the events it cannot decode (estimates)
def test_a_large_replay_comes_in_parts_and_live_events_follow_it_in_order(protocol: int, site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            rt = server.runtime
            alice = await RepClient.logged_in(server, "alice")
            token, last_seq = alice.token, alice.seq
            assert token is not None
            await alice.close()
            await asyncio.sleep(0)
            _arrivals(server, GAP * 5 // 4)
            before = rt.fanout.seq

            back = await RepClient.open(server)
            back.seq = last_seq
            await back.send(Resume(back.next_id(), token, last_seq, protocol))
            welcome = await back.pump()
            assert isinstance(welcome, Welcome) and welcome.resumed
            # The replay is under way (this client has read none of it, and it is more than
            # the socket and the client's queue take): what is committed now must follow it.
            (link,) = [link for link in rt.fanout.links() if link.rep == "alice"]
            assert not link.ready, "the replay went out whole before the test could commit live events"
            replay_end = link.served  # the replay holds every event up to here (the resume's own presence event too)
            assert replay_end > before
            _arrivals(server, 50, step=10)
            assert rt.fanout.seq > replay_end
            while back.seq < max(seq for seq, _ in visible_to(protocol, rt.fanout.replay_items("alice", last_seq) or [(0, b"")])):
                await back.pump()

            frames = [m for m in back.received if isinstance(m, Events)]
            seqs = [e.seq for e in back.events]
            # Exactly what alice may see after last_seq, once each, in order: the replay then the live events.
            expected = rt.fanout.replay_items("alice", last_seq)
            assert expected is not None
            assert seqs == [seq for seq, _ in visible_to(protocol, expected)]
            assert seqs == sorted(set(seqs))
            replayed = [s for s in seqs if s <= replay_end]
            assert len(replayed) > GAP
            assert all(s > replay_end for s in seqs[len(replayed) :])
            assert len(seqs) > len(replayed)  # some live events came, after the replay
            # In bounded parts: the replay's frames carry at most REPLAY_EVENTS each, and the first's prev is last_seq.
            assert frames[0].prev == last_seq
            replay_frames = [f for f in frames if f.events and f.events[-1].seq <= replay_end]
            assert len(replay_frames) >= len(replayed) // REPLAY_EVENTS
            assert all(len(f.events) <= REPLAY_EVENTS for f in replay_frames)
            # The console is live: a new event reaches it as any other.
            with rt.step():
                rt.engine.start_with_issue("vpn", Intake("One more"))
            await back.wait_event(lambda e: e.seq == rt.fanout.seq)
            await back.close()

    run(main(), 120)


def test_an_empty_replay_is_one_empty_events_frame(site: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            assert alice.token is not None
            # A second console of the same login resumes from where the first is: nothing missed
            # (alice stays connected through the first, so the resume changes no presence either).
            back = await RepClient.open(server)
            welcome = await back.resume(alice.token, alice.seq)
            assert isinstance(welcome, Welcome) and welcome.resumed
            (frame,) = [m for m in back.received if isinstance(m, Events)]
            assert frame.prev == alice.seq == server.runtime.fanout.seq and frame.events == []
            await back.close()
            await alice.close()

    run(main())
