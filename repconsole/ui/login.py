"""The sign-in dialog for a queue server.

:class:`LoginDialog` asks for the rep's password (and username) and runs
the sign-in itself, without a nested event loop: :meth:`LoginDialog.run`
opens the dialog window-modally with ``open()`` and returns, through an
asyncio future, once a sign-in succeeded (True) or the rep gave up (False).
Wrong passwords and unreachable servers are shown inline, and the rep can
try again as often as they like.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.backend.websocket import LoginError, SignInError, WebSocketBackend
from repconsole.ui.resources import app_icon

__all__ = ["LoginDialog", "sign_in"]

log = logging.getLogger(__name__)

Attempt = Callable[[str, str], Awaitable[Any]]


class LoginDialog(QDialog):
    """Sign in to a queue server: server, username, password, Sign in.

    Signals:
        signInRequested(str, str): the rep asked to sign in (username, password).

    Attributes:
        server_edit: the server URL (read-only: the console was started for it).
        username_edit: the username; read-only when signing in again.
        password_edit: the password, never echoed.
        message_label: why the dialog is shown (e.g. "you were signed out").
        error_label: the last sign-in failure, inline (empty when none).
        sign_in_button: starts the sign-in.
        busy: a sign-in is in progress.
    """

    signInRequested = Signal(str, str)

    def __init__(
        self,
        url: str,
        username: str = "",
        *,
        message: str = "",
        username_editable: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.busy = False
        self._attempt: Attempt | None = None
        self._task: asyncio.Task[Any] | None = None
        self._outcome: asyncio.Future[bool] | None = None
        self.setWindowTitle("Sign in — repconsole")
        self.setWindowIcon(app_icon())
        self.setStyleSheet('QLineEdit[readOnly="true"] { background: palette(window); }')

        layout = QVBoxLayout(self)
        # The dialog's size is set once: an error appearing must not change
        # its size constraints after it is shown.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        title = QLabel("Sign in to the queue server")
        title.setStyleSheet("font-size: 15px; font-weight: 600;")
        layout.addWidget(title)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #a15c00;")
        self.message_label.setVisible(bool(message))
        layout.addWidget(self.message_label)

        form = QFormLayout()
        self.server_edit = QLineEdit(url)
        self.server_edit.setReadOnly(True)
        self.server_edit.setAccessibleName("Server")
        self.username_edit = QLineEdit(username)
        self.username_edit.setReadOnly(not username_editable)
        self.username_edit.setAccessibleName("Username")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setAccessibleName("Password")
        form.addRow("&Server:", self.server_edit)
        form.addRow("&Username:", self.username_edit)
        form.addRow("&Password:", self.password_edit)
        layout.addLayout(form)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # Room for two lines, always: showing an error does not move the buttons.
        self.error_label.setMinimumHeight(2 * self.error_label.fontMetrics().lineSpacing() + 4)
        layout.addWidget(self.error_label)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.sign_in_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.sign_in_button.setText("Sign in")
        # Enter signs in from anywhere in the form, even after Cancel had the
        # focus (an auto-default button would take the default with it).
        for button in self.buttons.buttons():
            if isinstance(button, QPushButton):
                button.setAutoDefault(False)
        self.sign_in_button.setDefault(True)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self._on_buttons_accepted)
        self.buttons.rejected.connect(self.reject)
        self.finished.connect(self._on_dialog_finished)
        hint = layout.sizeHint()
        self.setMinimumSize(max(460, hint.width()), hint.height())
        self.resize(self.minimumSize())

        if username:
            self.password_edit.setFocus()
        else:
            self.username_edit.setFocus()

    # ------------------------------------------------------------- state

    def show_error(self, text: str) -> None:
        """Show why the last sign-in failed, under the fields."""
        self.error_label.setText(text)

    def set_busy(self, busy: bool) -> None:
        """Lock the form while a sign-in is in progress (Cancel stays available)."""
        self.busy = busy
        self.username_edit.setEnabled(not busy)
        self.password_edit.setEnabled(not busy)
        self.sign_in_button.setEnabled(not busy)
        self.sign_in_button.setText("Signing in…" if busy else "Sign in")
        if busy:
            self.show_error("")
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    # ------------------------------------------------------------- running

    async def run(self, attempt: Attempt) -> bool:
        """Open the dialog and sign in with ``attempt(username, password)`` until it works.

        ``attempt`` raises :class:`SignInError` (shown inline) or anything
        else (shown as a failure and logged).  Returns True once an attempt
        succeeded (the dialog then closes), False if the rep cancelled (a
        running attempt is cancelled with it).
        """
        self._attempt = attempt
        self._outcome = asyncio.get_running_loop().create_future()
        self.open()
        try:
            return await self._outcome
        finally:
            self._attempt = None
            self._outcome = None
            if self.isVisible():
                self.reject()  # cancelled from outside: close, and cancel a running attempt

    def _on_buttons_accepted(self) -> None:
        if self.busy:
            return
        username = self.username_edit.text().strip()
        password = self.password_edit.text()
        if not username:
            self.show_error("Enter your username.")
            self.username_edit.setFocus()
            return
        if not password:
            self.show_error("Enter your password.")
            self.password_edit.setFocus()
            return
        self.signInRequested.emit(username, password)
        if self._attempt is not None:
            self.set_busy(True)
            self._task = asyncio.ensure_future(self._attempt(username, password))
            self._task.add_done_callback(self._on_attempt_done)

    def _on_attempt_done(self, task: asyncio.Task[Any]) -> None:
        if task is self._task:
            self._task = None
        if task.cancelled():
            return
        self.set_busy(False)
        exc = task.exception()
        if exc is None:
            if self._outcome is not None and not self._outcome.done():
                self._outcome.set_result(True)
            self.accept()
            return
        if isinstance(exc, SignInError):
            self.show_error(str(exc))
        else:
            log.error("sign-in failed", exc_info=exc)
            self.show_error(f"Sign-in failed: {exc}")
        if isinstance(exc, LoginError):
            self.password_edit.clear()
        self.password_edit.setFocus()

    def _on_dialog_finished(self, result: int) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(result == QDialog.DialogCode.Accepted)


async def sign_in(backend: WebSocketBackend, parent: QWidget | None = None, *, message: str = "") -> bool:
    """Ask for the password and sign ``backend`` in; False if the rep cancelled.

    The first sign-in may change the username; signing in again after the
    server ended the session keeps it (the window shows that rep's work).
    """
    again = backend.rep is not None
    dialog = LoginDialog(backend.url, backend.username, message=message, username_editable=not again, parent=parent)

    async def attempt(username: str, password: str) -> None:
        await backend.login(password, username=username)

    try:
        return await dialog.run(attempt)
    finally:
        dialog.deleteLater()
