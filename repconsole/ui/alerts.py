"""Alerts that a rep cannot miss: banner, tray message, sound, taskbar flash.

Missed arrivals are the most common complaint about peer products, so an
alert repeats its sound until the rep looks: until they open the queue it
is about, or dismiss the banner.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QSystemTrayIcon, QWidget

__all__ = ["AlertBanner", "Alerter"]

REPEAT_MS = 20_000


class AlertBanner(QFrame):
    """An in-window banner at the top of the queue view.

    Signals:
        showRequested(): the rep clicked "Show".
        dismissed(): the rep closed the banner.
    """

    showRequested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alertBanner")
        self.setStyleSheet(
            "#alertBanner { background: #fff4d6; border: 1px solid #f0c36d; border-radius: 4px; }"
            "#alertBanner QLabel { color: #5c4400; }"
        )
        self._label = QLabel()
        self._label.setTextFormat(Qt.TextFormat.PlainText)
        show = QPushButton("&Show")
        show.clicked.connect(self.showRequested)
        close = QPushButton("Dismiss")
        close.clicked.connect(self._on_close_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self._label, 1)
        layout.addWidget(show)
        layout.addWidget(close)
        self.hide()

    @property
    def text(self) -> str:
        return self._label.text()

    def show_message(self, text: str) -> None:
        self._label.setText(text)
        self.show()

    def _on_close_clicked(self) -> None:
        self.hide()
        self.dismissed.emit()


class Alerter(QObject):
    """Raises alerts through every channel available, and repeats them until acknowledged.

    Signals:
        raised(str, str): an alert was raised (kind, text).

    Attributes:
        pending: unacknowledged alert texts, oldest first.
        banner: the in-window banner.
    """

    raised = Signal(str, str)

    def __init__(self, window: QWidget, banner: AlertBanner, icon: QIcon) -> None:
        super().__init__(window)
        self._window = window
        self.banner = banner
        self.pending: list[str] = []
        self._tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._tray = QSystemTrayIcon(icon, self)
            self._tray.setToolTip("repconsole")
            self._tray.messageClicked.connect(self._on_tray_messageClicked)
            self._tray.show()
        self._repeat = QTimer(self)
        self._repeat.setInterval(REPEAT_MS)
        self._repeat.timeout.connect(self._on_repeat_timeout)
        banner.dismissed.connect(self.acknowledge)

    def alert(self, kind: str, text: str) -> None:
        self.pending.append(text)
        more = f"  (+{len(self.pending) - 1} more)" if len(self.pending) > 1 else ""
        self.banner.show_message(text + more)
        self._ring()
        if self._tray is not None and (not self._window.isActiveWindow() or self._window.isMinimized()):
            self._tray.showMessage("repconsole", text, QSystemTrayIcon.MessageIcon.Information, 8000)
        QApplication.alert(self._window)  # taskbar flash when in the background
        if not self._repeat.isActive():
            self._repeat.start()
        self.raised.emit(kind, text)

    def acknowledge(self) -> None:
        self.pending.clear()
        self._repeat.stop()
        self.banner.hide()

    def _ring(self) -> None:
        QApplication.beep()

    def _on_repeat_timeout(self) -> None:
        if self.pending:
            self._ring()
            QApplication.alert(self._window)
        else:
            self._repeat.stop()

    def _on_tray_messageClicked(self) -> None:
        self._window.showNormal()
        self._window.raise_()
        self._window.activateWindow()
