"""Reconnect storms: every console of a site resuming at once after a server restart.

A real server on a free port, stopped with every console connected (each is
told 1001), started again on the same data directory: the consoles come back
all at once with their tokens.  A resume costs no password check, and the
storm sends no presence events: to the server a restart is every console
going silent at the same moment, so a rep whose console resumes within the
restart window (``ping_interval + ping_timeout``, at most the grace period)
never flickers offline.  Each console gets exactly what it missed, in order,
then the live feed; a console that does not come back is disconnected when
the window ends, its grace period counted from the start.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from server_helpers import CustomerClient, RepClient, crowd_login, crowd_rep, run, serving, write_crowd_site

from repconsole.core.engine import Event
from repconsole.core.feed import RepFeed
from repconsole.protocol import RepEvent, Welcome
from repconsole.server import passwords
from repconsole.server.timers import VirtualClock

TEAMS = {"ta": 12, "tb": 12, "tc": 12}
GRACE = 60.0


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password hashed or verified by the server, from now on."""
    calls: list[str] = []
    verify, make = passwords.verify_password, passwords.hash_password

    def counted_verify(password: str, encoded: str) -> bool:
        calls.append("verify")
        return verify(password, encoded)

    def counted_hash(password: str, *args: Any) -> str:
        calls.append("hash")
        return make(password, *args)

    monkeypatch.setattr(passwords, "verify_password", counted_verify)
    monkeypatch.setattr(passwords, "hash_password", counted_hash)
    return calls


async def _arrive(server: Any, team: str, name: str) -> None:
    customer = await CustomerClient.open(server)
    await customer.start("issue", team, name)
    await customer.close()


async def _resume(server: Any, token: str, last_seq: int) -> RepClient:
    console = await RepClient.open(server)
    welcome = await console.resume(token, last_seq)
    assert isinstance(welcome, Welcome) and welcome.resumed, welcome
    return console


def test_after_a_restart_every_console_resumes_at_once_without_a_password_check_and_gets_exactly_what_it_missed(
    tmp_path: Path, password_checks: list[str]
) -> None:
    site = write_crowd_site(tmp_path, TEAMS, grace_period=GRACE)
    data = tmp_path / "data"
    clock = VirtualClock()
    reps = [crowd_rep(team, i) for team, count in TEAMS.items() for i in range(count)]
    absent = reps[-1]  # its console does not come back

    async def main() -> None:
        async with serving(site, data, clock=clock) as server:
            consoles = [await crowd_login(server, rep) for rep in reps]
            for team in TEAMS:
                await _arrive(server, team, f"Before {team}")
            for console in consoles:
                await console.drain()
            saved = {rep: (console.token, console.seq) for rep, console in zip(reps, consoles, strict=True)}
        # The server stopped with every console connected.
        assert all(console.ws.close_code == 1001 for console in consoles)
        del password_checks[:]
        async with serving(site, data, clock=clock) as server:
            boot = clock.now()
            engine = server.runtime.engine
            heard: list[Event] = []
            engine.subscribe(heard.append)
            # What happens before the consoles are back is what they missed.
            for team in TEAMS:
                await _arrive(server, team, f"While away {team}")
            back = await asyncio.gather(*(_resume(server, *saved[rep]) for rep in reps if rep != absent))
            for team in TEAMS:
                await _arrive(server, team, f"After {team}")
            for console in back:
                await console.drain()
            assert password_checks == []  # a token resumes: no password hash
            for rep, console in zip([r for r in reps if r != absent], back, strict=True):
                feed = RepFeed(rep)
                # Exactly what it may see since it left, each once, in order (the
                # RepClient also checked every frame's prev): the replay, then live.
                assert console.events == [fe for e in heard if (fe := feed.project(e)) is not None], rep
                # No presence flicker: nobody went offline and came back.
                assert not any(isinstance(e, RepEvent) for e in console.events), rep
                assert engine.reps[rep].connected
            # The one that did not come back counts as connected until the window ends...
            window = server.runtime.restart_window
            assert window == 20.0 and engine.reps[absent].connected
            clock.advance(window)
            # ... and is then disconnected, its grace period counted from the start.
            gone = await back[0].wait_event(lambda e: isinstance(e, RepEvent) and e.data.rep.id == absent)
            assert isinstance(gone, RepEvent)
            assert gone.data.rep.connected is False and gone.data.rep.grace_until == boot + GRACE
            assert all(engine.reps[rep].connected for rep in reps if rep != absent)
            for console in back:
                await console.close()

    run(main(), 60)


def test_a_console_that_resumes_after_the_restart_window_is_reconnected(tmp_path: Path) -> None:
    """Late but within the grace period: disconnected when the window ended, connected again on resume."""
    site = write_crowd_site(tmp_path, {"ta": 2}, grace_period=GRACE)
    data = tmp_path / "data"
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, data, clock=clock) as server:
            first = await crowd_login(server, crowd_rep("ta", 0))
            late = await crowd_login(server, crowd_rep("ta", 1))
            await first.drain()
            await late.drain()
            token, seq = late.token, late.seq
        async with serving(site, data, clock=clock) as server:
            engine = server.runtime.engine
            back = await _resume(server, first.token, first.seq)
            clock.advance(server.runtime.restart_window)
            lost = await back.wait_event(lambda e: isinstance(e, RepEvent) and not e.data.rep.connected)
            assert lost.data.rep.id == crowd_rep("ta", 1)
            again = await _resume(server, token, seq)
            assert engine.reps[crowd_rep("ta", 1)].connected
            found = await back.wait_event(lambda e: isinstance(e, RepEvent) and e.data.rep.connected)
            assert found.data.rep.id == crowd_rep("ta", 1) and found.data.rep.grace_until is None
            # Its own replay says it was offline a while, then back.
            assert [e.data.rep.connected for e in again.events if isinstance(e, RepEvent)] == [False, True]
            await back.close()
            await again.close()

    run(main())
