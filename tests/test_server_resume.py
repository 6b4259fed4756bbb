"""Resume under random cuts: the console's view never loses or repeats an event.

A real :class:`WebSocketBackend` (alice's console) feeds a
:class:`ConsoleState` while a steady flow of events goes on: customers
arrive through ``/customer`` and chat, a peer rep (bob) accepts, chats,
transfers and shares, the console itself accepts and says chat lines.
Meanwhile its connection is cut about twenty times at random points (seeded):
the client's transport aborted, or the server's end of it, at a random
moment, right after a batch arrived, or right after it came back.  The
backend reconnects and resumes from the last seq it delivered.

Checked: no event lost (the console applies exactly the events a second,
never-cut console of alice's gets), none applied twice, seqs strictly
increasing, every resume resumed (no fallback to a snapshot), every chat
line the console confirmed said exactly once, and at the end the
console's state equals one built from a fresh login's snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from server_helpers import PASSWORDS, CustomerClient, RepClient, eventually, run, serving, write_site
from websockets.exceptions import ConnectionClosed

from repconsole.backend.base import BackendState
from repconsole.backend.websocket import FeedBatch, NotConnectedError, WebSocketBackend
from repconsole.core.errors import CommandError
from repconsole.core.model import QueueRef
from repconsole.core.state import ConsoleState, GapError, RowKind
from repconsole.protocol import Reason, Say, SessionState, Snapshot
from repconsole.server.app import Server

CUTS = 20
MIN_EVENTS = 200
NET = QueueRef.team("net")


class Console:
    """alice's console: the backend, its ConsoleState, and everything it applied."""

    def __init__(self, server: Server) -> None:
        self.backend = WebSocketBackend(
            f"ws://127.0.0.1:{server.port}", "alice", PASSWORDS["alice"], connect_timeout=5, backoff=(0.0, 0.02, 0.05)
        )
        self.state = ConsoleState()
        self.snapshots: list[int] = []
        self.seqs: list[int] = []
        self.problems: list[str] = []
        self.batches = 0
        self.on_batch: list[Any] = []  # one-shot callbacks
        self.backend.add_event_listener(self._apply)

    def _apply(self, batch: FeedBatch) -> None:
        self.batches += 1
        if batch and isinstance(batch[0], Snapshot):
            self.snapshots.append(batch[0].seq)
        else:
            self.seqs.extend(e.seq for e in batch)
        try:
            self.state.apply(batch)
        except GapError as exc:
            self.problems.append(f"{exc} (batch prev {batch.prev}, seqs {[e.seq for e in batch]})")
        callbacks, self.on_batch = self.on_batch, []
        for cb in callbacks:
            cb()


def _cut_client(backend: WebSocketBackend) -> bool:
    ws = backend._ws
    if ws is None or ws.transport is None:
        return False
    ws.transport.abort()
    return True


