"""Alerts: sounds through QSoundEffect, repeats on an injected clock, what stops them, mute, tray, banner.

The console runs on the simulator with a pinned clock; the alerter's own
(wall) clock is a list the test moves.  Sounds are asserted on the
QSoundEffect objects the alerter plays (their source and play calls), never
on audio hardware.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import timeout
from PySide6.QtCore import QObject
from PySide6.QtMultimedia import QSoundEffect
from test_console import Console, open_console

from repconsole.backend.world import ME
from repconsole.core.clock import ManualClock
from repconsole.core.model import QueueRef, RoutingMode
from repconsole.preferences import UNTIL_UNMUTED, AlertEvent, TeamAlerts
from repconsole.settings import Settings
from repconsole.ui.alerts import AlertSounds

T = 1_800_000_000.0
PERSONAL = f"rep:{ME}"


class RecordingEffect(QSoundEffect):
    """A real QSoundEffect that also counts its play() calls."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plays = 0

    def play(self) -> None:
        self.plays += 1
        super().play()


class Wall:
    """The alerter's clock."""

    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def console(qtbot, aloop, tmp_path: Path) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    c = open_console(qtbot, tmp_path / "settings", clock=ManualClock(T))
    yield c
    c.close()


@pytest.fixture
def wall(console: Console) -> Wall:
    w = Wall()
    alerter = console.window.alerter
    alerter.clock = w
    alerter.sounds = AlertSounds(alerter, factory=RecordingEffect)
    return w


def plays(c: Console, sound: str = "alert") -> int:
    effect = c.window.alerter.sounds.effects.get(sound)
    return effect.plays if isinstance(effect, RecordingEffect) else 0


def personal_arrival(c: Console) -> str:
    s = c.engine.start_with_rep(ME, c.backend.simulation.world.intake())
    c.settle()
    return s.id


def events(c: Console) -> list[tuple[AlertEvent, str]]:
    return [(a.event, a.row) for a in c.window.alerter.pending]


# ---------------------------------------------------------------- sound and repeats


def test_a_personal_arrival_plays_the_chime_through_qsoundeffect_and_repeats_until_seen(console: Console, wall: Wall) -> None:
    w = console.window
    console.show_queue("team:network")  # looking elsewhere
    sid = personal_arrival(console)
    assert events(console) == [(AlertEvent.PERSONAL, sid)]
    effect = w.alerter.sounds.effects["alert"]
    assert effect.source().toLocalFile().endswith("alert.wav") and plays(console) == 1
    # Default: every 30 s.  Not before.
    wall.now += 29
    w.alerter.tick()
    assert plays(console) == 1
    wall.now += 1
    w.alerter.tick()
    assert plays(console) == 2
    # Opening the personal queue is seeing it: no more repeats.
    console.show_queue(PERSONAL)
    assert w.alerter.pending == [] and not w.banner.isVisible()
    wall.now += 300
    w.alerter.tick()
    assert plays(console) == 2


def test_the_alert_stops_at_once_when_someone_else_accepts_the_customer(console: Console, wall: Wall) -> None:
    w = console.window
    w.settings.favourites = ["network"]
    console.show_queue(PERSONAL)
    sid = personal_arrival(console)
    s = console.engine.start_with_issue("wifi", console.backend.simulation.world.intake())
    console.settle()
    assert events(console) == [(AlertEvent.PERSONAL, sid), (AlertEvent.FAVOURITE_TEAM, s.id)]
    console.engine.accept("tom", s.id)
    console.settle()
    assert events(console) == [(AlertEvent.PERSONAL, sid)]
    assert "(+1 more)" not in w.banner.text and w.banner.isVisible()


def test_the_alert_stops_when_the_customer_leaves_and_the_banner_goes(console: Console, wall: Wall) -> None:
    w = console.window
    console.show_queue("team:network")
    sid = personal_arrival(console)
    assert w.banner.isVisible() and plays(console) == 1
    console.engine.customer_leave(sid)
    console.settle()
    assert w.alerter.pending == [] and not w.banner.isVisible()
    wall.now += 600
    w.alerter.tick()
    assert plays(console) == 1


def test_accepting_it_myself_stops_the_alert(console: Console, wall: Wall) -> None:
    console.show_queue("team:network")
    sid = personal_arrival(console)
    console.engine.accept(ME, sid)
    console.settle()
    assert console.window.alerter.pending == []


# ---------------------------------------------------------------- preferences, read when acting


def test_each_event_has_its_own_sound_and_interval_and_can_be_off(console: Console, wall: Wall) -> None:
    w = console.window
    prefs = w.settings.preferences
    console.show_queue("team:software")
    prefs.alerts[AlertEvent.PERSONAL].sound = "transfer"
    prefs.alerts[AlertEvent.PERSONAL].repeat_every = 10
    personal_arrival(console)
    assert plays(console, "transfer") == 1 and plays(console, "alert") == 0
    assert w.alerter.sounds.effects["transfer"].source().fileName() == "transfer.wav"  # its own sound
    wall.now += 10
    w.alerter.tick()
    assert plays(console, "transfer") == 2
    # Turned off: the next arrival raises nothing; the change applies at once.
    prefs.alerts[AlertEvent.PERSONAL].enabled = False
    personal_arrival(console)
    assert len(w.alerter.pending) == 1
    # No sound: it still shows, silently.
    prefs.alerts[AlertEvent.PERSONAL].enabled = True
    prefs.alerts[AlertEvent.PERSONAL].sound = ""
    personal_arrival(console)
    assert len(w.alerter.pending) == 2 and plays(console, "transfer") == 2


