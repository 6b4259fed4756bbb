"""The search box over the queue: Esc clears it, Enter accepts a result, Down goes to the results."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLineEdit, QWidget

__all__ = ["SearchField"]


class SearchField(QLineEdit):
    """A line edit for searching active sessions.

    Esc clears it (and so ends the search); the window's own Esc action
    (close the details pane) only gets Esc once the box is empty.

    Signals:
        acceptRequested(): Enter was pressed with text in the box: accept
            the selected result (or the first).
        resultsRequested(): Down was pressed: move to the results.
    """

    acceptRequested = Signal()
    resultsRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Search active sessions (Ctrl+F)")
        self.setClearButtonEnabled(True)
        self.setMinimumWidth(260)
        self.setAccessibleName("Search active sessions")
        self.setToolTip("Esc clears the search; Enter accepts the selected result, or goes to its tab")

    def event(self, event: QEvent) -> bool:
        # Claim Esc before the window's shortcut does, while there is something to clear.
        escape = isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Escape
        if escape and event.type() == QEvent.Type.ShortcutOverride and self.text():
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Escape and self.text():
            self.clear()
            event.accept()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.text().strip():
            self.acceptRequested.emit()
            event.accept()
        elif key == Qt.Key.Key_Down:
            self.resultsRequested.emit()
            event.accept()
        else:
            super().keyPressEvent(event)
