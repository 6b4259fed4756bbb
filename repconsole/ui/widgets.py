"""Small helpers several of the console's widgets share.

A time stamp format, a separator line and a badge's style, kept in one
place so the session tab, the customer's page, the team chat and the
details pane look and read the same.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame

from repconsole.ui.theme import Role

__all__ = ["badge_style", "clock_time", "rule"]


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


def badge_style(background: Role, foreground: Role) -> str:
    """The style sheet template (for :func:`repconsole.ui.theme.set_style`) of a small coloured label.

    A priority, "On hold", a stream's state: ``background`` and ``foreground``
    are a badge pair of theme roles, checked together for contrast.
    """
    return (
        f"QLabel {{ background: ${background.value}; color: ${foreground.value}; border-radius: 3px;"
        " padding: 1px 7px; font-weight: 600; }"
    )
