"""The console's icon in the system tray, and its menu.

The menu is what a rep needs without the window: bring it back, set their
status, mute the alert sounds for a while, quit.  Desktop notifications go
through the tray icon too (:meth:`ConsoleTray.notify`), so they reach the
rep while the window is minimised or hidden.

Where the desktop has no tray (Qt's offscreen platform, some Wayland
desktops) the icon is never shown, but the menu still exists, so the same
actions are reachable and testable.
"""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from repconsole.preferences import UNTIL_UNMUTED
from repconsole.protocol import RepStatus

__all__ = ["MUTE_CHOICES", "ConsoleTray"]

# (menu text, seconds)
MUTE_CHOICES: list[tuple[str, float]] = [("Mute for 15 minutes", 15 * 60), ("Mute for 1 hour", 3600), ("Mute until unmuted", math.inf)]
_STATUS_TEXT = {RepStatus.AVAILABLE: "&Available", RepStatus.BUSY: "&Busy", RepStatus.AWAY: "A&way"}


class ConsoleTray(QObject):
    """The tray icon and its menu: Show, status, mute, Quit.

    Signals:
        showRequested(): the rep asked for the window (it is shown, raised and activated).
        statusRequested(str): the rep picked a status (a RepStatus value).
        muteRequested(float): mute for this many seconds (math.inf: until unmuted; 0: unmute).
        quitRequested(): quit the console (not just hide it).

    Attributes:
        icon: the QSystemTrayIcon (shown only when the desktop has a tray).
        menu: its context menu.
        status_actions: the status entries by RepStatus value.
        mute_actions: the mute entries, in MUTE_CHOICES order.
        unmute_action: ends a mute.
    """

    showRequested = Signal()
    statusRequested = Signal(str)
    muteRequested = Signal(float)
    quitRequested = Signal()

    def __init__(self, icon: QIcon, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self.icon = QSystemTrayIcon(icon, self)
        self.icon.setToolTip("repconsole")
        self.menu = QMenu()
        self.menu.addAction("&Show repconsole", self.show_window)
        self.menu.addSeparator()
        group = QActionGroup(self)
        self.status_actions: dict[str, QAction] = {}
        for status, text in _STATUS_TEXT.items():
            act = self.menu.addAction(text)
            act.setCheckable(True)
            group.addAction(act)
            act.triggered.connect(lambda _=False, s=status.value: self.statusRequested.emit(s))
            self.status_actions[status.value] = act
        self.menu.addSeparator()
        self.mute_label = self.menu.addAction("Sounds on")
        self.mute_label.setEnabled(False)
        self.mute_actions: list[QAction] = []
        for text, seconds in MUTE_CHOICES:
            act = self.menu.addAction(text)
            act.triggered.connect(lambda _=False, s=seconds: self.muteRequested.emit(s))
            self.mute_actions.append(act)
        self.unmute_action = self.menu.addAction("&Unmute", lambda: self.muteRequested.emit(0.0))
        self.menu.addSeparator()
        self.menu.addAction("&Quit", self.quitRequested.emit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_icon_activated)
        self.icon.messageClicked.connect(self.show_window)
        self.set_muted(None)
        if self.available:
            self.icon.show()

    @property
    def available(self) -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show_window(self) -> None:
        self._window.showNormal()
        self._window.raise_()
        self._window.activateWindow()
        self.showRequested.emit()

    def set_status(self, status: str) -> None:
        act = self.status_actions.get(status)
        if act is not None:
            act.setChecked(True)
        self.icon.setToolTip(f"repconsole — {act.text().replace('&', '') if act else status}")

    def set_muted(self, until: float | None) -> None:
        """Show the mute state: until a time, until unmuted, or not muted (None)."""
        muted = until is not None
        if until is None:
            self.mute_label.setText("Sounds on")
        elif until >= UNTIL_UNMUTED:
            self.mute_label.setText("Muted until unmuted")
        else:
            self.mute_label.setText(f"Muted until {time.strftime('%H:%M', time.localtime(until))}")
        self.unmute_action.setEnabled(muted)

    def notify(self, title: str, text: str) -> bool:
        """A desktop notification; False when the desktop has no tray to show it."""
        if not self.icon.isVisible():
            return False
        self.icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 8000)
        return True

    def _on_icon_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_window()
