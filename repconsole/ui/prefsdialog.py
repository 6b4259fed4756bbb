"""The Preferences dialog: alerts, appearance, startup, chat, confirmations, window.

It edits a copy of :class:`~repconsole.preferences.Preferences`; OK or Apply
puts the copy in the settings and saves them.  Everything that acts on a
preference reads it at that moment, so a change applies at once, without a
restart.  What the dialog does not show (the mute, the server history) is
carried over untouched.
"""

from __future__ import annotations

import msgspec
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLayout,
    QLineEdit,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.backend.endpoints import format_servers, parse_servers
from repconsole.preferences import AlertEvent, AlertPreference, Announcements, Preferences, StartupBackend, TeamAlerts, Theme
from repconsole.settings import Settings
from repconsole.ui import theme
from repconsole.ui.accessible import TabWidget
from repconsole.ui.alerts import SOUNDS, AlertSounds

__all__ = ["ANNOUNCEMENT_NAMES", "EVENT_NAMES", "REPEAT_CHOICES", "PreferencesDialog"]

EVENT_NAMES: dict[AlertEvent, str] = {
    AlertEvent.PERSONAL: "New customer in my personal queue",
    AlertEvent.FAVOURITE_TEAM: "New customer in a favourite team",
    AlertEvent.TEAM: "New customer in another team",
    AlertEvent.TRANSFER: "Session transferred to me",
    AlertEvent.INVITATION: "Invitation to join a session",
    AlertEvent.OVERDUE: "Customer waiting too long (team rule)",
    AlertEvent.OFFER: "Session offered to me (auto-assignment)",
}
# What a screen reader is told, by field of preferences.announcements.
ANNOUNCEMENT_NAMES: dict[str, str] = {
    "arrivals": "New customers (personal queue, favourite teams, teams whose alert is on)",
    "transfers": "Sessions transferred to me",
    "invitations": "Invitations to join a session",
    "offers": "Sessions offered to me",
    "overdue": "Customers waiting too long",
    "lost_races": "A customer I was reaching for taken by another rep",
    "chat": "Chat messages in my sessions",
    "connection": "The console moving to another server of the site",
}
REPEAT_CHOICES: list[tuple[str, float]] = [
    ("Once", 0.0),
    ("Every 10 s", 10.0),
    ("Every 20 s", 20.0),
    ("Every 30 s", 30.0),
    ("Every minute", 60.0),
    ("Every 2 minutes", 120.0),
    ("Every 5 minutes", 300.0),
]


class _AlertRow:
    """The widgets of one alert event: on/off, sound, repeat, desktop."""

    def __init__(self, event: AlertEvent, pref: AlertPreference, sounds: AlertSounds) -> None:
        self.enabled = QCheckBox(EVENT_NAMES[event])
        self.enabled.setChecked(pref.enabled)
        self.sound = QComboBox()
        self.sound.setAccessibleName(f"Sound: {EVENT_NAMES[event]}")
        for name, label in SOUNDS.items():
            self.sound.addItem(label, name)
        self.sound.addItem("No sound", "")
        _select(self.sound, pref.sound, pref.sound or "No sound")
        self.play = QToolButton()
        self.play.setText("▶")
        self.play.setToolTip("Play this sound")
        self.play.setAccessibleName(f"Play the sound: {EVENT_NAMES[event]}")
        self.play.clicked.connect(lambda: sounds.play(str(self.sound.currentData())))
        self.repeat = QComboBox()
        self.repeat.setAccessibleName(f"Repeat: {EVENT_NAMES[event]}")
        for label, seconds in REPEAT_CHOICES:
            self.repeat.addItem(label, seconds)
        _select(self.repeat, pref.repeat_every, f"Every {pref.repeat_every:g} s")
        self.desktop = QCheckBox("Desktop")
        self.desktop.setToolTip("Also a desktop notification while the window is in the background")
        self.desktop.setChecked(pref.desktop)
        self.enabled.toggled.connect(self._on_enabled_toggled)
        self._on_enabled_toggled(pref.enabled)

    def _on_enabled_toggled(self, on: bool) -> None:
        for w in (self.sound, self.play, self.repeat, self.desktop):
            w.setEnabled(on)

    def value(self) -> AlertPreference:
        return AlertPreference(
            enabled=self.enabled.isChecked(),
            sound=str(self.sound.currentData()),
            repeat_every=float(self.repeat.currentData()),
            desktop=self.desktop.isChecked(),
        )


def _select(combo: QComboBox, value: object, label: str) -> None:
    """Select the item whose data is ``value``, adding it (as ``label``) when the list lacks it."""
    index = combo.findData(value)
    if index < 0:
        combo.addItem(label, value)
        index = combo.count() - 1
    combo.setCurrentIndex(index)


def _radios(box: QGroupBox, choices: list[tuple[str, str]], current: str) -> QButtonGroup:
    layout = QVBoxLayout(box)
    group = QButtonGroup(box)
    for value, label in choices:
        radio = QRadioButton(label)
        radio.setProperty("value", value)
        radio.setChecked(value == current)
        group.addButton(radio)
        layout.addWidget(radio)
    return group


