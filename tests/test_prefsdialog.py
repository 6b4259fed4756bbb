"""The Preferences dialog edits the preferences the console reads when it acts, and saves them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from repconsole.preferences import AlertEvent, StartupBackend, TeamAlerts, Theme
from repconsole.settings import Settings
from repconsole.ui.prefsdialog import REPEAT_CHOICES, PreferencesDialog

TEAMS = [("network", "Networking"), ("accounts", "Accounts & Billing"), ("software", "Software")]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(tmp_path / "settings")
    s.preferences.startup.recent_servers = ["wss://support.example.com", "ws://localhost:8765"]
    s.preferences.team_alerts["software"] = TeamAlerts(overdue=False)
    s.preferences.mute_until = 123.0
    return s


def choose(combo, data) -> None:  # type: ignore[no-untyped-def]
    index = combo.findData(data)
    assert index >= 0, f"{data!r} is not offered"
    combo.setCurrentIndex(index)


def radio(group, value: str) -> None:  # type: ignore[no-untyped-def]
    for button in group.buttons():
        if button.property("value") == value:
            button.setChecked(True)
            return
    raise AssertionError(f"no choice {value!r}")


def test_the_dialog_shows_the_current_preferences(qtbot, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    dialog = PreferencesDialog(settings, TEAMS)
    qtbot.addWidget(dialog)
    rows = dialog.alert_rows
    assert rows[AlertEvent.OFFER].sound.currentData() == "offer" and rows[AlertEvent.OFFER].repeat.currentData() == 5.0
    assert rows[AlertEvent.PERSONAL].enabled.isChecked() and rows[AlertEvent.PERSONAL].repeat.currentData() == 30.0
    assert not rows[AlertEvent.TEAM].enabled.isChecked() and not rows[AlertEvent.TEAM].sound.isEnabled()
    assert rows[AlertEvent.TRANSFER].sound.currentData() == "transfer"
    assert [dialog.server.itemText(i) for i in range(dialog.server.count())] == ["wss://support.example.com", "ws://localhost:8765"]
    arrivals, overdue = dialog.team_switches["software"]
    assert arrivals.isChecked() and not overdue.isChecked()
    assert list(dialog.team_switches) == ["network", "accounts", "software"]
    assert dialog.confirm_end.isChecked() and not dialog.close_to_tray.isChecked()
    dialog.show()
    qtbot.waitExposed(dialog)
    for i in range(dialog.tabs.count()):
        dialog.tabs.setCurrentIndex(i)
        dialog.grab().save(f"/tmp/s11-prefs-{i}.png")


def test_ok_saves_every_choice_and_keeps_what_the_dialog_does_not_show(qtbot, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    dialog = PreferencesDialog(settings, TEAMS)
    qtbot.addWidget(dialog)
    personal = dialog.alert_rows[AlertEvent.PERSONAL]
    choose(personal.sound, "overdue")
    choose(personal.repeat, 10.0)
    personal.desktop.setChecked(False)
    dialog.alert_rows[AlertEvent.INVITATION].enabled.setChecked(False)
    dialog.alert_rows[AlertEvent.TEAM].enabled.setChecked(True)
    choose(dialog.alert_rows[AlertEvent.OVERDUE].sound, "")
    dialog.team_switches["network"][0].setChecked(False)
    radio(dialog.theme, Theme.DARK)
    radio(dialog.backend, StartupBackend.SERVER)
    dialog.server.setCurrentText(" ws://queue.example:9000 ")
    dialog.user.setText("sam")
    radio(dialog.chat, "ctrl")
    assert dialog.silent_after.value() == 3  # the default
    dialog.silent_after.setValue(0)
    assert dialog.silent_after.text() == "Never"
    dialog.silent_after.setValue(12)
    dialog.confirm_end.setChecked(False)
    dialog.close_to_tray.setChecked(True)
    with qtbot.waitSignal(dialog.applied):
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
    assert not dialog.isVisible()
    p = Settings.load(settings.directory)[0].preferences
    assert (p.alert(AlertEvent.PERSONAL).sound, p.alert(AlertEvent.PERSONAL).repeat_every, p.alert(AlertEvent.PERSONAL).desktop) == ("overdue", 10.0, False)
    assert not p.alert(AlertEvent.INVITATION).enabled and p.alert(AlertEvent.TEAM).enabled and p.alert(AlertEvent.OVERDUE).sound == ""
    assert p.team("network") == TeamAlerts(arrivals=False, overdue=True) and p.team("software") == TeamAlerts(overdue=False)
    assert p.appearance.theme is Theme.DARK and p.chat.enter_sends is False and p.chat.silent_after_minutes == 12
    assert (p.startup.backend, p.startup.server_url, p.startup.user) == (StartupBackend.SERVER, "ws://queue.example:9000", "sam")
    assert not p.confirm.end_session and p.confirm.leave_session and p.close_to_tray
    # Not in the dialog, kept: the mute, the server history, the offer alert.
    assert p.mute_until == 123.0 and p.startup.recent_servers == ["wss://support.example.com", "ws://localhost:8765"]
    assert p.alert(AlertEvent.OFFER).repeat_every == 5.0
    assert json.loads(settings.path.read_text())["version"] == 2


def test_cancel_changes_nothing(qtbot, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    dialog = PreferencesDialog(settings, TEAMS)
    qtbot.addWidget(dialog)
    dialog.alert_rows[AlertEvent.PERSONAL].enabled.setChecked(False)
    dialog.reject()
    assert settings.preferences.alert(AlertEvent.PERSONAL).enabled and not settings.path.exists()


def test_an_unknown_stored_interval_is_shown_and_kept(qtbot, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    settings.preferences.alerts[AlertEvent.PERSONAL].repeat_every = 45.0
    dialog = PreferencesDialog(settings, [])
    qtbot.addWidget(dialog)
    repeat = dialog.alert_rows[AlertEvent.PERSONAL].repeat
    assert repeat.count() == len(REPEAT_CHOICES) + 1 and repeat.currentText() == "Every 45 s"
    dialog.apply()
    assert settings.preferences.alert(AlertEvent.PERSONAL).repeat_every == 45.0


def test_a_save_failure_is_reported_and_the_choice_still_applies(qtbot, settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings.directory = blocker / "sub"  # cannot be created
    settings.path = settings.directory / "settings.json"
    dialog = PreferencesDialog(settings, [])
    qtbot.addWidget(dialog)
    dialog.close_to_tray.setChecked(True)
    with qtbot.waitSignal(dialog.saveFailed) as failed:
        dialog.apply()
    assert "Could not save your preferences" in failed.args[0] and settings.preferences.close_to_tray


def test_the_startup_server_takes_a_list_and_a_bad_address_saves_nothing(qtbot, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    # Issue 15: a site with several server processes: their addresses, separated by commas.
    dialog = PreferencesDialog(settings, [])
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentIndex(0)
    dialog.close_to_tray.setChecked(True)
    dialog.server.setCurrentText("ws://a.example:8765, ftp://b.example")
    assert dialog.apply() is False
    assert dialog.server_error.isVisible() and "ftp://b.example" in dialog.server_error.text()
    assert dialog.tabs.currentWidget() is dialog.server.parentWidget().parentWidget(), "the Startup page is shown"
    assert not settings.path.exists() and not settings.preferences.close_to_tray, "nothing applied"
    assert dialog.server.currentText() == "ws://a.example:8765, ftp://b.example", "what was typed stays to be corrected"
    dialog.server.setCurrentText("ws://a.example:8765,wss://b.example/ ")
    assert dialog.apply() is True and not dialog.server_error.isVisible()
    loaded = Settings.load(settings.directory)[0].preferences
    assert loaded.startup.server_url == "ws://a.example:8765, wss://b.example" and loaded.close_to_tray
    dialog.server.setCurrentText("")
    assert dialog.apply() is True and settings.preferences.startup.server_url == "", "no server: as before"
