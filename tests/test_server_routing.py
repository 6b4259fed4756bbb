"""Auto-assignment over real sockets against a real server (issue 14).

Offers, accept, decline, timeout, two misses and away, paused offers, pull
alongside an open offer, protocol versions 2 and 3, estimates to consoles
and customers, and a reload that turns routing on.  Deadlines move on a
:class:`VirtualClock`: nothing sleeps for an offer to expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from server_helpers import CustomerClient, RepClient, run, serving, site_toml, write_site

from repconsole.core.model import RepStatus, RoutingMode
from repconsole.protocol import (
    CloseCode,
    CustomerState,
    Error,
    ErrorReason,
    EstimateEvent,
    Event,
    OfferEndedEvent,
    OfferEvent,
    OfferOutcome,
    Reason,
    RepEvent,
    Result,
    Welcome,
)
from repconsole.server.config import ConfigError, load_config
from repconsole.server.customers import POSITION_EVERY
from repconsole.server.timers import VirtualClock

NET = '[teams.net]\nname = "Networking"\n'


def routed_toml(routing: str = "least-busy", site: str = "") -> str:
    text = site_toml().replace(NET, f'{NET}routing = "{routing}"\n', 1)
    return text.replace("grace_period = 60.0\n", f"grace_period = 60.0\n{site}", 1)


def write_routed(tmp_path: Path, routing: str = "least-busy", site: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(routed_toml(routing, site), encoding="utf-8")
    return path


def offered(sid: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, OfferEvent) and e.data.offer.session == sid


def ended(sid: str, outcome: OfferOutcome) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, OfferEndedEvent) and e.data.session == sid and e.data.outcome is outcome


def offers_of(rep: RepClient, sid: str) -> int:
    return sum(1 for e in rep.events if isinstance(e, OfferEvent) and e.data.offer.session == sid)


async def first_offered(sid: str, *reps: RepClient) -> tuple[RepClient, list[RepClient]]:
    """The one rep of ``reps`` offered ``sid``, and the others (who were not)."""
    waits = [asyncio.ensure_future(rep.wait_event(offered(sid))) for rep in reps]
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for w in done:
        w.result()  # a timeout is a failure
    for rep in reps:
        await rep.drain()
    chosen = [r for r in reps if offers_of(r, sid)]
    assert len(chosen) == 1, [offers_of(r, sid) for r in reps]
    return chosen[0], [r for r in reps if r is not chosen[0]]


# ---------------------------------------------------------------- config


def test_routing_capacity_and_skills_are_read_from_the_site_file(tmp_path: Path) -> None:
    text = routed_toml("skills", "offer_timeout = 30\nmisses_before_away = 3\n").replace(
        f'{NET}routing = "skills"\n', f'{NET}routing = "skills"\nmax_sessions = 2\nskills = {{ "Network" = "vpn" }}\n'
    )
    text = text.replace('id = "bob"\nname = "Bob Ortiz"\nteams = ["net"]\n', 'id = "bob"\nname = "Bob Ortiz"\nteams = ["net"]\nskills = ["vpn"]\n')
    (tmp_path / "site.toml").write_text(text, encoding="utf-8")
    from repconsole.server.config import build_engine

    engine = build_engine(load_config(tmp_path / "site.toml"), lambda: 0.0)
    net = engine.teams["net"]
    assert (net.routing, net.max_sessions, net.skills) == (RoutingMode.SKILLS, 2, {"Network": "vpn"})
    assert engine.reps["bob"].skills == frozenset({"vpn"}) and engine.reps["bob"].max_sessions == 2
    assert engine.reps["erin"].max_sessions == 3  # her own beats the team's
    assert engine.reps["bob"].routed and not engine.reps["carol"].routed
    assert (engine.site.offer_timeout, engine.site.misses_before_away) == (30, 3)


@pytest.mark.parametrize(
    ("change", "needle", "message"),
    [
        ('routing = "least_busy"', "routing", "teams.net.routing: unknown routing 'least_busy' (expected none or least-busy or skills)"),
        ('routing = "skills"', "[teams.net]", "teams.net.skills: is required when routing is 'skills' (issue category -> skill)"),
        ('routing = "least-busy"\nskills = { "Network" = "vpn" }', "skills", "teams.net.skills: only a team with routing = 'skills' has a skills map"),
        ('routing = "skills"\nskills = { "Netwrk" = "vpn" }', "skills", "teams.net.skills.Netwrk: no issue has category 'Netwrk'"),
        ("max_sessions = 0", "max_sessions", "teams.net.max_sessions: must be a whole number between 1 and 1000"),
        ('routing = "skills"\nskills = { "Network" = "v p n" }', "skills", "teams.net.skills.Network: 'v p n' is not a valid skill id"),
    ],
)
def test_a_routing_mistake_names_the_line_and_the_key(tmp_path: Path, change: str, needle: str, message: str) -> None:
    text = site_toml().replace(NET, f"{NET}{change}\n", 1)
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith(needle))
    assert any(str(p).startswith(f"{path}:{line}: {message}") for p in info.value.problems), info.value.problems


def test_offer_timeout_out_of_range_is_refused(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(routed_toml(site="offer_timeout = 1\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"site\.offer_timeout: must be between 5 and 600 seconds"):
        load_config(tmp_path / "site.toml")


# ---------------------------------------------------------------- offers


def test_an_offer_is_made_to_an_available_rep_and_accepted(tmp_path: Path) -> None:
    site = write_routed(tmp_path, site="offer_timeout = 30\n")

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            ann = await CustomerClient.started(server)
            made = await alice.wait_event(offered(ann.session))
            offer = made.data.offer
            assert (offer.rep, offer.queue, offer.deadline - offer.at) == ("alice", "team:net", 30)
            reply = await alice.call("accept_offer", session=ann.session)
            assert isinstance(reply, Result) and reply.result.session.owner == "alice", reply
            await alice.wait_event(ended(ann.session, OfferOutcome.ACCEPTED))
            await ann.until(lambda: ann.state() is CustomerState.ACTIVE)
            again = await alice.call("accept_offer", session=ann.session)
            assert isinstance(again, Error) and again.reason == Reason.NO_OFFER, again

    run(main())


def test_a_declined_session_goes_to_the_next_rep_and_never_back(tmp_path: Path) -> None:
    site = write_routed(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            ann = await CustomerClient.started(server)
            first, (second,) = await first_offered(ann.session, alice, bob)
            reply = await first.call("decline_offer", session=ann.session)
            assert isinstance(reply, Result) and reply.result.offer.session == ann.session, reply
            await first.wait_event(ended(ann.session, OfferOutcome.DECLINED))
            await second.wait_event(offered(ann.session))
            assert (await second.call("decline_offer", session=ann.session)).result.offer.rep == second.welcome.rep
            await first.drain()
            await second.drain()
            assert offers_of(first, ann.session) == offers_of(second, ann.session) == 1  # never re-offered
            assert server.runtime.engine.open_offers() == []
            await ann.until(lambda: ann.state() is CustomerState.WAITING)  # pull is still there for it
            assert (await first.ok("accept", session=ann.session)).session.owner == first.welcome.rep

    run(main())


def test_an_unanswered_offer_expires_on_the_servers_clock_and_goes_to_the_next_rep(tmp_path: Path) -> None:
    site = write_routed(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            ann = await CustomerClient.started(server)
            first, (second,) = await first_offered(ann.session, alice, bob)
            clock.advance(19.9)
            await first.drain()
            assert not any(isinstance(e, OfferEndedEvent) for e in first.events)
            assert offers_of(second, ann.session) == 0
            clock.advance(0.2)
            gone = await first.wait_event(ended(ann.session, OfferOutcome.EXPIRED))
            assert gone.data.away is False  # one miss is not two
            await second.wait_event(offered(ann.session))

    run(main())


def test_two_missed_offers_in_a_row_set_the_rep_away_and_say_why(tmp_path: Path) -> None:
    site = write_routed(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            ann = await CustomerClient.started(server)
            await alice.wait_event(offered(ann.session))
            clock.advance(20)
            assert (await alice.wait_event(ended(ann.session, OfferOutcome.EXPIRED))).data.away is False
            ben = await CustomerClient.started(server, "Ben Fox")
            await alice.wait_event(offered(ben.session))
            clock.advance(20)
            miss = await alice.wait_event(ended(ben.session, OfferOutcome.EXPIRED))
            assert miss.data.away is True and isinstance(miss.data.detail, str) and miss.data.detail, miss
            away = await alice.wait_event(lambda e: isinstance(e, RepEvent) and e.data.rep.id == "alice" and e.data.rep.status is RepStatus.AWAY)
            assert away.seq > miss.seq
            cat = await CustomerClient.started(server, "Cat Poe")
            await alice.drain()
            assert offers_of(alice, cat.session) == 0  # away: no offers
            await alice.ok("set_status", status="available")
            await alice.wait_event(offered(cat.session))

    run(main())


def test_paused_offers_come_back_by_themselves(tmp_path: Path) -> None:
    site = write_routed(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")
            result = await alice.ok("pause_offers", minutes=1)
            assert result.rep.routing.paused_until == clock.now() + 60
            ann = await CustomerClient.started(server)
            clock.advance(59)
            await alice.drain()
            assert offers_of(alice, ann.session) == 0
            clock.advance(1)
            await alice.wait_event(offered(ann.session))
            back = [e for e in alice.events if isinstance(e, RepEvent) and e.data.rep.id == "alice"]
            assert back and back[-1].data.rep.routing.paused_until is None

    run(main())


def test_pull_works_beside_an_open_offer_and_the_race_is_won_exactly_once(tmp_path: Path) -> None:
    site = write_routed(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            bob = await RepClient.logged_in(server, "bob")
            # A pull beats the offer: the offered rep is told it was withdrawn.
            ann = await CustomerClient.started(server)
            offered_to, (other,) = await first_offered(ann.session, alice, bob)
            assert (await other.ok("accept", session=ann.session)).session.owner == other.welcome.rep
            await offered_to.wait_event(ended(ann.session, OfferOutcome.WITHDRAWN))
            late = await offered_to.call("accept_offer", session=ann.session)
            assert isinstance(late, Error) and late.reason == Reason.NO_OFFER, late
            # Both at once: exactly one wins.
            ben = await CustomerClient.started(server, "Ben Fox")
            offered_to, (other,) = await first_offered(ben.session, alice, bob)
            replies = await asyncio.gather(
                offered_to.call("accept_offer", session=ben.session), other.call("accept", session=ben.session)
            )
            wins = [r for r in replies if isinstance(r, Result)]
            assert len(wins) == 1, replies
            loser = next(r for r in replies if isinstance(r, Error))
            assert loser.reason in (Reason.NO_OFFER, Reason.ALREADY_TAKEN), loser
            assert server.runtime.engine.session(ben.session).owner == wins[0].result.session.owner
            assert server.runtime.engine.open_offers() == []

    run(main())


# -------------------------------------------------------------- versions


def test_a_version_2_console_is_refused_where_a_team_routes(tmp_path: Path) -> None:
    site = write_routed(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            old = await RepClient.open(server)
            reply = await old.login("alice", protocol=2)
            assert isinstance(reply, Error) and reply.reason == ErrorReason.UNSUPPORTED_PROTOCOL, reply
            assert "assigns sessions automatically" in reply.detail and "update the console" in reply.detail
            assert await old.closed_with() == CloseCode.UNSUPPORTED_PROTOCOL
            alice = await RepClient.logged_in(server, "alice")
            await alice.close()
            old = await RepClient.open(server)
            assert (await old.resume(alice.token, alice.seq, protocol=2)).reason == ErrorReason.UNSUPPORTED_PROTOCOL
            assert await old.closed_with() == CloseCode.UNSUPPORTED_PROTOCOL

    run(main())


def test_a_version_2_console_is_served_where_no_team_routes_and_never_gets_a_newer_event(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            old = await RepClient.open(server)
            welcome = await old.login("alice", protocol=2)
            assert isinstance(welcome, Welcome) and welcome.protocol == 2
            new = await RepClient.logged_in(server, "bob")
            assert new.welcome.protocol == 4
            ann = await CustomerClient.started(server)
            clock.advance(POSITION_EVERY)  # positions refreshed: the teams' estimates published
            est = await new.wait_event(lambda e: isinstance(e, EstimateEvent) and e.data.team == "net")
            assert est.data.estimate is None  # nobody served yet: no data
            await ann.until(lambda: bool(ann.statuses) and ann.statuses[-1].estimate is None)  # null: "busier than usual"
            await new.ok("accept", session=ann.session)
            await old.wait_event(lambda e: getattr(e.data, "id", None) == ann.session)  # the feed goes on (gone: taken)
            await old.drain()
            assert not any(isinstance(e, EstimateEvent | OfferEvent | OfferEndedEvent) for e in old.events)
            # Its replay leaves them out too (the client checks every prev: no gap either way).
            token, seq = old.token, old.seq
            await old.close()
            again = await RepClient.open(server)
            assert (await again.resume(token, seq - 1 if seq > 0 else seq, protocol=2)).protocol == 2
            await again.drain()
            assert not any(isinstance(e, EstimateEvent) for e in again.events)

    run(main())


# ---------------------------------------------------------------- reload


def test_a_reload_turns_routing_on_and_capacity_down(tmp_path: Path) -> None:
    site = write_site(tmp_path)

    async def main() -> None:
        async with serving(site, tmp_path / "data") as server:
            alice = await RepClient.logged_in(server, "alice")
            old = await RepClient.open(server)
            assert isinstance(await old.login("bob", protocol=2), Welcome)
            ann = await CustomerClient.started(server)
            await alice.drain()
            assert offers_of(alice, ann.session) == 0  # pull only
            site.write_text(routed_toml(), encoding="utf-8")
            change = server.reload(load_config(site))
            assert change.directory and "team net" in change.changes
            assert server.runtime.engine.teams["net"].routing is RoutingMode.LEAST_BUSY
            assert [o.session for o in server.runtime.engine.open_offers()] == [ann.session]
            assert await alice.closed_with(5) == CloseCode.GOING_AWAY
            assert await old.closed_with(5) == CloseCode.GOING_AWAY
            back = await RepClient.open(server)
            assert isinstance(await back.resume(alice.token, alice.seq), Welcome)
            assert back.snapshot is not None and [o.session for o in back.snapshot.offers] == [ann.session]
            assert back.snapshot.you.routing.paused_until is None
            refused = await RepClient.open(server)
            assert (await refused.resume(old.token, old.seq, protocol=2)).reason == ErrorReason.UNSUPPORTED_PROTOCOL

            # Capacity through the engine: alice's own cap of 1, reached by a pull, withdraws her offer.
            await back.ok("accept_offer", session=ann.session)
            ben = await CustomerClient.started(server, "Ben Fox")
            await back.wait_event(offered(ben.session))
            capped = routed_toml().replace('id = "alice"\nname = "Alice Ng"\n', 'id = "alice"\nname = "Alice Ng"\nmax_sessions = 1\n')
            site.write_text(capped, encoding="utf-8")
            server.reload(load_config(site))
            assert server.runtime.engine.reps["alice"].max_sessions == 1
            assert server.runtime.engine.offers_to("alice") == []
            # Routing off again: no offers at all.
            site.write_text(site_toml(), encoding="utf-8")
            server.reload(load_config(site))
            assert server.runtime.engine.open_offers() == []
            assert server.runtime.engine.reps["alice"].max_sessions == 5

    run(main())
