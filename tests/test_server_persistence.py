"""The server's state survives a restart: nothing a rep or customer was told is lost.

In-process restarts (stop a server, start a new one on the same data
directory) here; tests/test_server_cli.py kills a real server process with
SIGKILL.  The store itself is checked against the engine after random
traffic: what SQLite holds is exactly what persist.dump() says.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from engine_helpers import RandomDriver, Site, standard_rules
from server_helpers import PASSWORDS, CustomerClient, RepClient, run, serving, session_event, write_site

from repconsole.core import persist
from repconsole.core.clock import ManualClock
from repconsole.protocol import CustomerResume, RepEvent, RepStatus, Say, SessionEvent
from repconsole.server.config import build_engine, load_config
from repconsole.server.runtime import Runtime
from repconsole.server.store import DB_NAME, Store
from repconsole.server.timers import VirtualClock


def _stable(state: dict[str, Any]) -> dict[str, Any]:
    """A dump without what a restart changes on purpose: presence, and the seq it moves."""
    state = dict(state)
    state["counters"] = {k: v for k, v in state["counters"].items() if k != "seq"}
    state["reps"] = {rep: r["status"] for rep, r in state["reps"].items()}
    state["ended"] = sorted(state["ended"], key=lambda s: s["id"])
    state["keys"] = sorted(state["keys"], key=lambda k: k["key"])
    return state


def test_a_restart_loses_nothing(tmp_path: Path) -> None:
    site = write_site(tmp_path, grace_period=30)
    data = tmp_path / "data"

    async def before() -> tuple[dict[str, Any], dict[str, str]]:
        async with serving(site, data) as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            customers = []
            for name in ["Ann Lee", "Ben Fox", "Cy Park", "Di Moss"]:
                c = await CustomerClient.open(server)
                await c.start("issue", "vpn", name)
                customers.append(c)
            ann, ben, cy, di = (c.session for c in customers)
            await alice.ok("accept", session=ann)
            await alice.ok("say", session=ann, text="Hello Ann")
            await alice.ok("say", session=ann, text="private note", reps_only=True)
            await customers[0].request(Say, text="Hi!")
            await alice.ok("share", session=ann, target="rep:bob")
            await bob.ok("accept", session=ben)
            await bob.ok("hold", session=ben)
            await bob.ok("accept", session=di)
            await bob.ok("end", session=di)
            await alice.ok("generate_key", valid_for=3600)
            await alice.ok("team_say", team="net", text="Heads up: VPN gateway is flaky")
            await bob.ok("team_say", team="net", text="Noted")
            await alice.ok("set_status", status="busy")
            await alice.ok("set_external_key", session=ann, external_key="TCK-1")
            tokens = {"alice": alice.token, "ann": customers[0].token}
            await alice.drain()
            return persist.dump(server.runtime.engine), tokens | {"cy": cy}

    async def after(expected: dict[str, Any], tokens: dict[str, str]) -> None:
        async with serving(site, data) as server:
            engine = server.runtime.engine
            assert _stable(persist.dump(engine)) == _stable(expected)
            # Queue order is kept: Cy is still waiting, behind nobody.
            assert [s.id for s in engine.waiting_in(engine.session(tokens["cy"]).queue)] == [tokens["cy"]]
            # The reps whose consoles were connected count as connected for the restart
            # window (their consoles are on their way back: no presence flicker); at its end
            # those not back are disconnected, their grace period counted from the start.
            rt = server.runtime
            assert rt.returning == {"alice", "bob"} and rt.restart_window == 20
            assert {rep.id for rep in engine.reps.values() if rep.connected} == {"alice", "bob"}
            rt.settle_presence()
            for rep in engine.reps.values():
                assert not rep.connected
            assert engine.reps["alice"].grace_until == rt.boot_time + 30
            assert engine.reps["alice"].grace_until > time.time() + 20
            # The rep logs in again and finds everything; the customer resumes.
            alice = await RepClient.logged_in(server, "alice")
            mine = {s.id: s for s in alice.snapshot.sessions}
            ann = next(s for s in mine.values() if s.customer_name == "Ann Lee")
            assert [line.text for line in ann.chat][-4:] == ["Hello Ann", "private note", "Hi!", "Alice Ng invited Bob Ortiz to join."]
            assert ann.external_key == "TCK-1" and ann.invitations[0].target == "rep:bob"
            assert alice.snapshot.you.status is RepStatus.BUSY
            assert [k.rep for k in alice.snapshot.keys] == ["alice"]
            net = alice.snapshot.team_chat["net"]
            assert (net.count, net.last_read, net.lines[-1].text) == (2, 1, "Noted")
            customer = await CustomerClient.open(server)
            reply = await customer.request(CustomerResume, token=tokens["ann"], last_line=0)
            assert reply.resumed and reply.session == ann.id
            await customer.until(lambda: bool(customer.statuses))
            assert [line.text for line in customer.lines] == [
                "Alice Ng accepted the session.", "Hello Ann", "Hi!",
            ]  # fmt: skip

    expected, tokens = run(before())
    run(after(expected, tokens))


def test_timers_resume_after_a_restart(tmp_path: Path) -> None:
    """Rule deadlines are absolute: one that passed while the server was down fires at
    once, one still ahead fires when it was due, not a full wait after the restart."""
    after = 60.0
    site = write_site(tmp_path, extra=f'\n[teams.net.rule]\nafter = {after}\naction = "transfer"\noverflow_team = "bill"\n')
    data = tmp_path / "data"
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, data, clock=clock) as server:
            c = await CustomerClient.open(server)
            await c.start("issue", "vpn", "Early")
            early = c.session
            clock.advance(after / 2)
            c = await CustomerClient.open(server)
            await c.start("issue", "vpn", "Late")
            late = c.session
            early_due = server.runtime.engine.session(early).rule_deadline
            late_due = server.runtime.engine.session(late).rule_deadline
        assert clock.pending() == []  # a stopped server leaves no timer behind
        clock.advance_to(early_due + 1)  # down past the early deadline
        async with serving(site, data, clock=clock) as server:
            restarted = clock.now()
            engine = server.runtime.engine
            carol = await RepClient.logged_in(server, "carol")
            clock.advance(0)  # what fell due while the server was down runs at once
            if not any(s.id == early for s in carol.snapshot.sessions):
                await carol.wait_event(session_event(early), timeout=1)
            assert engine.session(early).queue.id == "bill"
            assert engine.session(late).queue.id == "net"
            clock.advance_to(late_due)
            e = await carol.wait_event(session_event(late), timeout=3)
            assert e.data.session.queue == "team:bill"
            moved = clock.now()
            assert late_due <= moved < restarted + after

    run(main())


def test_a_console_resumes_across_a_restart_and_retries_are_still_answered(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    data = tmp_path / "data"

    async def main() -> None:
        async with serving(site, data) as server:
            alice = await RepClient.logged_in(server, "alice")
            c = await CustomerClient.open(server)
            await c.start("issue", "vpn", "Ann Lee")
            sid = c.session
            await alice.wait_event(lambda e: isinstance(e, SessionEvent))
            accepted = await alice.call("accept", rid="acc-1", session=sid)
            await alice.drain()
            token, last = alice.token, alice.seq
        async with serving(site, data) as server:
            back = await RepClient.open(server)
            welcome = await back.resume(token, last)
            assert welcome.resumed is True
            await back.drain()
            # Back within the restart window: the restart never showed alice offline (no
            # presence flicker; see test_server_storm for a console that comes back late).
            assert not any(isinstance(e, RepEvent) for e in back.events)
            assert server.runtime.engine.reps["alice"].connected
            # A retry of a command answered before the restart is answered the same way.
            assert await back.call("accept", rid="acc-1", session=sid) == accepted
            assert server.runtime.engine.session(sid).owner == "alice"

    run(main())


def test_tokens_and_passwords_are_stored_only_as_hashes(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    data = tmp_path / "data"

    async def main() -> tuple[str, str]:
        async with serving(site, data) as server:
            alice = await RepClient.logged_in(server, "alice")
            c = await CustomerClient.open(server)
            await c.start()
            return alice.token, c.token

    rep_token, customer_token = run(main())
    stored = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith(DB_NAME))
    for secret in (rep_token, customer_token, PASSWORDS["alice"]):
        assert secret.encode() not in stored


def test_the_store_holds_exactly_the_engines_state_after_random_traffic(tmp_path: Path) -> None:
    """Every step commits what it changed; read back, the database is persist.dump()."""
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(2_000_000_000.0)
    loop = asyncio.new_event_loop()
    try:
        runtime = Runtime(spec, tmp_path / "data", loop, clock=clock)
        engine = runtime.engine
        # The driver moves the virtual clock; the runtime's own timer fires the engine's deadlines.
        site = Site(clock, engine, random.Random(3))  # type: ignore[arg-type]
        standard_rules(site)
        for rep in engine.reps.values():
            rep.connected = True  # as if logged in; the driver moves presence from here
        runtime.store.save_all(engine)
        driver = RandomDriver(site, 11)
        for _ in range(1500):
            with runtime.step():
                driver.step()
        assert sum(driver.done.values()) > 1000
        stored = Store(tmp_path / "data" / DB_NAME).load_state()
        assert stored is not None
        expected = persist.dump(engine)
        assert stored["counters"] == expected["counters"]
        assert stored["reps"] == expected["reps"]
        assert _stable(stored) == _stable(expected)

        copy = build_engine(spec, ManualClock(clock.now()))
        standard_rules(Site(ManualClock(clock.now()), copy, random.Random(0)))
        persist.load(copy, stored)
        assert _stable(persist.dump(copy)) == _stable(expected)
        runtime.stop()
        runtime.store.close()
    finally:
        loop.close()


def test_housekeeping_forgets_what_aged_out(tmp_path: Path) -> None:
    """Resume events and stored answers live for the resume window; the store follows the ring."""
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(2_000_000_000.0)
    loop = asyncio.new_event_loop()
    try:
        runtime = Runtime(spec, tmp_path / "data", loop, clock=clock)
        engine = runtime.engine
        engine.reps["alice"].connected = True
        login = runtime.new_login("alice", b"h" * 32)
        with runtime.step() as rows:
            engine.team_say("alice", "net", "old news")
            rows.append(Store.answer_row(login.id, "1", clock(), b"{}"))
        runtime.answers.put(login.id, "1", clock(), b"{}")
        clock.advance(spec.server.resume_window + 1)
        with runtime.step():
            engine.team_say("alice", "net", "fresh")
        runtime.housekeeping()
        assert runtime.fanout.floor == engine.seq - 1 and runtime.fanout.replay("alice", engine.seq - 2) is None
        assert [e.seq for e in Store(tmp_path / "data" / DB_NAME).load_events()] == [engine.seq]
        assert runtime.answers.get(login.id, "1") is None
        assert Store(tmp_path / "data" / DB_NAME).load_answers() == []
        runtime.stop()
        runtime.store.close()
    finally:
        loop.close()


def test_keys_dead_for_a_day_leave_the_store(tmp_path: Path) -> None:
    spec = load_config(write_site(tmp_path))
    clock = VirtualClock(2_000_000_000.0)
    loop = asyncio.new_event_loop()
    try:
        runtime = Runtime(spec, tmp_path / "data", loop, clock=clock)
        with runtime.step():
            runtime.engine.generate_key("alice", 60)
        clock.advance(86400)
        runtime.housekeeping()
        assert len(Store(tmp_path / "data" / DB_NAME).load_state()["keys"]) == 1  # expired, still known
        clock.advance(120)
        runtime.housekeeping()
        assert Store(tmp_path / "data" / DB_NAME).load_state()["keys"] == []
        runtime.stop()
        runtime.store.close()
    finally:
        loop.close()