def _chosen(group: QButtonGroup) -> str:
    button: QAbstractButton | None = group.checkedButton()
    return str(button.property("value")) if button is not None else ""


class PreferencesDialog(QDialog):
    """Edit the rep's preferences; OK and Apply save them.

    Signals:
        applied(): the preferences were put in the settings (and saved, unless saveFailed).
        saveFailed(str): the settings file could not be written (the message).

    Attributes:
        tabs: one page per topic.
        alert_rows: the alert widgets by event.
        team_switches: per team id, its (arrivals, overdue) check boxes.
        announcements: what is announced to a screen reader, check boxes by field of ``preferences.announcements``.
        theme, backend, chat: the radio groups.
        silent_after: minutes of customer silence before a session's tab is flagged (0: never).
        server, user: the startup server address (editable, with history; a site's several
            servers separated by commas) and user.
        server_error: why the server address cannot be saved (empty when it can).
        confirm_end, confirm_leave, confirm_quit, close_to_tray: check boxes.
    """

    applied = Signal()
    saveFailed = Signal(str)

    def __init__(self, settings: Settings, teams: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences — repconsole")
        self._settings = settings
        prefs = settings.preferences
        self.sounds = AlertSounds(self)
        self.tabs = TabWidget()

        # Alerts
        alerts = QWidget()
        alerts_layout = QVBoxLayout(alerts)
        grid = QGridLayout()
        for col, title in enumerate(["Alert", "Sound", "", "Repeat until seen", ""]):
            if title:
                grid.addWidget(QLabel(f"<b>{title}</b>"), 0, col)
        self.alert_rows: dict[AlertEvent, _AlertRow] = {}
        for r, event in enumerate(EVENT_NAMES, start=1):
            row = self.alert_rows[event] = _AlertRow(event, prefs.alert(event), self.sounds)
            for col, w in enumerate((row.enabled, row.sound, row.play, row.repeat, row.desktop)):
                grid.addWidget(w, r, col)
        alerts_layout.addLayout(grid)
        team_box = QGroupBox("Team queues: which alerts each team gives at all")
        team_grid = QGridLayout(team_box)
        self.team_switches: dict[str, tuple[QCheckBox, QCheckBox]] = {}
        for r, (team, name) in enumerate(teams):
            current = prefs.team(team)
            arrivals, overdue = QCheckBox("New customers"), QCheckBox("Overdue customers")
            arrivals.setChecked(current.arrivals)
            overdue.setChecked(current.overdue)
            arrivals.setAccessibleName(f"{name}: new customers")
            overdue.setAccessibleName(f"{name}: overdue customers")
            team_grid.addWidget(QLabel(name), r, 0)
            team_grid.addWidget(arrivals, r, 1)
            team_grid.addWidget(overdue, r, 2)
            self.team_switches[team] = (arrivals, overdue)
        if not teams:
            team_grid.addWidget(QLabel("You are in no team."), 0, 0)
        team_grid.setRowStretch(max(1, len(teams)), 1)  # rows at the top, however few
        team_grid.setColumnStretch(3, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(team_box)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        alerts_layout.addWidget(scroll, 1)
        self.tabs.addTab(alerts, "&Alerts")

        # Screen reader
        announce_box = QGroupBox("Tell the screen reader about")
        announce_layout = QVBoxLayout(announce_box)
        self.announcements: dict[str, QCheckBox] = {}
        for field, label in ANNOUNCEMENT_NAMES.items():
            box = self.announcements[field] = QCheckBox(label)
            box.setChecked(bool(getattr(prefs.announcements, field)))
            announce_layout.addWidget(box)
        self.tabs.addTab(_page(announce_box), "Screen &reader")

        # Appearance
        theme_box = QGroupBox("Colours")
        self.theme = _radios(theme_box, [(Theme.SYSTEM, "Follow the system"), (Theme.LIGHT, "Light"), (Theme.DARK, "Dark")], prefs.appearance.theme)
        self.tabs.addTab(_page(theme_box), "A&ppearance")

        # Startup
        backend_box = QGroupBox("When repconsole starts without options, connect to")
        self.backend = _radios(
            backend_box, [(StartupBackend.SIMULATOR, "The built-in simulator"), (StartupBackend.SERVER, "A queue server")], prefs.startup.backend
        )
        server_box = QGroupBox("Queue server")
        form = QFormLayout(server_box)
        self.server = QComboBox()
        self.server.setEditable(True)
        self.server.addItems(prefs.startup.recent_servers)
        self.server.setCurrentText(prefs.startup.server_url)
        line = self.server.lineEdit()
        if line is not None:
            line.setPlaceholderText("ws://host:8765 or wss://host (several: separated by commas)")
        self.user = QLineEdit(prefs.startup.user)
        self.server_error = QLabel()
        self.server_error.setWordWrap(True)
        theme.set_style(self.server_error, "color: $error_text;")
        self.server_error.hide()
        form.addRow("&Server address:", self.server)
        form.addRow("", self.server_error)
        form.addRow("&User:", self.user)
        self._startup_page = _page(backend_box, server_box)
        self.tabs.addTab(self._startup_page, "&Startup")

        # Chat
        chat_box = QGroupBox("In the chat input")
        self.chat = _radios(
            chat_box,
            [("enter", "Enter sends; Shift+Enter starts a new line"), ("ctrl", "Ctrl+Enter sends; Enter starts a new line")],
            "enter" if prefs.chat.enter_sends else "ctrl",
        )
        silent_box = QGroupBox("Silent customers")
        silent_form = QFormLayout(silent_box)
        silent_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.silent_after = QSpinBox()
        self.silent_after.setRange(0, 1440)  # the preference's own bounds (preferences.ChatPreferences)
        self.silent_after.setSuffix(" min")
        self.silent_after.setSpecialValueText("Never")  # shown for 0
        self.silent_after.setValue(prefs.chat.silent_after_minutes)
        self.silent_after.setAccessibleDescription("A session whose customer has not written for this long is flagged in its tab. 0: never.")
        silent_form.addRow("&Flag a session after the customer is silent for:", self.silent_after)
        self.tabs.addTab(_page(chat_box, silent_box), "&Chat")

        # Confirmations and window
        confirm_box = QGroupBox("Ask before")
        confirm_layout = QVBoxLayout(confirm_box)
        self.confirm_end = QCheckBox("Ending a session")
        self.confirm_leave = QCheckBox("Leaving a session")
        self.confirm_quit = QCheckBox("Quitting with sessions open")
        confirm = prefs.confirm
        for box, on in ((self.confirm_end, confirm.end_session), (self.confirm_leave, confirm.leave_session), (self.confirm_quit, confirm.quit_with_sessions)):
            box.setChecked(on)
            confirm_layout.addWidget(box)
        window_box = QGroupBox("Window")
        self.close_to_tray = QCheckBox("Closing the window keeps repconsole running in the system tray")
        self.close_to_tray.setChecked(prefs.close_to_tray)
        QVBoxLayout(window_box).addWidget(self.close_to_tray)
        self.tabs.addTab(_page(confirm_box, window_box), "C&onfirmations")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        layout = QVBoxLayout(self)
        # Size constraints set once: nothing the rep does in the dialog changes them after it shows.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        hint = layout.sizeHint()
        self.setMinimumSize(max(640, hint.width()), max(420, hint.height()))
        self.resize(max(760, hint.width()), max(520, hint.height()))

    def preferences(self) -> Preferences:
        """The preferences as the dialog shows them (what it does not show is kept)."""
        old = self._settings.preferences
        new = msgspec.convert(msgspec.to_builtins(old), Preferences)  # a deep copy
        new.alerts.update({event: row.value() for event, row in self.alert_rows.items()})
        for team, (arrivals, overdue) in self.team_switches.items():
            new.team_alerts[team] = TeamAlerts(arrivals=arrivals.isChecked(), overdue=overdue.isChecked())
        new.announcements = Announcements(**{field: box.isChecked() for field, box in self.announcements.items()})
        new.appearance.theme = Theme(_chosen(self.theme))
        new.startup.backend = StartupBackend(_chosen(self.backend))
        new.startup.server_url = self._servers() or ""
        new.startup.user = self.user.text().strip()
        new.chat.enter_sends = _chosen(self.chat) == "enter"
        new.chat.silent_after_minutes = self.silent_after.value()
        new.confirm.end_session = self.confirm_end.isChecked()
        new.confirm.leave_session = self.confirm_leave.isChecked()
        new.confirm.quit_with_sessions = self.confirm_quit.isChecked()
        new.close_to_tray = self.close_to_tray.isChecked()
        return new

    def _servers(self) -> str | None:
        """The server addresses as one line (``""``: none given), or None when one is not a server address."""
        text = self.server.currentText().strip()
        try:
            return format_servers(parse_servers(text)) if text else ""
        except ValueError as exc:
            self.server_error.setText(f"Not saved: the server address must be ws://host:port or wss://host, several separated by commas ({exc}).")
            return None

    def apply(self) -> bool:
        """Put the preferences in the settings and save them; False (nothing changed) while the server address is wrong."""
        if self._servers() is None:
            self.server_error.show()
            self.tabs.setCurrentWidget(self._startup_page)
            self.server.setFocus()
            return False
        self.server_error.hide()
        self._settings.preferences = self.preferences()
        # Light or dark at once; the theme reads this setting from now on.
        settings = self._settings
        theme.follow(lambda: settings.preferences.appearance.theme)
        try:
            self._settings.save()
        except OSError as exc:
            self.saveFailed.emit(f"Could not save your preferences: {exc}")
        self.applied.emit()
        return True

    def _on_buttons_accepted(self) -> None:
        if self.apply():
            self.accept()


def _page(*boxes: QWidget) -> QWidget:
    page = QWidget()
    layout = QVBoxLayout(page)
    for box in boxes:
        layout.addWidget(box)
    layout.addStretch(1)
    return page
