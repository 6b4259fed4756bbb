"""The customer's presence in a session tab (issue 14): typing, silence, and "Still there?".

A strip under the chat transcript says "Liam is typing…" while the
customer types (the server's typing notices: docs/protocol.md, Typing), until
their line arrives or :data:`TYPING_CLEAR` seconds pass without another
notice.  When the customer has not written for the preference's minutes
(``chat.silent_after_minutes``, read each time it is checked, so a change
applies at once), it says so, and the tab is flagged (the window sets its
icon and accessible name from :attr:`PresenceBar.silentChanged`).  Its "Still
there?" button sends :attr:`PresenceBar.nudge_text` (the rep's "still-there"
snippet, :data:`NUDGE_TEXT` by default) as a normal chat line.

Time comes from an injected clock (the backend's server time), so tests move
it instead of sleeping; a one-second timer only calls :meth:`PresenceBar.refresh`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from repconsole import snippets
from repconsole.ui import theme
from repconsole.ui.theme import Role
from repconsole.ui.widgets import badge_style

__all__ = ["NUDGE_TEXT", "TYPING_CLEAR", "TYPING_EVERY", "PresenceBar", "TypingThrottle", "first_name"]

# How long "… is typing" stays without another notice (the sender repeats every TYPING_EVERY s).
TYPING_CLEAR = 5.0
# The rep's own typing is sent at most this often (docs/protocol.md, Typing).
TYPING_EVERY = 2.0
# What "Still there?" sends: a normal chat line, which the customer sees.
NUDGE_TEXT = snippets.NUDGE_TEXT  # the default of the rep's "still-there" snippet (repconsole/snippets.py)


def first_name(name: str) -> str:
    """What the strip calls the customer: the first word of the name ("Liam" of "Liam Chen")."""
    return name.split()[0] if name.split() else "The customer"


class TypingThrottle:
    """Whether the rep's typing may be sent now: at most once every :data:`TYPING_EVERY` s."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self._clock()
        if self._last is not None and 0 <= now - self._last < TYPING_EVERY:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        """A line went out: the next keystroke starts a new message, and may say so at once."""
        self._last = None


class PresenceBar(QWidget):
    """Typing, silence and the nudge of one session's customer.

    Signals:
        nudgeRequested(str): the rep pressed "Still there?" (Alt+I): the line to send.
        silentChanged(bool): the customer became silent (True: no line for the
            preference's minutes while the session is active) or wrote (False).
    """

    nudgeRequested = Signal(str)
    silentChanged = Signal(bool)

    def __init__(self, clock: Callable[[], float], silent_after: Callable[[], float], parent: QWidget | None = None) -> None:
        """``silent_after()``: the preference's minutes, read at each check."""
        super().__init__(parent)
        self._clock = clock
        self._silent_after = silent_after
        self._name = "The customer"
        self._active = False
        self._typing_at: float | None = None  # when the last typing notice came
        self._heard_at: float | None = None  # the customer's last line, or when the rep took the session
        self.silent = False
        # What "Still there?" sends, asked at each press: the rep's snippet, filled in (the window sets it).
        self.nudge_text: Callable[[], str | None] = lambda: NUDGE_TEXT

        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.setSpacing(8)
        self.typing_label = QLabel()
        self.typing_label.setStyleSheet("color: palette(placeholder-text); font-style: italic;")
        self.typing_label.setAccessibleName("Customer typing")
        self.silent_label = QLabel()
        theme.set_style(self.silent_label, badge_style(Role.AMBER_BADGE, Role.AMBER_BADGE_TEXT))
        self.nudge_button = QPushButton("St&ill there?")
        self.nudge_button.setAutoDefault(False)
        self.nudge_button.setToolTip("Send the customer your check-in snippet, “still-there” (Alt+I)")
        self.nudge_button.clicked.connect(self._on_nudge_button_clicked)
        layout.addWidget(self.typing_label)
        layout.addStretch(1)
        layout.addWidget(self.silent_label)
        layout.addWidget(self.nudge_button, 0, Qt.AlignmentFlag.AlignRight)

        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    # ------------------------------------------------------------ public API

    @property
    def typing(self) -> bool:
        return not self.typing_label.isHidden()

    def set_session(self, customer_name: str, *, active: bool, since: float | None) -> None:
        """The session as it is now: whose, whether the rep is chatting in it, and since when."""
        self._name = first_name(customer_name)
        self._active = active
        if since is not None and (self._heard_at is None or since > self._heard_at):
            self._heard_at = since
        self.nudge_button.setEnabled(active)
        self.refresh()

    def customer_typing(self) -> None:
        """A typing notice came: show "Liam is typing…" for the next :data:`TYPING_CLEAR` s."""
        self._typing_at = self._clock()
        self.refresh()

    def customer_wrote(self, at: float) -> None:
        """The customer's line arrived (said at ``at``): no longer typing, no longer silent."""
        self._typing_at = None
        if self._heard_at is None or at > self._heard_at:
            self._heard_at = at
        self.refresh()

    def refresh(self) -> None:
        """Show what holds now, by the clock."""
        now = self._clock()
        typing = self._typing_at is not None and now - self._typing_at < TYPING_CLEAR
        if not typing:
            self._typing_at = None
        self.typing_label.setText(f"{self._name} is typing…" if typing else "")
        self.typing_label.setHidden(not typing)
        minutes = self._silent_after()
        silent = self._active and self._heard_at is not None and minutes > 0 and now - self._heard_at >= minutes * 60
        if silent:
            quiet = max(1, int((now - self._heard_at) // 60)) if self._heard_at is not None else 0
            self.silent_label.setText(f"Silent for {quiet} min")
            self.silent_label.setAccessibleName(f"{self._name} has not written for {quiet} minutes")
        self.silent_label.setHidden(not silent)
        if silent != self.silent:
            self.silent = silent
            self.silentChanged.emit(silent)

    # ------------------------------------------------------------ slots

    def _on_nudge_button_clicked(self) -> None:
        text = self.nudge_text()
        if text:  # None: the owner took care of it (a snippet with a placeholder it could not fill)
            self.nudgeRequested.emit(text)
