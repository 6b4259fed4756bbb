"""Small helpers several of the console's widgets share.

A time stamp format, a separator line, a badge's style and a light-or-dark
test, kept in one place so the session tab, the customer's page, the team
chat and the details pane look and read the same.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QWidget

__all__ = ["badge_style", "clock_time", "is_dark", "rule"]


def clock_time(at: float) -> str:
    """An engine time (epoch seconds) as local ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def rule(orientation: Qt.Orientation = Qt.Orientation.Horizontal) -> QFrame:
    """A thin separator line in the palette's mid tone (quiet in light and dark themes)."""
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine if orientation == Qt.Orientation.Horizontal else QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Plain)
    line.setStyleSheet("QFrame { color: palette(mid); }")
    return line


def badge_style(background: str, foreground: str) -> str:
    """The style sheet of a small coloured label (a priority, "On hold", a stream's state)."""
    return (
        f"QLabel {{ background: {background}; color: {foreground}; border-radius: 3px;"
        " padding: 1px 7px; font-weight: 600; }"
    )


def is_dark(widget: QWidget) -> bool:
    """Whether ``widget`` is drawn in a dark theme (its base colour is dark)."""
    return widget.palette().color(QPalette.ColorRole.Base).lightness() < 128
