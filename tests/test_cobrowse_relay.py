"""The co-browsing relay (repconsole.core.cobrowse), sans-I/O: assembly, validation, buffer, rate, resync, watchers."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from repconsole.core.clock import ManualClock
from repconsole.core.cobrowse import (
    Ask,
    Batch,
    Changed,
    Effect,
    Limits,
    Refuse,
    Relay,
    RrwebEvent,
    SnapshotReason,
    WatchersChanged,
    decode_events,
)
from repconsole.protocol import CHUNK_CHARS, CobrowseChunk, CobrowseState, Record, RrwebType, parse_rep_reply

S = "S1"
_ts = iter(range(1_700_000_000_000, 1_800_000_000_000, 17))


def meta(width: int = 1280) -> dict[str, Any]:
    return {"type": RrwebType.META, "timestamp": next(_ts), "data": {"href": "https://shop.example/", "width": width, "height": 800}}


def full(pad: int = 0) -> dict[str, Any]:
    node = {"type": 0, "id": 1, "childNodes": [{"type": 3, "id": 2, "textContent": "x" * pad}]}
    return {"type": RrwebType.FULL_SNAPSHOT, "timestamp": next(_ts), "data": {"node": node, "initialOffset": {"left": 0, "top": 0}}}


def incr(pad: int = 0, n: int = 0) -> dict[str, Any]:
    texts = [{"id": 2, "value": f"change {n} " + "y" * pad}]
    return {"type": RrwebType.INCREMENTAL_SNAPSHOT, "timestamp": next(_ts), "data": {"source": 0, "texts": texts, "attributes": [], "removes": [], "adds": []}}


def text(*events: dict[str, Any]) -> str:
    return json.dumps(list(events), separators=(",", ":"), ensure_ascii=False)


def parts(batch: int, body: str, n: int = CHUNK_CHARS) -> list[Record]:
    pieces = [body[i : i + n] for i in range(0, len(body), n)] or [""]
    return [Record(batch, i, len(pieces), piece) for i, piece in enumerate(pieces)]


class Rig:
    """A relay on a manual clock, with one session attached; ``send`` feeds it whole batches."""

    def __init__(self, **limits: Any) -> None:
        self.clock = ManualClock(1_800_000_000.0)
        self.relay = Relay(self.clock, limits=Limits(**limits))
        self.batch = 0
        self.effects: list[Effect] = self.relay.attach(S, url="https://shop.example/", title="Shop")

    def send(self, body: str, *, batch: int | None = None, n: int = CHUNK_CHARS) -> list[Effect]:
        if batch is None:
            batch = self.batch
        self.batch = batch + 1
        out: list[Effect] = []
        for rec in parts(batch, body, n):
            out.extend(self.relay.record(S, rec))
        self.effects.extend(out)
        return out

    @property
    def stream(self) -> Any:
        s = self.relay.stream(S)
        assert s is not None
        return s

    def watched(self, cursor: int | None = None) -> list[Batch]:
        """What a watcher whose next batch is ``cursor`` (None: a new watcher) is sent until it is caught up."""
        out = []
        while (b := self.stream.batch_from(cursor)) is not None:
            out.append(b)
            cursor = b.no + 1
        return out


def types(batches: list[Batch]) -> list[int]:
    return [e.type for b in batches for e in decode_events(b.text)]


def asks(effects: list[Effect]) -> list[SnapshotReason]:
    return [e.reason for e in effects if isinstance(e, Ask)]


def refusals(effects: list[Effect]) -> list[str]:
    return [e.detail for e in effects if isinstance(e, Refuse)]


# ------------------------------------------------------------------ basics


def test_a_snapshot_makes_the_stream_live_and_a_watcher_gets_it() -> None:
    rig = Rig()
    assert rig.stream.state is CobrowseState.WAITING and rig.stream.need_snapshot
    out = rig.send(text(meta(), full()))
    assert out == [Changed(S)]
    s = rig.stream
    assert s.state is CobrowseState.LIVE and not s.need_snapshot
    assert (s.url, s.title) == ("https://shop.example/", "Shop")
    assert types(rig.watched()) == [RrwebType.META, RrwebType.FULL_SNAPSHOT]
    assert rig.watched()[0].at == rig.clock.now  # stamped with the server's time of arrival


def test_incremental_events_before_any_snapshot_are_not_relayed() -> None:
    rig = Rig()
    assert rig.send(text(incr())) == []
    assert rig.watched() == [] and rig.stream.state is CobrowseState.WAITING


def test_a_late_watcher_gets_meta_snapshot_and_every_change_since_then_live() -> None:
    rig = Rig()
    rig.send(text(meta(), full(pad=5000)))
    for n in range(100):
        rig.send(text(incr(n=n)))
    batches = rig.watched()
    assert types(batches) == [RrwebType.META, RrwebType.FULL_SNAPSHOT] + [RrwebType.INCREMENTAL_SNAPSHOT] * 100
    assert [b.no for b in batches] == list(range(101))
    last = batches[-1].no
    rig.send(text(incr(n=100)))
    assert [b.no for b in rig.watched(last + 1)] == [last + 1]  # then live: only what is new


def test_a_new_snapshot_restarts_the_buffer_at_its_meta() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    for n in range(5):
        rig.send(text(incr(n=n)))
    rig.send(text(incr(n=5), incr(n=6), meta(width=800), full(), incr(n=7)))
    batches = rig.watched()
    assert len(batches) == 1
    assert types(batches) == [RrwebType.META, RrwebType.FULL_SNAPSHOT, RrwebType.INCREMENTAL_SNAPSHOT]
    assert json.loads(batches[0].text)[0]["data"]["width"] == 800
    assert rig.stream.buffer_bytes == batches[0].size == len(batches[0].text.encode())


def test_a_snapshot_without_its_meta_gets_the_latest_meta_in_front() -> None:
    rig = Rig()
    rig.send(text(meta(width=1024), full()))
    rig.send(text(incr()))
    rig.send(text(full(), incr()))
    (batch,) = rig.watched()
    events = json.loads(batch.text)
    assert [e["type"] for e in events] == [RrwebType.META, RrwebType.FULL_SNAPSHOT, RrwebType.INCREMENTAL_SNAPSHOT]
    assert events[0]["data"]["width"] == 1024


def test_a_watcher_that_fell_behind_a_new_snapshot_skips_to_it() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    rig.send(text(incr()))
    behind = 1  # it got batch 0 only
    rig.send(text(meta(), full()))
    rig.send(text(incr()))
    batches = rig.watched(behind)
    assert types(batches) == [RrwebType.META, RrwebType.FULL_SNAPSHOT, RrwebType.INCREMENTAL_SNAPSHOT]


# --------------------------------------------------------------- chunking


def test_chunks_join_back_into_the_batch_and_decode_as_the_wire_says() -> None:
    rig = Rig(chunk_chars=100)
    body = text(meta(), full(pad=1000), incr(pad=10))
    rig.send(body, n=77)  # the recorder's parts and the relay's chunks need not agree
    (batch,) = rig.watched()
    frames = batch.frames()
    assert frames is batch.frames()  # encoded once, shared by every watcher
    chunks = [parse_rep_reply(f) for f in frames]
    assert all(isinstance(c, CobrowseChunk) for c in chunks)
    assert [c.part for c in chunks] == list(range(len(chunks))) and {c.parts for c in chunks} == {len(chunks)}
    assert all(len(c.data) <= 100 and c.session == S and c.batch == batch.no and c.at == batch.at for c in chunks)
    assert "".join(c.data for c in chunks) == body


def test_chunking_keeps_any_text_whole() -> None:
    rig = Rig(chunk_chars=7)
    body = text(meta(), full(), {"type": RrwebType.CUSTOM, "timestamp": 1, "data": {"tag": "é→😀 \"quoted\" \\ \u2028"}})
    rig.send(body, n=5)
    (batch,) = rig.watched()
    joined = "".join(c.data for c in batch.chunks())
    assert joined == body and json.loads(joined)[-1]["data"]["tag"] == "é→😀 \"quoted\" \\ \u2028"
    assert all(len(c.data) <= 7 for c in batch.chunks())


def test_the_default_chunk_fits_a_frame_the_server_accepts() -> None:
    worst = CobrowseChunk("S" * 64, 2**62, 4095, 4096, "\u2028" * CHUNK_CHARS, 1e10)
    assert len(msgspec.json.encode(worst)) < 64 * 1024


# ------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"type": 2}',
        "[1, 2]",
        '[{"type": 2, "timestamp": 1}]',  # no data
        '[{"type": "2", "timestamp": 1, "data": {}}]',
        '[{"type": -1, "timestamp": 1, "data": {}}]',
        '[{"type": 2, "timestamp": "now", "data": {}}]',
        "[" * 3000 + "]" * 3000,
        '[{"type": 2, "timestamp": 1, "data": {}}',  # cut short
    ],
)
def test_a_batch_that_is_not_an_array_of_rrweb_events_is_refused_as_a_lost_batch(body: str) -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    out = rig.send(body)
    (detail,) = refusals(out)
    assert "not a JSON array of rrweb events" in detail
    assert rig.stream.state is CobrowseState.RESYNC and rig.stream.need_snapshot
    assert asks(out) == [SnapshotReason.LOST_BATCH]
    assert len(rig.watched()) == 1  # the buffer still holds the page as it was


def test_events_keep_their_data_raw() -> None:
    (event,) = decode_events('[{"type":3,"timestamp":5,"data":{"a":[1,2,{"b":null}]},"extra":1}]')
    assert isinstance(event, RrwebEvent) and isinstance(event.data, msgspec.Raw)
    assert bytes(event.data) == b'{"a":[1,2,{"b":null}]}'


def test_parts_out_of_order_are_refused_and_the_rest_of_the_batch_is_dropped_quietly() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    body = text(incr(pad=300))
    p0, p1, p2 = parts(1, body, n=len(body) // 3 + 1)
    out = rig.relay.record(S, p0) + rig.relay.record(S, p2)
    (detail,) = refusals(out)
    assert "part 2 of 3 of batch 1 is out of order (expected part 1 of 3 of batch 1)" in detail
    assert asks(out) == [SnapshotReason.LOST_BATCH] and rig.stream.state is CobrowseState.RESYNC
    assert rig.relay.record(S, p1) == []  # the same batch: dropped without another error
    assert len(rig.watched()) == 1


def test_a_part_that_is_not_the_first_of_any_batch_is_refused() -> None:
    rig = Rig()
    (detail,) = refusals(rig.relay.record(S, Record(0, 1, 2, "x")))
    assert "expected part 0 of batch 0" in detail


def test_a_part_beyond_its_batch_is_refused() -> None:
    rig = Rig()
    (detail,) = refusals(rig.relay.record(S, Record(0, 2, 2, "x")))
    assert "parts 0 to 1" in detail


def test_a_batch_left_incomplete_is_refused_when_the_next_one_starts() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    records = parts(1, text(incr(pad=100)), n=50)
    rig.relay.record(S, records[0])
    out = rig.send(text(meta(), full()), batch=2)
    assert refusals(out) == [f"batch 1 was left incomplete (1 of {len(records)} parts)"]
    assert rig.stream.state is CobrowseState.LIVE  # the next batch was a snapshot: nothing is missing any more


def test_batches_must_be_numbered_upwards() -> None:
    rig = Rig()
    rig.send(text(meta(), full()), batch=5)
    out = rig.send(text(incr()), batch=5)
    assert refusals(out) == ["batch 5 came after batch 5: batches are numbered upwards"]
    assert rig.stream.state is CobrowseState.RESYNC


def test_a_batch_that_never_came_is_a_gap_the_stream_resyncs_over() -> None:
    rig = Rig()
    rig.send(text(meta(), full()), batch=0)
    out = rig.send(text(incr()), batch=2)
    assert refusals(out) == [] and asks(out) == [SnapshotReason.LOST_BATCH]
    assert rig.stream.state is CobrowseState.RESYNC and len(rig.watched()) == 1
    rig.send(text(meta(), full()), batch=3)
    assert rig.stream.state is CobrowseState.LIVE


def test_an_oversized_batch_is_refused_while_it_is_assembled() -> None:
    rig = Rig(buffer_bytes=4096)
    body = text(meta(), full(pad=10_000))
    records = parts(0, body, n=1000)
    out: list[Effect] = []
    for rec in records:
        out.extend(rig.relay.record(S, rec))
    assert refusals(out) == ["batch 0 is larger than 4 KiB"]  # once, at the part that passed the cap
    s = rig.stream
    assert s.state is CobrowseState.RESYNC and s.detail == "the page is larger than 4 KiB" and asks(out) == []
    rig.clock.advance(29)
    assert asks(rig.relay.advance()) == []
    rig.clock.advance(1)
    assert asks(rig.relay.advance()) == [SnapshotReason.TOO_LARGE]  # perhaps the page is smaller now


# ------------------------------------------------------ buffer and rate


def test_a_full_buffer_resyncs_instead_of_dropping_silently() -> None:
    rig = Rig(buffer_bytes=4000, rate=0)
    rig.send(text(meta(), full(pad=1000)))
    sent = 0
    while rig.stream.state is CobrowseState.LIVE:
        out = rig.send(text(incr(pad=200, n=sent)))
        sent += 1
    assert asks(out) == [SnapshotReason.BUFFER_FULL] and Changed(S) in out
    s = rig.stream
    assert s.detail == "more than 4000 bytes of changes since the last snapshot" and s.buffer_bytes <= 4000
    relayed = len(rig.watched())
    assert rig.send(text(incr())) == [] and len(rig.watched()) == relayed  # dropped until the snapshot
    out = rig.send(text(meta(), full(pad=1000)))
    assert s.state is CobrowseState.LIVE and types(rig.watched()) == [RrwebType.META, RrwebType.FULL_SNAPSHOT]
    assert asks(out) == []


def test_the_rate_cap_asks_for_a_snapshot_once_the_rate_allows_one() -> None:
    rig = Rig(rate=1000, burst=5000, buffer_bytes=100_000)
    snapshot = text(meta(), full(pad=2000))
    size = len(snapshot.encode())
    rig.send(snapshot)
    assert rig.stream.state is CobrowseState.LIVE
    change = text(incr(pad=1500))
    out = rig.send(change)  # the bucket (5000) holds the snapshot and this
    assert rig.stream.state is CobrowseState.LIVE
    out += rig.send(change)
    assert rig.stream.state is CobrowseState.RESYNC and rig.stream.detail == "the page changed faster than 1000 bytes/s"
    assert asks(out) == []  # not yet: a snapshot would not pass now either
    deadline = rig.relay.next_deadline()
    assert deadline is not None and deadline > rig.clock.now
    rig.clock.advance(deadline - rig.clock.now)
    assert asks(rig.relay.advance()) == [SnapshotReason.RATE_LIMITED]
    assert rig.stream._refill(rig.clock.now) >= size
    rig.send(snapshot)
    assert rig.stream.state is CobrowseState.LIVE


def test_a_snapshot_over_the_rate_waits_for_the_bucket() -> None:
    rig = Rig(rate=1000, burst=5000, buffer_bytes=100_000)
    snapshot = text(meta(), full(pad=3000))
    rig.send(snapshot)
    out = rig.send(snapshot)  # a second one at once: the bucket is short
    assert rig.stream.state is CobrowseState.RESYNC and asks(out) == []
    rig.clock.advance(60)
    assert asks(rig.relay.advance()) == [SnapshotReason.RATE_LIMITED]


def test_a_page_over_the_burst_can_never_pass_and_is_asked_for_again_later() -> None:
    rig = Rig(rate=1000, burst=1000, buffer_bytes=100_000)
    rig.send(text(meta(), full(pad=3000)))
    assert rig.stream.state is CobrowseState.RESYNC and rig.stream.detail == "the page is larger than 1000 bytes"
    assert rig.relay.next_deadline() == rig.clock.now + 30


# ------------------------------------------------------------ asks


def test_a_recorder_that_sends_no_snapshot_is_asked_for_one_every_ten_seconds() -> None:
    rig = Rig()
    assert asks(rig.effects) == []
    rig.clock.advance(10)
    assert asks(rig.relay.advance()) == [SnapshotReason.NO_SNAPSHOT]
    rig.clock.advance(5)
    assert asks(rig.relay.advance()) == []
    rig.clock.advance(5)
    assert asks(rig.relay.advance()) == [SnapshotReason.NO_SNAPSHOT]
    rig.send(text(meta(), full()))
    assert rig.relay.next_deadline() is None


def test_an_unanswered_resync_ask_is_repeated() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    assert asks(rig.send("garbage")) == [SnapshotReason.LOST_BATCH]
    rig.clock.advance(10)
    assert asks(rig.relay.advance()) == [SnapshotReason.NO_SNAPSHOT]


# ------------------------------------------------ page, stop, detach, end


def test_page_info_changes_the_status() -> None:
    rig = Rig()
    before = rig.stream.status_frame()
    assert rig.relay.page(S, "https://shop.example/cart", "Cart") == [Changed(S)]
    assert rig.relay.page(S, "https://shop.example/cart", "Cart") == []
    status = rig.stream.status()
    assert (status.url, status.title, status.state) == ("https://shop.example/cart", "Cart", CobrowseState.WAITING)
    assert rig.stream.status_frame() != before


def test_stopping_drops_the_page_and_refuses_records_until_the_next_attach() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    assert rig.relay.stop(S) == [Changed(S)]
    s = rig.stream
    assert s.state is CobrowseState.STOPPED and s.buffer == [] and s.buffer_bytes == 0 and rig.watched() == []
    assert refusals(rig.send(text(meta(), full()))) == ["sharing was stopped: attach again to share the page"]
    rig.clock.advance(60)
    assert rig.relay.advance() == []  # a stopped page is never asked for anything
    rig.relay.attach(S)
    assert s.state is CobrowseState.WAITING
    rig.send(text(meta(), full()), batch=0)
    assert s.state is CobrowseState.LIVE and len(rig.watched()) == 1


def test_a_recorder_that_goes_away_leaves_the_stream_waiting_for_the_next_page() -> None:
    rig = Rig()
    rig.send(text(meta(), full()))
    assert rig.relay.detach(S) == [Changed(S)]
    assert rig.stream.state is CobrowseState.WAITING and rig.relay.next_deadline() is None
    assert refusals(rig.relay.record(S, Record(0, 0, 1, "[]"))) == ["attach before recording"]
    rig.relay.attach(S, url="https://shop.example/next")
    rig.send(text(incr()), batch=0)  # the new page's first batch must be a snapshot
    assert rig.stream.state is CobrowseState.WAITING
    rig.send(text(meta(), full()))
    assert rig.stream.state is CobrowseState.LIVE


def test_the_end_of_the_session_drops_the_stream_and_names_its_watchers() -> None:
    rig = Rig()
    rig.relay.watch(S, "console-1", "alice")
    rig.send(text(meta(), full()))
    ended = rig.relay.end(S, "ended by Alice Ng")
    assert ended is not None
    status, viewers = ended
    assert status.state is CobrowseState.ENDED and status.detail == "ended by Alice Ng"
    assert viewers == [("console-1", "alice")]
    assert rig.relay.stream(S) is None and rig.relay.end(S) is None


# ------------------------------------------------------------ watchers


def test_the_recorder_is_told_who_watches_when_that_changes() -> None:
    relay = Relay(ManualClock())
    assert relay.watch(S, "c1", "alice") == [WatchersChanged(S, ("alice",))]
    assert relay.watch(S, "c2", "alice") == []  # a second console of the same rep
    assert relay.watch(S, "c3", "bob") == [WatchersChanged(S, ("alice", "bob"))]
    assert relay.unwatch(S, "c1") == []
    assert relay.unwatch(S, "c1") == []
    effects, gone = relay.drop_rep(S, "alice")
    assert effects == [WatchersChanged(S, ("bob",))] and gone == ["c2"]
    assert relay.unwatch(S, "c3") == [WatchersChanged(S, ())]
    assert relay.unwatch("S404", "c3") == []


def test_every_stream_has_its_own_buffer_and_bucket() -> None:
    clock = ManualClock()
    relay = Relay(clock, limits=Limits(rate=1000, burst=3000, buffer_bytes=10_000))
    snapshot = text(meta(), full(pad=2000))
    for sid in ("S1", "S2"):
        relay.attach(sid)
        for rec in parts(0, snapshot):
            relay.record(sid, rec)
    assert [relay.stream(sid).state for sid in ("S1", "S2")] == [CobrowseState.LIVE] * 2  # type: ignore[union-attr]
