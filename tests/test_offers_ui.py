"""Issue 14 in the console: offers with a countdown, accept / decline / expiry, away after two misses,
the capacity self-view, pausing offers, and wait estimates, on the simulator with a pinned clock.

The simulator turns routing on for Networking (least busy) once its population exists, so the
console starts with offers; the engine's clock and the countdown's clock are one ManualClock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from test_accessibility import focusable, tab_cycle
from test_console import Console, open_console
from test_websocket_backend import Scene, scenario

from repconsole.backend.simulator import SimulatorBackend
from repconsole.backend.world import ME
from repconsole.core.clock import ManualClock
from repconsole.core.model import RoutingMode
from repconsole.core.state import Changes, ConsoleState
from repconsole.preferences import TeamAlerts
from repconsole.protocol import CommandName, EstimateView, RepStatus, RoutingView
from repconsole.ui.offers import capacity_text, estimate_text

T = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T)


@pytest.fixture
def console(qtbot, aloop, tmp_path: Path, clock: ManualClock) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "settings", clock=clock)
    c.window.offers.clock = clock
    c.backend.pump()  # the first step turns routing on: the rep gets offers
    c.settle()
    yield c
    c.close()


def pump(c: Console, clock: ManualClock, seconds: float = 1.0) -> None:
    clock.advance(seconds)
    c.backend.pump()
    c.settle()


def only_me_routed(c: Console) -> str:
    """Every other member of Networking goes away, and a new Networking customer arrives: offered to the rep."""
    for rep in sorted(c.engine.teams["network"].members - {ME}):
        c.engine.set_status(rep, RepStatus.AWAY)
    s = c.engine.start_with_issue("vpn", c.backend.simulation.world.intake())
    c.settle()
    return s.id


def shown(c: Console) -> str | None:
    desk = c.window.offers
    return None if desk.bar.isHidden() else desk.card.session


def test_an_offer_shows_with_a_countdown_that_follows_the_clock(console: Console, clock: ManualClock) -> None:
    mine = console.engine.offers_to(ME)
    assert mine, "the simulator offers the rep sessions at start"
    desk = console.window.offers
    assert shown(console) == mine[0].session
    name = console.engine.session(mine[0].session).customer_name
    assert name in desk.card.label.text()
    assert desk.card.countdown.text() == "20 s"
    assert desk.card.deadline == T + 20
    clock.advance(7.2)
    desk.tick()
    assert desk.card.countdown.text() == "13 s"
    assert desk.card.accept.accessibleName().startswith("Accept offer: ")
    assert "+" in desk.card.more.text() if len(mine) > 1 else not desk.card.more.isVisibleTo(desk.card)


def test_accepting_the_offer_opens_its_tab(console: Console) -> None:
    sid = shown(console)
    assert sid is not None
    console.window.offers.card.accept.click()
    tab = console.wait_tab(sid)
    assert console.window.tabs.currentWidget() is tab
    console.settle()
    assert sid not in console.window.state.offers
    assert shown(console) != sid
    assert console.engine.session(sid).owner == ME


def test_the_shortcut_accepts_the_offer_shown(console: Console) -> None:
    sid = shown(console)
    assert sid is not None
    console.window.menu_actions["Accept &offer"].trigger()
    console.wait_tab(sid)


def test_declining_removes_it_and_the_simulator_offers_the_next_rep(console: Console) -> None:
    sid = shown(console)
    assert sid is not None
    console.window.offers.card.decline.click()
    console.qtbot.waitUntil(lambda: sid not in console.window.state.offers, timeout=timeout(3))
    assert shown(console) != sid
    offer = next(o for o in console.engine.open_offers() if o.session == sid)
    assert offer.rep != ME


def test_an_offer_withdrawn_when_another_rep_takes_the_session_goes_at_once(console: Console) -> None:
    sid = shown(console)
    assert sid is not None
    console.engine.accept("priya", sid)  # a pull: the offer ends, withdrawn
    console.settle()
    assert sid not in console.window.state.offers and shown(console) != sid
    assert not any(a.row == sid and a.event.value == "offer" for a in console.window.alerter.pending)


def test_an_offer_that_runs_out_goes_and_two_misses_set_the_rep_away(console: Console, clock: ManualClock) -> None:
    announced: list[tuple[str, str, bool]] = []
    console.window.announcer.announced.connect(lambda kind, text, assertive: announced.append((kind, text, assertive)))
    first = shown(console)
    assert first is not None
    pump(console, clock, 21)
    assert first not in console.window.state.offers
    assert console.window.state.me.status is RepStatus.AVAILABLE  # one miss: still available
    assert "You missed the offer" in console.window.notice
    for _ in range(3):  # a second miss (a new customer, if nothing is offered to the rep now)
        if console.window.state.me.status is RepStatus.AWAY:
            break
        if shown(console) is None:
            only_me_routed(console)
        assert shown(console) is not None
        pump(console, clock, 21)
    assert console.window.state.me.status is RepStatus.AWAY
    desk = console.window.offers
    assert "away" in desk.away_message and desk.away_message in console.window.notice
    assert ("offers", desk.away_message, True) in announced
    assert desk.capacity_label.text().endswith("· no offers while away")
    assert shown(console) is None  # away: no offers


def test_an_offer_is_announced_assertively_and_rings(console: Console, clock: ManualClock) -> None:
    announced: list[tuple[str, str, bool]] = []
    console.window.announcer.announced.connect(lambda kind, text, assertive: announced.append((kind, text, assertive)))
    # The team's arrivals are switched off: an offer is made to the rep, and still speaks and rings.
    console.window.settings.preferences.team_alerts["network"] = TeamAlerts(arrivals=False)
    for sid in list(console.window.state.offers):
        console.engine.decline_offer(ME, sid)
    console.settle()
    assert shown(console) is None
    only_me_routed(console)
    sid = shown(console)
    assert sid is not None
    name = console.engine.session(sid).customer_name
    assert any(kind == "offers" and assertive and name in text for kind, text, assertive in announced)
    assert any(a.event.value == "offer" and a.row == sid for a in console.window.alerter.pending)
    console.window.offers.card.decline.click()
    # Declined: its alert (sound, banner) stops; another offer may follow.
    console.qtbot.waitUntil(lambda: not any(a.row == sid and a.event.value == "offer" for a in console.window.alerter.pending), timeout=timeout(3))


def test_capacity_text_and_pausing_offers_that_come_back_by_themselves(console: Console, clock: ManualClock) -> None:
    label = console.window.offers.capacity_label
    offers = len(console.window.state.offers)
    assert offers and console.window.state.my_sessions() == []
    assert label.text() == f"{offers}/6 ({offers} offered) · auto-assign on"
    console.window.menu_actions["&Pause offers…"].trigger()
    dialog = console.window.offers.pause_dialog
    assert dialog is not None and dialog.minutes.value() == 15 and dialog.minutes.accessibleName()
    dialog.accept()
    assert console.window.offers.pause_dialog is None
    console.qtbot.waitUntil(lambda: "paused" in label.text(), timeout=timeout(3))
    until = time.strftime("%H:%M", time.localtime(T + 15 * 60))
    assert label.text() == f"0/6 · auto-assign paused until {until}"  # pausing withdrew the open offers
    assert shown(console) is None
    pump(console, clock, 15 * 60 + 1)
    assert label.text().endswith("auto-assign on")
    only_me_routed(console)
    assert shown(console) is not None
    n = len(console.window.state.offers)
    assert label.text() == (f"{n}/6 ({n} offered) · auto-assign on" if n else "0/6 · auto-assign on")


def test_take_offers_again_ends_a_pause(console: Console) -> None:
    label = console.window.offers.capacity_label
    console.window.offers.pause(60)
    console.qtbot.waitUntil(lambda: "paused" in label.text(), timeout=timeout(3))
    console.window.menu_actions["&Take offers again"].trigger()
    console.qtbot.waitUntil(lambda: label.text().endswith("auto-assign on"), timeout=timeout(3))


def test_the_team_queue_shows_its_wait_estimate(console: Console, clock: ManualClock) -> None:
    console.show_queue("team:network")
    pump(console, clock)  # the simulator estimates as it steps
    est = console.window.state.estimates["network"]
    label = console.window.offers.estimate_label
    assert label.text() == (f"· wait {estimate_text(est)}" if est else "· no wait estimate")
    assert not label.isHidden()
    console.show_queue(console.window.state.personal_queue)
    assert label.isHidden()


def test_the_state_keeps_offers_and_estimates_from_the_snapshot_and_events(clock: ManualClock) -> None:
    backend = SimulatorBackend(population=30, rate=0.0, seed=11, tick=0, clock=clock)
    state = ConsoleState()
    changes: list[Changes] = []
    backend.add_event_listener(lambda batch: changes.append(state.apply(batch)))
    asyncio.run(backend.start())
    assert state.offers == {} and state.estimates == {}
    backend.pump()
    mine = {o.session for o in backend.engine.offers_to(ME)}
    assert mine and set(state.offers) == mine
    assert {o.session for c in changes for o in c.offers} == mine
    assert set(state.estimates) == {"network", "accounts", "software"} and "network" in changes[-1].estimates
    backend.resync()  # a fresh snapshot: the offers are in it, and the estimates
    assert changes[-1].reset and set(state.offers) == mine and "network" in state.estimates
    fresh = ConsoleState()  # a console that signs in now has them at once, from the snapshot alone
    backend.add_event_listener(lambda batch: fresh.apply(batch) if fresh.seq or batch.prev is None else None)
    backend.resync()
    assert fresh.estimates == state.estimates and set(fresh.estimates) == {"network", "accounts", "software"}
    sid = min(mine)
    backend.engine.decline_offer(ME, sid)
    backend.flush()
    assert sid not in state.offers
    assert [(e.session, e.outcome.value) for e in changes[-1].offers_ended] == [(sid, "declined")]
    asyncio.run(backend.stop())


def test_with_an_offer_tab_reaches_accept_and_decline_after_the_status_and_every_new_part_has_a_name(console: Console) -> None:
    w = console.window
    w.activateWindow()
    desk = w.offers
    assert shown(console) is not None
    reached = tab_cycle(console, w.queue_list)
    at = reached.index(w.status_combo)
    assert reached[at + 1 : at + 3] == [desk.card.accept, desk.card.decline]
    assert set(reached) == focusable(w)
    name = console.engine.session(desk.card.session).customer_name
    assert name in desk.card.accept.accessibleName() and name in desk.card.decline.accessibleName()
    assert name in desk.card.accessibleDescription() and "seconds left" in desk.card.accessibleDescription()
    for part in (desk.card, desk.card.countdown, desk.bar, desk.capacity_label, desk.estimate_label):
        assert part.accessibleName()


def test_texts() -> None:
    assert estimate_text(EstimateView(2, 4, 180.0)) == "about 2–4 min"
    assert estimate_text(EstimateView(0, 1, 20.0)) == "under a minute"
    assert estimate_text(None) == ""
    assert capacity_text(ConsoleState()) == ""  # no snapshot: nothing to say


def test_the_websocket_backend_sends_the_offer_commands_and_its_console_state_follows() -> None:
    async def body(s: Scene) -> None:
        s.server.engine.set_routing("network", RoutingMode.LEAST_BUSY)
        await s.changed()
        state = s.mirror.state
        offered = sorted(state.offers)
        assert len(offered) >= 2 and offered == sorted(o.session for o in s.server.engine.offers_to(ME))
        declined = await s.backend.decline_offer(offered[0])
        assert declined.session == offered[0] and s.server.received_commands(CommandName.DECLINE_OFFER)[0].args == {"session": offered[0]}
        session = await s.backend.accept_offer(offered[1])
        assert session.owner == ME and s.server.received_commands(CommandName.ACCEPT_OFFER)[0].args == {"session": offered[1]}
        rep = await s.backend.pause_offers(5)
        assert isinstance(rep.routing, RoutingView) and rep.routing.paused_until is not None
        assert s.server.received_commands(CommandName.PAUSE_OFFERS)[0].args == {"minutes": 5}
        await s.changed()
        assert offered[0] not in state.offers and offered[1] not in state.offers
        assert state.me.routing == rep.routing

    scenario(body)


# ---------------------------------------------------------------- several offers: one offer, one count


def offers_in_order(c: Console, count: int, clock: ManualClock) -> list[str]:
    """The rep declines what is offered now, then ``count`` customers arrive a second apart, each offered to the rep.

    Returns the rep's open offers, the one that runs out first first (the engine's deadlines, not the console's order).
    """
    for sid in list(c.window.state.offers):
        c.engine.decline_offer(ME, sid)
    c.settle()
    for _ in range(count):
        clock.advance(1)
        only_me_routed(c)
    return [o.session for o in sorted(c.engine.offers_to(ME), key=lambda o: (o.deadline, o.session))]


def what_the_rep_reads(c: Console) -> str:
    """Every text the rep sees in the window that speaks of offers or alerts."""
    w = c.window
    parts = [w.banner.text if w.banner.isVisible() else "", w.statusBar().currentMessage(), w.notice_label.text() if w.notice_label.isVisible() else ""]
    desk = w.offers
    if desk.bar.isVisible():
        parts += [desk.card.label.text(), desk.card.more.text() if desk.card.more.isVisible() else ""]
    parts.append(desk.capacity_label.text())
    return "\n".join(parts)


def assert_one_offer_one_count(c: Console, offered: list[str]) -> None:
    """The window names exactly one offered customer, the one Accept and Decline answer, and one count of the others."""
    w, desk = c.window, c.window.offers
    names = {sid: c.engine.session(sid).customer_name for sid in offered}
    assert len(set(names.values())) == len(names), "the test needs customers with distinct names"
    seen = what_the_rep_reads(c)
    assert [sid for sid, name in names.items() if name in seen] == [offered[0]], seen
    assert shown(c) == offered[0] and names[offered[0]] in desk.card.accept.accessibleName()
    more = len(offered) - 1
    assert desk.card.more.text() == (f"+{more} more" if more else "") and desk.card.more.isVisibleTo(desk.card) == bool(more)
    assert f"({len(offered)} offered)" in desk.capacity_label.text()
    assert "more" not in (w.banner.text if w.banner.isVisible() else "")  # the banner counts no offers
    assert desk.card.accessibleDescription().endswith(f", {more} more offer{'s' if more != 1 else ''}" if more else "seconds left")


def test_several_offers_show_one_offer_and_one_count_and_answering_it_moves_to_the_next(console: Console, clock: ManualClock) -> None:
    w = console.window
    offered = offers_in_order(console, 3, clock)
    assert 3 <= len(offered) <= 4, offered
    assert_one_offer_one_count(console, offered)
    w.grab().save("/tmp/x14-offers-several.png")
    # Accepting the one shown opens its tab; the strip and the count move to the next, nothing else names another offer.
    w.offers.card.accept.click()
    console.wait_tab(offered[0])
    console.qtbot.waitUntil(lambda: offered[0] not in w.state.offers, timeout=timeout(3))
    w.tabs.setCurrentIndex(0)
    assert_one_offer_one_count(console, offered[1:])
    # Declining the one shown: the same.
    w.offers.card.decline.click()
    console.qtbot.waitUntil(lambda: offered[1] not in w.state.offers, timeout=timeout(3))
    assert_one_offer_one_count(console, offered[2:])


def test_each_offer_is_announced_once_and_says_which_one_accept_answers(console: Console, clock: ManualClock) -> None:
    w = console.window
    w.settings.favourites = ["network"]  # its arrivals alert: an offered one must not alert twice
    announced: list[tuple[str, str, bool]] = []
    w.announcer.announced.connect(lambda kind, text, assertive: announced.append((kind, text, assertive)))
    raised: list[str] = []
    w.alerter.raised.connect(lambda event, text: raised.append(event))
    offered = offers_in_order(console, 3, clock)
    names = [console.engine.session(sid).customer_name for sid in offered]
    for name in names:  # one announcement each is about it (a later one may name it as the one shown)
        about = [a for a in announced if a[1].startswith((f"Offer: {name} ", f"Another offer: {name} "))]
        assert len(about) == 1 and about[0][0] == "offers" and about[0][2], (name, announced)
    assert not [a for a in announced if a[0] != "offers" and any(name in a[1] for name in names)], announced
    assert raised.count("offer") == len(offered) and "favourite_team" not in raised
    first = next(text for _, text, _ in announced if names[0] in text)
    assert first.startswith("Offer: ") and "Accept or decline" in first
    last = next(text for _, text, _ in announced if names[-1] in text)
    assert last.startswith("Another offer: ") and f"after {names[0]}'s (+{len(offered) - 1} more)" in last
    assert not w.banner.isVisible()  # only offers: the strip says it all


def test_the_banner_shows_other_alerts_without_counting_offers_and_they_ring_until_answered(console: Console, clock: ManualClock) -> None:
    w = console.window
    offered = offers_in_order(console, 3, clock)
    s = console.engine.start_with_rep(ME, console.backend.simulation.world.intake())  # a personal arrival
    console.settle()
    title = w.state.sessions[s.id].title
    assert w.banner.isVisible() and w.banner.text.startswith(f"New customer in your personal queue: {title}")
    assert_one_offer_one_count(console, offered)
    w.grab().save("/tmp/x14-offers-and-banner.png")
    # Show goes to the banner's alert (Personal), not to an offer's team; opening a team queue or
    # dismissing the banner stops its alerts, not the offers' (they end with the offer).
    console.show_queue("team:network")
    w.banner.showRequested.emit()
    assert w.queue_title.text() == "Personal" and not w.banner.isVisible()
    console.show_queue("team:network")
    w.banner._on_close_clicked()
    assert sorted(a.row for a in w.alerter.pending) == sorted(offered)
    assert_one_offer_one_count(console, offered)
