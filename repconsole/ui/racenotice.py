"""A line that stands in for a vanished row: "Priya Raman took Sam Lee".

When another rep takes the customer this rep was reaching for (the selected
or pressed row), the row just vanishing would be silent.  The queue table
puts one of these where the row was, for :data:`LOST_RACE_SECONDS`, on the
clock it is given (so tests move time instead of sleeping).  It never takes
a click: the pointer reaches the row underneath, and any press or a queue
switch dismisses it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import QLabel, QWidget

__all__ = ["LOST_RACE_SECONDS", "RaceNotice"]

LOST_RACE_SECONDS = 5.0


class RaceNotice(QLabel):
    """A one-row notice over a table's viewport, gone after a few seconds.

    Attributes:
        until: when it hides (clock time), or None while hidden.
        row_id: the row it stands in for.
    """

    def __init__(self, parent: QWidget, clock: Callable[[], float]) -> None:
        super().__init__(parent)
        self._host = parent
        self._clock = clock
        self.until: float | None = None
        self.row_id: str | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        # Palette roles, not colours: a tooltip's colours read on light and dark themes alike.
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        font = QFont(self.font())
        font.setBold(True)
        self.setFont(font)
        self.setIndent(8)
        self.setAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft)
        self.setAccessibleName("Taken by another representative")
        self.hide()

    def show_at(self, row_id: str, text: str, top: int, height: int, seconds: float = LOST_RACE_SECONDS) -> None:
        """Show ``text`` over the row band starting at ``top`` (viewport coordinates)."""
        self.row_id = row_id
        self.setText(text)
        self.setGeometry(0, top, self._host.width(), height)
        self.until = self._clock() + seconds
        self.show()
        self.raise_()

    def expire(self) -> bool:
        """Hide once its time is up; True while it still shows."""
        if self.until is not None and self._clock() >= self.until:
            self.dismiss()
        return self.until is not None

    def dismiss(self) -> None:
        self.until = None
        self.row_id = None
        self.hide()

    def follow_scroll(self, dy: int) -> None:
        """Follow the rows when the view scrolls by ``dy`` pixels."""
        if self.isVisible():
            self.move(self.x(), self.y() + dy)