def test_team_arrivals_alert_in_favourite_teams_and_other_teams_and_per_team(console: Console, wall: Wall) -> None:
    w = console.window
    prefs = w.settings.preferences
    console.show_queue(PERSONAL)
    intake = console.backend.simulation.world.intake
    console.engine.set_routing("network", RoutingMode.NONE)  # pull only: no offers (their alerts: test_offers_ui)
    # Another team: off by default.
    s1 = console.engine.start_with_issue("wifi", intake())
    console.settle()
    assert events(console) == []
    # A favourite team: on, with the team chime.
    w.settings.favourites = ["network"]
    s2 = console.engine.start_with_issue("wifi", intake())
    console.settle()
    assert events(console) == [(AlertEvent.FAVOURITE_TEAM, s2.id)] and plays(console, "team") == 1
    # Switched off for that team only.
    prefs.team_alerts["network"] = TeamAlerts(arrivals=False)
    console.engine.start_with_issue("wifi", intake())
    # Other teams turned on: Software alerts as "another team".
    prefs.alerts[AlertEvent.TEAM].enabled = True
    s4 = console.engine.start_with_issue("install", intake())
    console.settle()
    assert events(console) == [(AlertEvent.FAVOURITE_TEAM, s2.id), (AlertEvent.TEAM, s4.id)]
    assert "Software" in w.banner.text and (AlertEvent.TEAM, s1.id) not in events(console)


def test_an_overdue_customer_alerts_unless_switched_off_for_that_team(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T)
    c = open_console(qtbot, tmp_path / "s", clock=clock, routing=False)  # pull only: no offers ring over the overdue
    try:
        wall = Wall()
        c.window.alerter.clock = wall
        c.window.alerter.sounds = AlertSounds(c.window.alerter, factory=RecordingEffect)
        c.window.settings.preferences.team_alerts["hardware"] = TeamAlerts(overdue=False)
        c.show_queue(PERSONAL)
        s = c.engine.start_with_issue("install", c.backend.simulation.world.intake())  # Software: overdue after 240 s
        c.settle()
        c.window.alerter.acknowledge()
        clock.advance(240)
        c.backend.pump()
        qtbot.waitUntil(lambda: (AlertEvent.OVERDUE, s.id) in events(c), timeout=timeout(2))
        assert plays(c, "overdue") >= 1
        assert "waited too long in Software" in c.window.banner.text
        # Hardware's customers overdue in the same jump of the clock do not alert: switched off for that team.
        assert all(c.engine.session(sid).queue != QueueRef.team("hardware") for ev, sid in events(c) if ev is AlertEvent.OVERDUE)
    finally:
        c.close()


# ---------------------------------------------------------------- mute, desktop, tray


def test_mute_from_the_tray_silences_sounds_not_alerts_and_persists(console: Console, wall: Wall, tmp_path: Path) -> None:
    w = console.window
    tray = w.tray
    console.show_queue("team:network")
    tray.mute_actions[0].trigger()  # 15 minutes
    assert w.settings.preferences.mute_until == T + 15 * 60
    assert tray.mute_label.text().startswith("Muted until") and tray.unmute_action.isEnabled()
    personal_arrival(console)
    assert len(w.alerter.pending) == 1 and plays(console) == 0  # shown, silent
    saved = json.loads((tmp_path / "settings" / "settings.json").read_text())
    assert saved["preferences"]["mute_until"] == T + 15 * 60
    wall.now += 15 * 60
    w.alerter.tick()
    assert plays(console) == 1  # the mute is over: the repeat sounds
    tray.mute_actions[2].trigger()  # until unmuted
    assert w.settings.preferences.mute_until == UNTIL_UNMUTED
    assert Settings.load(tmp_path / "settings")[0].preferences.mute_until == UNTIL_UNMUTED
    assert tray.mute_label.text() == "Muted until unmuted"
    tray.unmute_action.trigger()
    assert w.settings.preferences.mute_until is None and tray.mute_label.text() == "Sounds on"


def test_a_minimised_window_gets_a_desktop_notification(console: Console, wall: Wall) -> None:
    w = console.window
    shown: list[tuple[str, str]] = []
    w.alerter.notify = lambda title, text: shown.append((title, text)) is None
    w.showMinimized()
    console.qtbot.waitUntil(w.isMinimized, timeout=timeout(2))
    personal_arrival(console)
    assert len(shown) == 1 and shown[0][1].startswith("New customer in your personal queue")
    # Off for that event: nothing reaches the desktop.
    w.settings.preferences.alerts[AlertEvent.PERSONAL].desktop = False
    personal_arrival(console)
    assert len(shown) == 1


