"""Ask before End and Leave: one click must not lose a session.

The question names the customer and says what happens to them; a "Don't
ask again" box turns the question off in the preferences
(``confirm.end_session`` / ``confirm.leave_session``), which the
Preferences dialog can turn on again.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton, QStyle, QVBoxLayout, QWidget

from repconsole.settings import Settings

__all__ = ["SessionAction", "SessionConfirm", "ask_then", "must_ask"]


class SessionAction(enum.Enum):
    END = "end"
    LEAVE = "leave"


def must_ask(settings: Settings | None, action: SessionAction) -> bool:
    """Whether ``action`` asks first: read at the moment of acting, so a change applies at once."""
    if settings is None:
        return False
    confirm = settings.preferences.confirm
    return confirm.end_session if action is SessionAction.END else confirm.leave_session


class SessionConfirm(QDialog):
    """"End the session with Sam?", with a "Don't ask again" box.

    Opened window-modal with :meth:`open` (never a nested event loop), so
    the feed keeps flowing while it is shown.  If the rep confirms with the
    box checked, the preference is turned off and saved.  A plain dialog
    rather than a QMessageBox, whose fixed size some platforms cannot honour.

    Attributes:
        action: what is asked about.
        question_label, detail_label: the question, and what it means for the customer.
        confirm_button: does it (End session / Leave).
        cancel_button: the default: Enter or Esc does nothing to the session.
        dont_ask_check: "Don't ask again".
    """

    def __init__(self, action: SessionAction, customer: str, settings: Settings | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.action = action
        self._settings = settings
        self._clicked: QPushButton | None = None
        self.setObjectName("sessionConfirm")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        if action is SessionAction.END:
            self.setWindowTitle("End session")
            question = f"End the session with {customer}?"
            detail = "The customer will be disconnected, and every rep in the session leaves it."
            label = "&End session"
        else:
            self.setWindowTitle("Leave session")
            question = f"Leave the session with {customer}?"
            detail = "The session goes on without you; you will no longer see its chat."
            label = "&Leave"
        icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_MessageBoxIconSize)
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxQuestion).pixmap(size, size))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.question_label = QLabel(question)
        self.question_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.question_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.question_label.setFont(font)
        self.detail_label = QLabel(detail)
        self.detail_label.setWordWrap(True)
        self.dont_ask_check = QCheckBox("Don't ask again (Preferences can turn this back on)")
        buttons = QDialogButtonBox()
        self.confirm_button: QPushButton = buttons.addButton(label, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button: QPushButton = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        # Enter must not end a session by accident: Cancel is the default.
        self.confirm_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)
        self.confirm_button.clicked.connect(self._on_confirm_button_clicked)
        self.cancel_button.clicked.connect(self.reject)

        text = QVBoxLayout()
        text.setSpacing(6)
        text.addWidget(self.question_label)
        text.addWidget(self.detail_label)
        text.addSpacing(6)
        text.addWidget(self.dont_ask_check)
        top = QHBoxLayout()
        top.setSpacing(14)
        top.addWidget(icon)
        top.addLayout(text, 1)
        root = QVBoxLayout(self)
        root.setContentsMargins(16, 16, 16, 12)
        root.addLayout(top)
        root.addWidget(buttons)
        # Size constraints set now, before the window exists: set at show, some platforms cannot take them.
        root.activate()
        self.cancel_button.setFocus()

    def text(self) -> str:
        """The question and what it means, as the rep reads them."""
        return f"{self.question_label.text()}\n{self.detail_label.text()}"

    def _on_confirm_button_clicked(self) -> None:
        self._clicked = self.confirm_button
        self.accept()

    def confirmed(self) -> bool:
        """After it closed: whether the rep chose to go ahead; then remembers "don't ask again"."""
        if self._clicked is not self.confirm_button:
            return False
        if self.dont_ask_check.isChecked() and self._settings is not None:
            confirm = self._settings.preferences.confirm
            if self.action is SessionAction.END:
                confirm.end_session = False
            else:
                confirm.leave_session = False
            # The choice still holds for this run if the file cannot be written.
            with contextlib.suppress(OSError):
                self._settings.save()
        return True


def ask_then(
    parent: QWidget,
    action: SessionAction,
    customer: str,
    settings: Settings | None,
    do: Callable[[], object],
    allowed: Callable[[], bool],
) -> SessionConfirm | None:
    """Run ``do`` now if ``action`` does not ask first (None); else open the question and return it.

    ``do`` runs once the rep confirms, if ``allowed()`` still holds then
    (the session may have changed while the question was open).
    """
    if not must_ask(settings, action):
        do()
        return None
    dialog = SessionConfirm(action, customer or "the customer", settings, parent)

    def finished(_result: int) -> None:
        dialog.deleteLater()
        if dialog.confirmed() and allowed():
            do()

    dialog.finished.connect(finished)
    dialog.open()
    return dialog
