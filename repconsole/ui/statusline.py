"""Who, where and how: the window title and the status bar's texts.

A rep with two consoles (or a console and a test server) must see at a
glance who is signed in, to what, and with which status.  Status bar texts
that can grow (the identity, the grace-period countdown) are
:class:`ElidedLabel`: they shorten with "…" when the window is narrow
instead of being squeezed into each other, and the full text is the
tooltip.  Notices shown in the status bar are elided to the room left of
the permanent widgets (:func:`fit_message`).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QStatusBar, QStyleOption, QWidget

from repconsole.backend.base import Backend, BackendState
from repconsole.core.state import ConsoleState

__all__ = ["ElidedLabel", "backend_text", "fit_message", "grace_text", "identity_text", "window_title"]

_MIN_CHARS = 6


def identity_text(rep_name: str, where: str, status: str) -> str:
    """``"Alex Morgan · simulator · Available"``."""
    return " · ".join(part for part in (rep_name, where, status) if part)


def backend_text(description: str, state: BackendState, *, filling: bool) -> tuple[str, bool]:
    """The status bar's backend label, ``"Simulator · live"``, and whether it warns (any state but live).

    ``filling``: a big start is delivering its customers.  A backend not
    yet live only because of that (the simulator goes live once every
    customer exists) says "loading customers", not "connecting", and does
    not warn: the rows shown are real and commands run.  A backend that
    reconnects or closed says so, filling or not.
    """
    if filling and state is BackendState.CONNECTING:
        return f"{description} · loading customers", False
    return f"{description} · {state.value}", state is not BackendState.LIVE


def grace_text(backend: Backend, state: ConsoleState, now: float) -> str:
    """What the status bar says about the grace period: how long the rep's sessions are kept while disconnected ("" when connected).

    ``now`` is on the backend's clock (the state's ``grace_until`` is).
    """
    # While the backend is disconnected it knows since when; the server
    # keeps the rep's sessions for the site's grace period from then.
    since: float | None = getattr(backend, "disconnected_since", None)
    grace = state.me.grace_until
    if since is not None:
        period = float(getattr(backend, "grace_period", 0.0) or state.grace_period)
        left = since + period - time.time()
        if left > 0:
            return f"Connection lost: your sessions are kept for {left:.0f} s"
        return "Connection lost: the grace period is over; your sessions may have been handed on"
    if grace:
        return f"Connection lost: your sessions are kept for {max(0, grace - now):.0f} s"
    return ""


def window_title(rep_name: str, where: str, status: str) -> str:
    """The window title: the identity first (what a task bar shows), then the program."""
    who = identity_text(rep_name, where, status)
    return f"{who} — repconsole" if who else "repconsole — Representative Console"


def fit_message(bar: QStatusBar, text: str, first_permanent: QWidget) -> str:
    """``text`` elided to the room a status bar message has left of its permanent widgets (the leftmost is given)."""
    right = first_permanent.x() if first_permanent.isVisible() else bar.width()
    # Qt paints a message from x=6 and does not stop at the permanent widgets.
    return bar.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, max(right - 6 - 12, 40))


class ElidedLabel(QLabel):
    """A one-line label that elides its text instead of asking for its full width."""

    def minimumSizeHint(self) -> QSize:
        metrics = QFontMetrics(self.font())
        return QSize(metrics.horizontalAdvance("M" * _MIN_CHARS) if self.text() else 0, super().minimumSizeHint().height())

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)
        self.updateGeometry()

    def elided(self) -> str:
        """The text as it is painted at the current width."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        option = QStyleOption()
        option.initFrom(self)
        self.style().drawItemText(
            painter, self.contentsRect(), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
            option.palette, self.isEnabled(), self.elided(), self.foregroundRole(),
        )
        painter.end()