@pytest.mark.qt_log_ignore(r"^This plugin does not support raise\(\)$")  # offscreen has no window stacking
def test_the_tray_menu_shows_the_window_sets_the_status_and_quits(console: Console) -> None:
    w = console.window
    tray = w.tray
    texts = [a.text() for a in tray.menu.actions() if a.text()]
    assert texts[0] == "&Show repconsole" and texts[-1] == "&Quit"
    assert [a.text() for a in tray.mute_actions] == ["Mute for 15 minutes", "Mute for 1 hour", "Mute until unmuted"]
    w.showMinimized()
    console.qtbot.waitUntil(w.isMinimized, timeout=timeout(2))
    tray.menu.actions()[0].trigger()
    console.qtbot.waitUntil(lambda: not w.isMinimized(), timeout=timeout(2))
    assert tray.status_actions["available"].isChecked()
    tray.status_actions["away"].trigger()
    console.qtbot.waitUntil(lambda: console.engine.reps[ME].status == "away", timeout=timeout(2))
    console.qtbot.waitUntil(lambda: tray.status_actions["away"].isChecked(), timeout=timeout(2))
    with console.qtbot.waitSignal(w.closed, timeout=timeout(2)):
        tray.menu.actions()[-1].trigger()


# ---------------------------------------------------------------- the banner


def test_the_banner_floats_over_the_table_and_moves_no_row(console: Console, wall: Wall) -> None:
    w = console.window
    console.show_queue("team:network")
    table_geometry = w.table.geometry()
    first = w.table.visualRect(w.model.index(0, 0))
    personal_arrival(console)
    assert w.banner.isVisible() and w.banner.parent() is w.table
    assert w.table.geometry() == table_geometry and w.table.visualRect(w.model.index(0, 0)) == first
    assert w.table.viewport().geometry().contains(w.banner.geometry())
    w.grab().save("/tmp/s11-alerts-banner.png")
    # Show goes to the queue the alert is about, and that is seeing it.
    w.banner.showRequested.emit()
    assert w.queue_title.text() == "Personal" and not w.banner.isVisible()


def test_banner_dismiss_stops_every_alert(console: Console, wall: Wall) -> None:
    console.show_queue("team:network")
    personal_arrival(console)
    personal_arrival(console)
    assert "(+1 more)" in console.window.banner.text
    console.window.banner._on_close_clicked()
    assert console.window.alerter.pending == []
    wall.now += 100
    console.window.alerter.tick()
    assert plays(console) == 2


def test_quit_closes_even_when_close_goes_to_the_tray(console: Console) -> None:
    w = console.window
    w.settings.preferences.close_to_tray = True
    with console.qtbot.waitSignal(w.closed, timeout=timeout(2)):
        w.quit()


def test_an_invitation_alert_stops_when_someone_else_on_the_team_joins(console: Console, wall: Wall) -> None:
    e = console.engine
    console.show_queue(PERSONAL)
    s = e.start_with_issue("vpn", console.backend.simulation.world.intake())
    e.accept("tom", s.id)
    inv = e.share("tom", s.id, QueueRef.team("network"))
    console.settle()
    assert (AlertEvent.INVITATION, inv.id) in events(console) and plays(console, "invitation") == 1
    assert "Tom Becker invites you" in console.window.banner.text
    e.accept_invitation("priya", inv.id)
    console.settle()
    assert (AlertEvent.INVITATION, inv.id) not in events(console)


def test_preferences_from_the_console_menu_apply_at_once(console: Console, wall: Wall) -> None:
    w = console.window
    console.show_queue("team:software")
    dialog = w.open_preferences()
    assert list(dialog.team_switches) == w.state.my_teams
    dialog.alert_rows[AlertEvent.PERSONAL].enabled.setChecked(False)
    dialog.apply()
    dialog.close()
    personal_arrival(console)
    assert w.alerter.pending == [] and plays(console) == 0
    assert not Settings.load(w.settings.directory)[0].preferences.alert(AlertEvent.PERSONAL).enabled


def test_a_mute_kept_from_last_time_shows_in_the_tray(qtbot, aloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(tmp_path / "s")
    s.preferences.mute_until = UNTIL_UNMUTED
    s.save()
    c = open_console(qtbot, tmp_path / "s", clock=ManualClock(T))
    try:
        assert c.window.tray.mute_label.text() == "Muted until unmuted" and c.window.tray.unmute_action.isEnabled()
    finally:
        c.close()


@pytest.mark.qt_log_ignore(r"^This plugin does not support raise\(\)$")  # offscreen has no window stacking
def test_close_to_tray_hides_the_window_and_keeps_the_console_running(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    w = console.window
    monkeypatch.setattr(w.tray.icon, "isVisible", lambda: True)  # offscreen has no tray; pretend it has
    w.settings.preferences.close_to_tray = True
    w.close()
    assert not w.isVisible() and not w.closing
    w.tray.show_window()
    console.qtbot.waitUntil(w.isVisible, timeout=timeout(2))
    w.settings.preferences.close_to_tray = False
    with console.qtbot.waitSignal(w.closed, timeout=timeout(2)):
        w.close()