def _cut_server(server: Server, backend: WebSocketBackend) -> bool:
    login = server.runtime.logins.find(backend.token or "")
    assert login is not None
    conns = [ws for ws in login.connections if ws.transport is not None and not ws.transport.is_closing()]
    for ws in conns:
        ws.transport.abort()
    return bool(conns)


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON-like values (or views) differ (the first few places)."""
    a, b = msgspec.to_builtins(a), msgspec.to_builtins(b)
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in one" for k in a.keys() ^ b.keys()]
        for k in a.keys() & b.keys():
            out += _diff(a[k], b[k], f"{path}/{k}")
        return out[:10]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")][:10]
    return [] if a == b else [f"{path}: {a!r:.200} != {b!r:.200}"]


def _view(state: ConsoleState) -> dict[str, Any]:
    """What the window shows from its feed, as plain data.

    Left out, as the protocol defines them: ``page_html`` (in the snapshot
    and in command results, never in events) and chat (compared apart); the
    state keeps both apart from its sessions (``pages``, ``chats``).
    """
    return {
        "me": state.me,
        "reps": state.reps,
        "teams": state.teams,
        "my_teams": state.my_teams,
        "sessions": state.sessions,
        "rows": {q: {rid: (r.kind.value, r.session.id) for rid, r in rows.items()} for q, rows in state.rows.items()},
        "team_chat": {t: (c.lines, c.count, c.last_read) for t, c in state.team_chat.items()},
        "keys": state.keys,
    }


def _same_chats(console: ConsoleState, fresh: ConsoleState) -> None:
    """Chat of the sessions the rep is in.  The snapshot has all of it.  The console
    heard it line by line, and only while the rep was in the session (chat events go
    to the owner and participants; the window takes the earlier lines from the
    accept's result): every line it has is the snapshot's line of that number, in order."""
    for sid, lines in fresh.chats.items():
        by_n = {line.n: line for line in lines}
        mine = console.chats.get(sid, [])
        assert [line.n for line in mine] == sorted({line.n for line in mine}), (sid, mine)
        for line in mine:
            assert line == by_n.get(line.n), (sid, line, by_n.get(line.n))


@pytest.mark.parametrize("seed", [1, 2])
def test_a_console_cut_at_random_points_resumes_without_losing_or_repeating(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            engine = server.runtime.engine
            witness = await RepClient.logged_in(server, "alice")  # never cut: what alice may see
            bob = await RepClient.logged_in(server, "bob")
            console = Console(server)
            await console.backend.start()
            assert console.snapshots and console.state.seq >= witness.seq
            start_seq = console.snapshots[0]

            stop = asyncio.Event()
            customers: list[CustomerClient] = []
            said: list[str] = []  # lines the console had confirmed
            unconfirmed: list[str] = []
            kinds: list[str] = []  # how each cut was made

            async def pump(c: RepClient) -> None:
                while not stop.is_set():
                    try:
                        await c.pump(0.05)
                    except TimeoutError:
                        continue

            async def traffic() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    r = rng.random()
                    if r < 0.25:
                        cust = await CustomerClient.open(server)
                        await cust.start("issue", rng.choice(["vpn", "vpn", "vpn", "invoice", "printer"]), f"Customer {n}")
                        customers.append(cust)
                    elif r < 0.35 and customers:
                        cust = rng.choice(customers)
                        with contextlib.suppress(ConnectionClosed):
                            await cust.send(Say(cust.next_id(), f"customer line {n}"))
                    elif r < 0.75:
                        # bob works the Networking queue
                        mine = [sid for sid in engine.involved("bob") if engine.session(sid).owner == "bob"]
                        waiting = [s.id for s in engine.waiting_in(NET)]
                        if waiting and (len(mine) < 3 or rng.random() < 0.3):
                            await bob.call("accept", session=rng.choice(waiting))
                        elif mine:
                            sid = rng.choice(mine)
                            op = rng.choice(["say", "say", "transfer_alice", "transfer_team", "share", "end", "hold"])
                            if op == "say":
                                await bob.call("say", session=sid, text=f"bob line {n}", reps_only=rng.random() < 0.3)
                            elif op == "transfer_alice":
                                await bob.call("transfer", session=sid, target="rep:alice", note=f"note {n}")
                            elif op == "transfer_team":
                                await bob.call("transfer", session=sid, target=rng.choice(["team:net", "team:bill"]))
                            elif op == "share":
                                await bob.call("share", session=sid, target="rep:alice")
                            else:
                                await bob.call(op, session=sid)
                        if rng.random() < 0.1:
                            await bob.call("team_say", team="net", text=f"team line {n}")
                    else:
                        # the console itself: accept what comes its way, chat (the outbox keeps lines during a cut)
                        state = console.state
                        try:
                            rows = [r for r in state.rows.get("rep:alice", {}).values() if r.kind is RowKind.WAITING]
                            mine = [s.id for s in state.my_sessions() if s.owner == "alice" and s.state is SessionState.ACTIVE]
                            invites = [r.id for r in state.rows.get("rep:alice", {}).values() if r.kind is RowKind.INVITATION]
                            if rows and rng.random() < 0.5:
                                await console.backend.call("accept", session=rng.choice(rows).id)
                            elif invites and rng.random() < 0.5:
                                await console.backend.call("accept_invitation", invitation=rng.choice(invites))
                            elif mine:
                                sid = rng.choice(mine)
                                if rng.random() < 0.8:
                                    text = f"alice line {n}"
                                    unconfirmed.append(text)
                                    await console.backend.call("say", session=sid, text=text)
                                    said.append(text)
                                else:
                                    await console.backend.call("end", session=sid)
                            else:
                                await console.backend.call("team_read", team="net")
                        except NotConnectedError:
                            pass  # cut: only chat waits for the reconnect
                        except CommandError as exc:
                            # The console's view may lag the server by a batch: refusals about that are fine.
                            assert exc.reason in (Reason.ALREADY_TAKEN, Reason.NOT_MEMBER, Reason.UNKNOWN_INVITATION, Reason.SESSION_ENDED,
                                                  Reason.NOT_PARTICIPANT, Reason.AT_CAPACITY, Reason.NOT_WAITING, Reason.ALREADY_IN_SESSION), exc  # fmt: skip
                    await asyncio.sleep(rng.uniform(0, 0.01))

            async def cutter() -> None:
                cuts = 0
                while cuts < CUTS:
                    await eventually(lambda: console.backend.state is BackendState.LIVE, timeout=5)
                    generation = console.backend._generation  # one more each time it goes live
                    how = rng.choice(["soon", "later", "after_batch", "server"])
                    if how == "soon":
                        await asyncio.sleep(0)  # right after it came back
                    elif how in ("later", "server"):
                        await asyncio.sleep(rng.uniform(0.02, 0.25))
                    if how == "after_batch":
                        fired = asyncio.Event()
                        console.on_batch.append(lambda fired=fired: fired.set() if _cut_client(console.backend) else None)
                        try:
                            async with asyncio.timeout(2):
                                await fired.wait()
                            cut = True
                        except TimeoutError:
                            console.on_batch.clear()
                            cut = _cut_client(console.backend)
                    elif how == "server":
                        cut = _cut_server(server, console.backend)
                    else:
                        cut = _cut_client(console.backend)
                    if cut:
                        cuts += 1
                        kinds.append(how)
                        await eventually(lambda g=generation: console.backend._generation > g, timeout=5)
                # Enough traffic for the cuts to have fallen between many events.
                await eventually(lambda: len(console.seqs) >= MIN_EVENTS, timeout=20)
                stop.set()

            tasks = [asyncio.ensure_future(pump(witness)), asyncio.ensure_future(traffic())]
            await cutter()
            await asyncio.gather(*tasks)

            # Quiet now: the console catches up with everything alice may see.
            await eventually(lambda: console.backend.state is BackendState.LIVE, timeout=5)
            await witness.drain(0.2)
            await eventually(lambda: console.state.seq == witness.seq, timeout=5)

            assert not console.problems, console.problems
            assert len(console.snapshots) == 1, f"a resume fell back to a snapshot: {console.snapshots}"
            assert console.seqs == sorted(set(console.seqs)), "an event applied twice or out of order"
            expected = [e.seq for e in witness.events if e.seq > start_seq]
            assert console.seqs == expected, "the console's events differ from the uncut console's"
            assert len(console.seqs) >= MIN_EVENTS
            assert len(kinds) == CUTS and console.backend._generation == CUTS + 1, (kinds, console.backend._generation)

            # Every line the console confirmed was said exactly once; none twice.
            # (From the store: the server lets go of a session once it has ended.)
            store = server.runtime.store
            stored = [store.load_session(f"S{n}") for n in range(1, engine.counters().sessions + 1)]
            chat_texts = [line.text for s in stored if s is not None for line in s.chat]
            for text in said:
                assert chat_texts.count(text) == 1, text
            for text in unconfirmed:
                assert chat_texts.count(text) <= 1, text

            # The console's view is the server's: a fresh login's snapshot says the same.
            fresh = await RepClient.logged_in(server, "alice")
            rebuilt = ConsoleState()
            rebuilt.apply(FeedBatch([Snapshot(fresh.seq, fresh.snapshot)]))
            mine, theirs = _view(console.state), _view(rebuilt)
            for key in mine:
                assert mine[key] == theirs[key], (key, _diff(mine[key], theirs[key]))
            _same_chats(console.state, rebuilt)

            await console.backend.stop()
            stop.set()

    run(main(), 60)
