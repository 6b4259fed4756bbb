"""A refresh's estimates share each team's inputs (issue 14): the same answers, worked out once per team.

A position refresh asks an estimate of every connected waiting customer.
Within :meth:`QueueEngine.estimating` each team's inputs (its members'
room, the offers out, the rate over up to 1,000 served times) are worked
out once; the answers, and the status frames the pages get, must be
exactly those of the same engine asked outside it (each estimate's inputs
worked out afresh, as before the cache), over randomized engine states, and a change in a team (a rep ends
a session, a rep goes away) must show in the next refresh.  The refresh
over real sockets, in slices, is in :func:`test_a_refresh_goes_through_the_pages_in_slices_with_the_inputs_worked_out_once_per_team`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import both_serving, intake, routed_pair
from server_helpers import CustomerClient, RepClient, eventually, run, serving, write_site

import repconsole.server.customers as customers
from repconsole.core.clock import ManualClock
from repconsole.core.engine import Event, QueueEngine
from repconsole.core.errors import CommandError
from repconsole.core.estimate import WaitEstimate
from repconsole.core.model import RepStatus, RoutingMode, SessionState
from repconsole.protocol import EstimateData, encode
from repconsole.server.customers import POSITION_EVERY, waiting_status
from repconsole.server.timers import VirtualClock

TEAMS = {"t0": (RoutingMode.LEAST_BUSY, 2), "t1": (RoutingMode.LEAST_BUSY, 1), "t2": (RoutingMode.NONE, 2), "t3": (RoutingMode.LEAST_BUSY, 3)}


def _engine(seed: int) -> tuple[QueueEngine, ManualClock, random.Random]:
    """A random site and day so far: teams routed and not, reps in one or two, sessions served and ended, some reps
    away, busy, disconnected or pausing offers, offers out and declined, customers waiting.  Built the same from
    the same seed (its third part goes on drawing the changes made later)."""
    rng = random.Random(seed)
    clock = ManualClock(100_000.0)
    e = QueueEngine(clock, rng=random.Random(1))
    for team_id, (routing, cap) in TEAMS.items():
        e.add_team(team_id, team_id.upper(), routing=routing, max_sessions=cap)
        e.add_issue(f"i{team_id}", team_id, "General", team_id)
    for n in range(10):
        teams = sorted(rng.sample(sorted(TEAMS), rng.choice((1, 1, 2))))
        e.add_rep(f"r{n}", f"Rep {n}", teams, max_sessions=rng.randint(1, 3))
    for n in range(rng.randint(60, 140)):
        team_id = rng.choice(sorted(TEAMS))
        s = e.start_with_issue(f"i{team_id}", intake(f"h{n}"))
        clock.advance(rng.uniform(1, 30))
        offer = next((o for o in e.open_offers() if o.session == s.id), None)
        try:
            if offer is not None:
                e.accept_offer(offer.rep, s.id)
            else:
                e.accept(rng.choice(sorted(e.teams[team_id].members)), s.id)
        except CommandError:
            pass
        active = sorted((x.id, x.owner) for x in e.sessions() if x.state is SessionState.ACTIVE and x.owner)
        for sid, owner in active:
            if rng.random() < 0.45:
                clock.advance(rng.uniform(5, 200))
                e.end(owner, sid)
    for rep_id in sorted(e.reps):
        roll = rng.random()
        if roll < 0.15:
            e.set_status(rep_id, RepStatus.AWAY)
        elif roll < 0.25:
            e.set_status(rep_id, RepStatus.BUSY)
        elif roll < 0.3:
            e.rep_disconnected(rep_id)
        elif roll < 0.35:
            e.pause_offers(rep_id, 5)
    for team_id in sorted(TEAMS):
        for n in range(rng.randint(0, 40)):
            e.start_with_issue(f"i{team_id}", intake(f"w{team_id}{n}"))
    for offer in e.open_offers():
        if rng.random() < 0.3:
            e.decline_offer(offer.rep, offer.session)
    clock.advance(rng.uniform(0, 20))
    return e, clock, rng


def _waiting(e: QueueEngine) -> list[str]:
    return sorted(s.id for s in e.sessions() if s.state is SessionState.WAITING and s.queue is not None)


def _refresh(e: QueueEngine, batch: bool) -> tuple[list[WaitEstimate | None], list[bytes], list[Any]]:
    """A refresh: the teams' estimates published, then every waiting customer's estimate and status frame."""
    published: list[Any] = []
    stop = e.subscribe(lambda ev: published.append(ev.data) if isinstance(ev.data, EstimateData) else None)
    try:
        if batch:
            with e.estimating():
                e.publish_estimates()
                got = [(e.estimate_for(sid), encode(waiting_status(e, e.session(sid)))) for sid in _waiting(e)]
        else:
            e.publish_estimates()
            got = [(e.estimate_for(sid), encode(waiting_status(e, e.session(sid)))) for sid in _waiting(e)]
    finally:
        stop()
    return [g[0] for g in got], [g[1] for g in got], published


def _change(e: QueueEngine, clock: ManualClock, rng: random.Random) -> None:
    """What happens between two refreshes: a rep ends a session, a rep goes away or comes back, time passes."""
    active = sorted((s.id, s.owner) for s in e.sessions() if s.state is SessionState.ACTIVE and s.owner)
    if active and rng.random() < 0.7:
        sid, owner = rng.choice(active)
        e.end(owner, sid)
    rep_id = rng.choice(sorted(e.reps))
    e.set_status(rep_id, RepStatus.AWAY if e.reps[rep_id].status is RepStatus.AVAILABLE else RepStatus.AVAILABLE)
    clock.advance(rng.choice((0.5, 0.5, 2.0, 11.0)))


@pytest.mark.parametrize("seed", range(12))
def test_a_refresh_gives_every_customer_and_team_what_the_uncached_path_does(seed: int) -> None:
    old, old_clock, old_rng = _engine(seed)
    new, new_clock, new_rng = _engine(seed)
    assert _waiting(old) == _waiting(new) and _waiting(new)
    numbers = 0
    for _ in range(4):  # four refreshes, with changes between them
        before = new._router.inputs_made
        want, got = _refresh(old, batch=False), _refresh(new, batch=True)
        assert got[0] == want[0]  # the estimates (point, range, ahead, the model's figure)
        assert got[1] == want[1]  # the frames the pages are sent
        assert got[2] == want[2]  # the estimate events the consoles are sent
        numbers += sum(1 for est in got[0] if est is not None and est.ahead > 0)
        # What the estimates leave behind: first estimates shown (calibration), forecasts made.
        assert new._router._shown == old._router._shown
        assert new._router.outlook.remakes == old._router.outlook.remakes
        assert new._router.inputs_made - before == len(TEAMS)  # once per team, whatever the customers
        _change(old, old_clock, old_rng)
        _change(new, new_clock, new_rng)
    assert numbers > 0  # the states drawn give numbers, not only "no data" or "at once"


def test_inputs_are_worked_out_once_per_team_per_refresh_however_many_wait() -> None:
    e, clock, _ = _engine(3)
    for n in range(300):
        e.start_with_issue("it0", intake(f"more{n}"))
    waiting = _waiting(e)
    teams = {e.session(sid).queue.id for sid in waiting if e.session(sid).queue is not None}  # type: ignore[union-attr]
    before = e._router.inputs_made
    with e.estimating():
        for sid in waiting:
            e.estimate_for(sid)
    assert e._router.inputs_made - before == len(teams)
    before = e._router.inputs_made
    for sid in waiting:  # outside a refresh: afresh per asking (a page's status pushed on its own change)
        e.estimate_for(sid)
    assert e._router.inputs_made - before == len(waiting)


def _net(clock: ManualClock) -> tuple[QueueEngine, list[str]]:
    """One routed team of two reps (capacity 1), both busy, history enough for a forecast, six waiting."""
    e = routed_pair(clock, length=300.0)
    both_serving(e, clock, 30.0)
    return e, [e.start_with_issue("vpn", intake(f"w{i}")).id for i in range(6)]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: e.end("a", next(s.id for s in e.sessions() if s.owner == "a" and s.state is SessionState.ACTIVE)), id="a-rep-ends-a-session"),
        pytest.param(lambda e: e.set_status("b", RepStatus.AWAY), id="a-rep-goes-away"),
        pytest.param(lambda e: e.rep_disconnected("b"), id="a-rep-disconnects"),
    ],
)
def test_a_change_in_the_team_shows_in_the_next_refresh(change: Callable[[QueueEngine], object]) -> None:
    clock = ManualClock(10_000.0)
    e, waiting = _net(clock)

    def refresh() -> list[WaitEstimate | None]:
        with e.estimating():
            return [e.estimate_for(sid) for sid in waiting]

    first = refresh()
    clock.advance(POSITION_EVERY)
    change(e)
    clock.advance(POSITION_EVERY)  # the forecast is younger than outlook.REFRESH: the rate model's inputs must move
    after = refresh()
    assert after != first
    reference = [e._router.estimate("net", e.queue_position(sid) or 0) for sid in waiting]  # outside a refresh: afresh
    assert after == reference


def test_a_command_within_a_refresh_works_the_inputs_out_afresh() -> None:
    clock = ManualClock(10_000.0)
    e, waiting = _net(clock)
    heard: list[Event] = []
    e.subscribe(heard.append)
    with e.estimating():
        e.publish_estimates()  # its own estimate events keep the inputs
        made = e._router.inputs_made
        before = e.estimate_for(waiting[-1])
        assert e._router.inputs_made == made
        e.end("a", next(s.id for s in e.sessions() if s.owner == "a" and s.state is SessionState.ACTIVE))  # afresh
        during = e.estimate_for(waiting[-1])
        assert e._router.inputs_made == made + 1
    assert any(isinstance(ev.data, EstimateData) for ev in heard)
    assert during == e._router.estimate("net", e.queue_position(waiting[-1]) or 0)
    assert during != before


def test_a_refresh_goes_through_the_pages_in_slices_with_the_inputs_worked_out_once_per_team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over real sockets: a refresh of 7 waiting pages with slices of 3 lets the loop run between slices, and every
    page gets its new position; with one slice, each team's inputs are worked out once in the whole refresh."""
    site = write_site(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            desk, router = server.customers, server.runtime.engine._router
            alice = await RepClient.logged_in(server, "alice")  # net
            pages = [await CustomerClient.started(server, name=f"N{i}") for i in range(4)]
            pages += [await CustomerClient.started(server, name=f"B{i}", issue="invoice") for i in range(3)]
            for page in pages:
                await page.until(lambda p=page: bool(p.statuses))
            teams = len(server.runtime.engine.teams)
            made = router.inputs_made
            assert desk._positions is not None  # the refresh the last start asked for
            clock.advance(POSITION_EVERY)  # it runs now, in one slice
            assert desk._pass is None
            assert router.inputs_made - made == teams  # publish_estimates' and all seven pages': once per team

            monkeypatch.setattr(customers, "REFRESH_SLICE", 3)
            await alice.ok("accept", session=pages[0].session)  # everyone behind in net moves up
            await pages[0].close()
            made = router.inputs_made
            clock.advance(POSITION_EVERY)
            assert desk._pass is not None and desk._pass_at == 3  # the first slice is done; the rest wait for the loop
            slices = -(-len(desk._pass) // 3)
            for i, page in enumerate(pages[1:4]):
                await page.until(lambda p=page, i=i: p.statuses[-1].position == i + 1)
            await eventually(lambda: desk._pass is None)
            # Slices of 3 of the pages connected: the first with publish_estimates (every team), each other
            # slice its pages' teams (net and bill at most).
            assert slices >= 2
            assert teams + slices - 1 <= router.inputs_made - made <= teams + 2 * (slices - 1)

            # A slice that fails (a bug) ends its pass, not every later refresh.
            def broken(engine: QueueEngine, s: object) -> object:
                raise RuntimeError("a bug in a status")

            monkeypatch.setattr(customers, "waiting_status", broken)
            with pytest.raises(RuntimeError):
                desk._refresh_positions()
            assert desk._pass is None
            monkeypatch.undo()
            desk._refresh_positions()
            await eventually(lambda: desk._pass is None)
            await alice.close()
            for page in pages[1:]:
                await page.close()

    run(main())

