"""Asking before quitting with sessions open.

Quitting drops the rep's connection: after the site's grace period each
open session goes on by the fallback rules (to a participant, back to its
queue, or to the fallback queue).  The dialog lists what is open and
offers Cancel, Quit, or Set away and quit (no new work is routed to the
rep meanwhile).  "Don't ask again" turns the question off in the
preferences (``confirm.quit_with_sessions``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

from repconsole.core.state import ConsoleState
from repconsole.protocol import SessionView
from repconsole.settings import Settings
from repconsole.ui.keydialog import fix_size

__all__ = ["QuitChoice", "QuitDialog", "QuitGuard"]


class QuitChoice(enum.Enum):
    CANCEL = "cancel"
    QUIT = "quit"
    AWAY_AND_QUIT = "away_and_quit"


class QuitDialog(QDialog):
    """Lists the open sessions and asks what quitting should do with them.

    Attributes:
        choice: what the rep chose (CANCEL until a button is pressed).
        sessions_list, dont_ask, quit_button, away_button, cancel_button: its parts.
    """

    def __init__(self, sessions: Sequence[SessionView], rep_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choice = QuitChoice.CANCEL
        self.setWindowTitle("Quit with sessions open?")
        self.setAccessibleName("Quit with sessions open")
        layout = QVBoxLayout(self)
        n = len(sessions)
        head = QLabel(f"You have {n} session{'s' if n != 1 else ''} open. If you quit, after the grace period "
                      "each goes on by the fallback rules: to a participant, back to its queue, or to the fallback queue.")
        head.setWordWrap(True)
        layout.addWidget(head)
        self.sessions_list = QListWidget()
        self.sessions_list.setAccessibleName("Open sessions")
        for s in sessions:
            role = "owner" if s.owner == rep_id else "participant"
            held = ", on hold" if s.held else ""
            self.sessions_list.addItem(f"{s.title} — {s.issue or 'no issue given'} ({role}{held})")
        self.sessions_list.setMaximumHeight(18 + 22 * min(max(n, 1), 8))
        layout.addWidget(self.sessions_list)
        self.dont_ask = QCheckBox("Don't ask again (Preferences can turn it back on)")
        layout.addWidget(self.dont_ask)
        buttons = QDialogButtonBox()
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.away_button = QPushButton("Set &away and quit")
        self.away_button.setToolTip("Set your status to Away first, so no new customers are offered to you, then quit")
        buttons.addButton(self.away_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.quit_button = QPushButton("&Quit")
        buttons.addButton(self.quit_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        self.cancel_button.setDefault(True)
        self.cancel_button.clicked.connect(self.reject)
        self.away_button.clicked.connect(lambda: self._choose(QuitChoice.AWAY_AND_QUIT))
        self.quit_button.clicked.connect(lambda: self._choose(QuitChoice.QUIT))
        layout.addWidget(buttons)
        fix_size(self, layout, 420)

    def _choose(self, choice: QuitChoice) -> None:
        self.choice = choice
        self.accept()


class QuitGuard(QObject):
    """Holds a window's close while the rep decides what happens to open sessions.

    The window's ``closeEvent`` asks :meth:`may_quit`; while the question
    is open the close is refused, and the rep's answer comes back as a
    signal (the window then closes again, for good).  The preference
    ``confirm.quit_with_sessions`` is read at the moment of quitting.

    Signals:
        quitChosen(bool): the rep chose to quit (True: set away first).

    Attributes:
        dialog: the open question, or None.
        confirmed: the rep already chose to quit.
    """

    quitChosen = Signal(bool)

    def __init__(self, window: QWidget, state: ConsoleState, settings: Settings) -> None:
        super().__init__(window)
        self._window = window
        self._state = state
        self._settings = settings
        self.dialog: QuitDialog | None = None
        self.confirmed = False

    def may_quit(self) -> bool:
        """Whether the window may close now; False while the rep is asked."""
        sessions = self._state.my_sessions() if self._state.seq >= 0 else []
        if self.confirmed or not sessions or not self._settings.preferences.confirm.quit_with_sessions:
            return True
        if self.dialog is None:
            self.dialog = QuitDialog(sessions, self._state.rep_id, self._window)
            self.dialog.finished.connect(self._on_dialog_finished)
            self.dialog.open()
        return False

    def close_now(self) -> None:
        """Close the window without asking: the console is told to quit (a timer, a cancelled sign-in, a test)."""
        self.confirmed = True
        self._window.close()

    def _on_dialog_finished(self) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is None:
            return
        dialog.deleteLater()
        if dialog.choice is QuitChoice.CANCEL:
            return
        if dialog.dont_ask.isChecked():
            self._settings.preferences.confirm.quit_with_sessions = False
        self.confirmed = True
        self.quitChosen.emit(dialog.choice is QuitChoice.AWAY_AND_QUIT)
