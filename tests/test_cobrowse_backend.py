"""Co-browsing in the backends: the WebSocket client's watch, join and re-watch, and the simulator's recorded page.

The WebSocket tests run against test_websocket_backend's fake ``/rep``
server, taught the relay's commands here; everything it sends is built from
the protocol's Structs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from conftest import TIMEOUT_SCALE
from test_websocket_backend import PASSWORD, FakeServer, Pulse, _Conn
from websockets.asyncio.server import serve

from repconsole.backend.cobrowse import ChunkJoiner, CobrowseUpdate, PageBatch, PageState, PageStatus
from repconsole.backend.pageplayer import load_recording
from repconsole.backend.simulator import SimulatorBackend
from repconsole.backend.websocket import WebSocketBackend
from repconsole.backend.world import ME
from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    CloseCode,
    CobrowseChunk,
    CobrowseName,
    CobrowseState,
    CobrowseStatus,
    Command,
    NoResult,
    PointArgs,
    Result,
    RrwebType,
    TicketResult,
    WatchResult,
    encode,
)

URL = "https://shop.acme.example/checkout"
TITLE = "Acme Store — Checkout"


def events_text(*texts: str, at: int = 1_000) -> str:
    """The text of a JSON array of small rrweb custom events, one per text."""
    events = [{"type": RrwebType.CUSTOM, "data": {"tag": "note", "payload": t}, "timestamp": at + i} for i, t in enumerate(texts)]
    return msgspec.json.encode(events).decode()


# ---------------------------------------------------------------- joining parts


def chunk(batch: int, part: int, parts: int, data: str, session: str = "S1", at: float = 5.0) -> CobrowseChunk:
    return CobrowseChunk(session=session, batch=batch, part=part, parts=parts, data=data, at=at)


def test_the_joiner_joins_a_batchs_parts_in_any_order_and_drops_one_that_lost_a_part() -> None:
    lost: list[tuple[str, int]] = []
    joiner = ChunkJoiner(lambda session, batch: lost.append((session, batch)))
    assert joiner.add(chunk(1, 0, 1, "[1]")) == PageBatch("S1", "[1]", 5.0)
    assert joiner.add(chunk(2, 2, 3, "3]")) is None
    assert joiner.add(chunk(2, 0, 3, "[1,")) is None
    assert joiner.add(chunk(7, 0, 2, "[", session="S2")) is None  # another session's batch is its own
    assert joiner.add(chunk(2, 1, 3, "2,")) == PageBatch("S1", "[1,2,3]", 5.0)
    assert lost == []

    assert joiner.add(chunk(3, 0, 2, "[4,")) is None
    assert joiner.add(chunk(4, 0, 1, "[5]")) == PageBatch("S1", "[5]", 5.0)  # batch 3 never completes
    assert joiner.add(chunk(5, 1, 2, "6]")) is None
    assert joiner.add(chunk(6, 0, 2, "[7,")) is None  # nor does 5
    assert joiner.add(chunk(6, 3, 2, "8]")) is None  # a part that cannot be: 6 is lost too
    assert lost == [("S1", 3), ("S1", 5), ("S1", 6)]
    assert joiner.add(chunk(8, 1, 2, "]", session="S2")) is None
    assert lost[-1] == ("S2", 7)
    joiner.forget()
    assert joiner.add(chunk(9, 1, 2, "]")) is None
    assert len(lost) == 4


# ---------------------------------------------------------------- the WebSocket backend


@dataclass
class RelayServer(FakeServer):
    """The fake server, with the co-browse relay's side of ``/rep``.

    Attributes:
        watchers: who watches which session now (the relay forgets a connection's watches when it drops).
        refuse_watch: sessions whose watch is refused with ``session_ended``.
    """

    watchers: dict[str, set[int]] = field(default_factory=dict)
    refuse_watch: set[str] = field(default_factory=set)
    batches: int = 0

    async def _command(self, conn: _Conn, message: Command) -> None:
        spec = COBROWSE_COMMANDS.get(message.name)
        if spec is None:
            await super()._command(conn, message)
            return
        args = msgspec.convert(message.args, type=spec.args)
        watching = self.watchers.setdefault(args.session, set())
        result: Any
        if spec.name is CobrowseName.WATCH and args.session in self.refuse_watch:
            await conn.ws.send(encode(CommandError(Reason.SESSION_ENDED).error(message.id)), text=True)
            return
        if spec.name is CobrowseName.WATCH:
            watching.add(id(conn.ws))
            result = WatchResult(CobrowseState.LIVE, URL, TITLE)
        elif spec.name is CobrowseName.UNWATCH:
            watching.discard(id(conn.ws))
            result = NoResult()
        elif spec.name is CobrowseName.POINT:
            assert isinstance(args, PointArgs)
            result = NoResult()
        else:
            result = TicketResult(f"https://relay.example/live/{args.session}?ticket=abc", self.clock() + 60)
        await conn.ws.send(encode(Result(message.id, msgspec.Raw(encode(result)))), text=True)

    def watching(self, session: str) -> list[_Conn]:
        ids = self.watchers.get(session, set())
        return [c for c in self.conns if id(c.ws) in ids]

    async def stream(self, session: str, text: str, *, parts: int = 1, at: float | None = None, skip: int | None = None) -> None:
        """Send ``text`` as one batch in ``parts`` parts (leaving out part ``skip``) to whoever watches ``session``."""
        self.batches += 1
        size = -(-len(text) // parts)
        pieces = [text[i * size : (i + 1) * size] for i in range(parts)]
        stamp = self.clock() if at is None else at
        for conn in self.watching(session):
            for n, piece in enumerate(pieces):
                if n != skip:
                    await conn.ws.send(encode(CobrowseChunk(session, self.batches, n, parts, piece, stamp)), text=True)

    async def status(self, session: str, state: CobrowseState) -> None:
        for conn in self.watching(session):
            await conn.ws.send(encode(CobrowseStatus(session, state, URL, TITLE, self.clock())), text=True)


@contextlib.asynccontextmanager
async def serving(pulse: Pulse) -> AsyncIterator[RelayServer]:
    server = RelayServer(pulse)
    async with serve(server.handler, "127.0.0.1", 0, compression=None) as ws_server:
        server.port = ws_server.sockets[0].getsockname()[1]
        yield server
        for conn in list(server.conns):
            await conn.ws.close()


@dataclass
class Relay:
    pulse: Pulse
    server: RelayServer
    backend: WebSocketBackend
    updates: list[CobrowseUpdate]

    async def until(self, predicate: Callable[[], bool], seconds: float = 5.0) -> None:
        await self.pulse.until(predicate, seconds)

    def batches(self) -> list[PageBatch]:
        return [u for u in self.updates if isinstance(u, PageBatch)]

    def states(self) -> list[PageState]:
        return [u.state for u in self.updates if isinstance(u, PageStatus)]

    def watches(self) -> list[Command]:
        return self.server.received_commands(CobrowseName.WATCH.value)


def relay_scenario(body: Callable[[Relay], Awaitable[None]]) -> None:
    async def main() -> None:
        pulse = Pulse()
        async with serving(pulse) as server:
            backend = WebSocketBackend(server.url, ME, PASSWORD, backoff=(0.05,), connect_timeout=5)
            updates: list[CobrowseUpdate] = []

            def on_update(update: CobrowseUpdate) -> None:
                updates.append(update)
                pulse.notify()

            backend.add_cobrowse_listener(on_update)
            try:
                await backend.start()
                await body(Relay(pulse, server, backend, updates))
                assert not server.violations, server.violations
            finally:
                await backend.stop()

    asyncio.run(asyncio.wait_for(main(), 30 * TIMEOUT_SCALE))


def test_a_watched_pages_batches_arrive_joined_and_stamped_on_the_servers_clock() -> None:
    async def body(r: Relay) -> None:
        # The server's clock is far from this machine's: the welcome tells by how much.
        assert abs(r.backend.clock_offset - (r.server.clock() - time.time())) < 5
        await r.backend.cobrowse_watch("S1")
        assert r.updates == [PageStatus("S1", PageState.LIVE, URL, TITLE)]
        assert r.watches()[-1].args == {"session": "S1"}

        snapshot = events_text("meta", "full snapshot", *(f"change {i}" for i in range(50)))
        await r.server.stream("S1", snapshot, parts=3, at=r.server.clock() - 60)  # from the relay's buffer
        await r.server.stream("S2", events_text("not watched"))
        r.server.customer("vpn")
        await r.server.publish()  # the engine's feed goes on in between
        r.server.clock.advance(10)
        await r.server.stream("S1", events_text("live"), parts=2)
        await r.until(lambda: len(r.batches()) == 2)
        first, second = r.batches()
        assert first == PageBatch("S1", snapshot, r.server.clock() - 70, buffered=True)
        assert second == PageBatch("S1", events_text("live"), r.server.clock(), buffered=False)

        await r.server.status("S1", CobrowseState.STOPPED)
        await r.until(lambda: r.states()[-1] is PageState.STOPPED)
        assert r.updates[-1] == PageStatus("S1", PageState.STOPPED, URL, TITLE)

        await r.backend.cobrowse_unwatch("S1")
        assert r.backend.watching == set()
        await r.server.stream("S1", events_text("after"))  # the relay still sends it: ignored
        await r.server.status("S1", CobrowseState.LIVE)
        await r.backend.cobrowse_point("S2", 1.0, 2.0)  # a round trip: whatever came before it was read
        assert len(r.updates) == 4

    relay_scenario(body)


def test_point_and_ticket_go_to_the_relay_with_their_typed_results() -> None:
    async def body(r: Relay) -> None:
        await r.backend.cobrowse_point("S1", 640.5, 1200.0)
        point = r.server.received_commands(CobrowseName.POINT.value)[-1]
        assert point.args == {"session": "S1", "x": 640.5, "y": 1200.0}
        ticket = await r.backend.cobrowse_ticket("S1")
        assert ticket == TicketResult("https://relay.example/live/S1?ticket=abc", r.server.clock() + 60)

    relay_scenario(body)


def test_a_batch_that_lost_a_part_is_dropped_and_the_page_watched_again_for_a_fresh_snapshot() -> None:
    async def body(r: Relay) -> None:
        await r.backend.cobrowse_watch("S1")
        await r.server.stream("S1", events_text("a", "b", "c"), parts=3, skip=1)
        await r.server.stream("S1", events_text("d"), parts=2)
        await r.until(lambda: len(r.watches()) == 2 and r.states()[-1] is PageState.LIVE)
        assert [b.events for b in r.batches()] == [events_text("d")]
        assert r.states() == [PageState.LIVE, PageState.RESYNC, PageState.LIVE]

    relay_scenario(body)


def test_after_a_reconnect_the_watched_pages_are_watched_again_reconnecting_meanwhile() -> None:
    async def body(r: Relay) -> None:
        await r.backend.cobrowse_watch("S1")
        await r.backend.cobrowse_watch("S2")
        r.server.refuse_watch.add("S2")  # it ends while the console is away
        await r.server.stream("S1", events_text("x", "y"), parts=2, skip=1)  # half a batch, then the cut
        r.server.accepting = False
        await r.server.cut(CloseCode.SERVER_ERROR, "server error")
        await r.until(lambda: r.states().count(PageState.RECONNECTING) == 2)
        assert not r.server.watching("S1")
        r.server.accepting = True
        await r.until(lambda: len(r.watches()) == 4 and r.states()[-1] is not PageState.RECONNECTING)
        await r.until(lambda: r.backend.watching == {"S1"})
        assert set(r.updates[-2:]) == {
            PageStatus("S1", PageState.LIVE, URL, TITLE),
            PageStatus("S2", PageState.ENDED, detail="That session has ended."),
        }
        assert len(r.server.watching("S1")) == 1  # on the new connection
        r.server.clock.advance(1)
        await r.server.stream("S1", events_text("fresh snapshot"), parts=2)
        await r.until(lambda: len(r.batches()) == 1)
        assert r.batches()[0].events == events_text("fresh snapshot")  # the half batch was not glued to it

    relay_scenario(body)


def test_a_page_watched_while_the_console_is_away_is_watched_once_it_is_back() -> None:
    async def body(r: Relay) -> None:
        r.server.accepting = False
        await r.server.cut()
        await r.until(lambda: r.backend.state.value == "reconnecting")
        await r.backend.cobrowse_watch("S1")  # a tab opened meanwhile: no error, nothing sent yet
        assert r.updates == [PageStatus("S1", PageState.RECONNECTING)] and not r.watches()
        r.server.accepting = True
        await r.until(lambda: r.states()[-1] is PageState.LIVE)
        assert len(r.watches()) == 1 and r.backend.watching == {"S1"}

    relay_scenario(body)


# ---------------------------------------------------------------- the simulator


def test_the_simulator_plays_its_recorded_page_live_to_a_watched_browser_session() -> None:
    async def main() -> None:
        backend = SimulatorBackend(population=0, rate=0, seed=3, tick=0)
        updates: list[CobrowseUpdate] = []
        backend.add_cobrowse_listener(updates.append)
        await backend.start()
        try:
            world = backend.simulation.world
            browser = backend.engine.start_browser("link-me", world.intake(), page_url=URL)
            other = backend.engine.start_with_issue("vpn", world.intake())
            with pytest.raises(CommandError) as refused:
                await backend.cobrowse_watch(browser.id)
            assert refused.value.reason is Reason.NOT_PARTICIPANT
            await backend.accept(browser.id)
            await backend.accept(other.id)
            with pytest.raises(CommandError, match="does not share a browser") as refused:
                await backend.cobrowse_watch(other.id)
            assert refused.value.reason is Reason.NOT_BROWSER
            assert backend.watching == set()

            recording = load_recording()
            started = time.time()
            await backend.cobrowse_watch(browser.id)
            assert updates[0] == PageStatus(browser.id, PageState.LIVE, recording.url, recording.title)
            assert recording.title == "Acme Store — Delivery"  # the shop's first page
            deadline = time.monotonic() + 10 * TIMEOUT_SCALE
            while len(updates) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            batches = [u for u in updates if isinstance(u, PageBatch)]
            assert len(batches) >= 2
            first = msgspec.json.decode(batches[0].events)
            # The page opens with its full snapshot, as if recorded now.
            assert [e["type"] for e in first][-2:] == [RrwebType.META, RrwebType.FULL_SNAPSHOT]
            assert "Delivery details" in batches[0].events
            assert all(abs(e["timestamp"] / 1000 - started) < 5 for e in first)
            later = [e for b in batches[1:] for e in msgspec.json.decode(b.events)]
            assert later and all(e["type"] == RrwebType.INCREMENTAL_SNAPSHOT for e in later)
            assert all(b.at >= started and not b.buffered for b in batches)

            await backend.cobrowse_point(browser.id, 100, 200)  # the recording does not see it
            with pytest.raises(CommandError, match="not available in the simulator"):
                await backend.cobrowse_ticket(browser.id)
            backend.pages.stop_sharing(browser.id)
            assert updates[-1] == PageStatus(browser.id, PageState.STOPPED, recording.url, recording.title)
            assert backend.pages.playing == frozenset()
            await backend.cobrowse_watch(browser.id)
            assert backend.pages.playing == {browser.id}
            await backend.cobrowse_unwatch(browser.id)
            assert backend.pages.playing == frozenset() and backend.watching == set()
        finally:
            await backend.stop()

    asyncio.run(asyncio.wait_for(main(), 30 * TIMEOUT_SCALE))


def test_cobrowse_commands_are_the_protocols() -> None:
    assert {name.value for name in CobrowseName} == set(COBROWSE_COMMANDS)
    assert {s.value for s in CobrowseState} < {s.value for s in PageState}
