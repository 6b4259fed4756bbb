"""The sign-in dialog for a queue server.

:class:`LoginDialog` asks for the server address, the rep's username and
password and runs the sign-in itself, without a nested event loop:
:meth:`LoginDialog.run` opens the dialog window-modally with ``open()`` and
returns, through an asyncio future, once a sign-in succeeded (True) or the
rep gave up (False).  Wrong passwords and unreachable servers are shown
inline, and the rep can try again as often as they like.

The server address is typed or picked from the servers signed in to before;
the last server and user are remembered in the preferences
(``startup``).  Started from the desktop (``repconsole --login``) the dialog
also offers the built-in simulator (:func:`choose_backend`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.backend.base import Backend
from repconsole.backend.endpoints import format_servers, parse_servers
from repconsole.backend.websocket import LoginError, SignInError, WebSocketBackend
from repconsole.core.feed import FeedBatch
from repconsole.preferences import StartupBackend
from repconsole.settings import Settings
from repconsole.ui import theme
from repconsole.ui.resources import app_icon

__all__ = ["EarlyFeed", "LoginDialog", "choose_backend", "remember_server", "sign_in"]

log = logging.getLogger(__name__)

# attempt(server, username, password)
Attempt = Callable[[str, str, str], Awaitable[Any]]
MAX_RECENT_SERVERS = 10


class LoginDialog(QDialog):
    """Sign in to a queue server: server, username, password, Sign in.

    Signals:
        signInRequested(str, str): the rep asked to sign in (username, password).

    Attributes:
        server_combo: the server address, editable, with the servers used before.
        server_edit: its text field (read-only when signing in again).
        simulator_radio, server_radio: with ``offer_simulator``, the choice
            between the built-in simulator and a queue server (else None).
        chose_simulator: the dialog ended with the simulator chosen.
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
        server_editable: bool = False,
        recent_servers: list[str] | None = None,
        offer_simulator: bool = False,
        simulator: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.busy = False
        self.chose_simulator = False
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
        title = QLabel("Sign in to repconsole" if offer_simulator else "Sign in to the queue server")
        title.setStyleSheet("font-size: 15px; font-weight: 600;")
        layout.addWidget(title)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        theme.set_style(self.message_label, "color: $warning_text;")
        self.message_label.setVisible(bool(message))
        layout.addWidget(self.message_label)

        self.simulator_radio: QRadioButton | None = None
        self.server_radio: QRadioButton | None = None
        if offer_simulator:
            self.server_radio = QRadioButton("A &queue server")
            self.simulator_radio = QRadioButton("The built-in si&mulator (practice: made-up customers, no server)")
            group = QButtonGroup(self)
            for radio in (self.server_radio, self.simulator_radio):
                group.addButton(radio)
                layout.addWidget(radio)
            (self.simulator_radio if simulator else self.server_radio).setChecked(True)
            self.simulator_radio.toggled.connect(self._on_simulator_radio_toggled)

        form = QFormLayout()
        self.server_combo = QComboBox()
        self.server_combo.setEditable(True)
        self.server_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.server_combo.setAccessibleName("Server")
        history = [u for u in (recent_servers or []) if u] if server_editable else []
        self.server_combo.addItems(history)
        self.server_combo.setCurrentText(url)
        line = self.server_combo.lineEdit()
        assert line is not None  # an editable combo box has one
        self.server_edit = line
        self.server_edit.setReadOnly(not server_editable)
        self.server_edit.setPlaceholderText("ws://host:8765 or wss://host (several: separated by commas)")
        self.username_edit = QLineEdit(username)
        self.username_edit.setReadOnly(not username_editable)
        self.username_edit.setAccessibleName("Username")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setAccessibleName("Password")
        form.addRow("&Server:", self.server_combo)
        form.addRow("&Username:", self.username_edit)
        form.addRow("&Password:", self.password_edit)
        layout.addLayout(form)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        theme.set_style(self.error_label, "color: $error_text;")
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

        if offer_simulator and simulator:
            self._on_simulator_radio_toggled(True)
            self.sign_in_button.setFocus()
        elif not url and server_editable:
            self.server_edit.setFocus()
        elif username:
            self.password_edit.setFocus()
        else:
            self.username_edit.setFocus()

    def _on_simulator_radio_toggled(self, simulator: bool) -> None:
        for w in (self.server_combo, self.username_edit, self.password_edit):
            w.setEnabled(not simulator)
        self.sign_in_button.setText("Start" if simulator else "Sign in")
        self.show_error("")

    # ------------------------------------------------------------- state

    def show_error(self, text: str) -> None:
        """Show why the last sign-in failed, under the fields."""
        self.error_label.setText(text)

    def set_busy(self, busy: bool) -> None:
        """Lock the form while a sign-in is in progress (Cancel stays available)."""
        self.busy = busy
        self.server_combo.setEnabled(not busy)
        self.username_edit.setEnabled(not busy)
        self.password_edit.setEnabled(not busy)
        self.sign_in_button.setEnabled(not busy)
        self.sign_in_button.setText("Signing in…" if busy else "Sign in")
        if busy:
            self.show_error("")
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    # ------------------------------------------------------------- running

    async def run(self, attempt: Attempt) -> bool:
        """Open the dialog and sign in with ``attempt(server, username, password)`` until it works.

        ``attempt`` raises :class:`SignInError` (shown inline) or anything
        else (shown as a failure and logged).  Returns True once an attempt
        succeeded or the simulator was chosen (the dialog then closes), False
        if the rep cancelled (a running attempt is cancelled with it).
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
        if self.simulator_radio is not None and self.simulator_radio.isChecked():
            self.chose_simulator = True
            if self._outcome is not None and not self._outcome.done():
                self._outcome.set_result(True)
            self.accept()
            return
        try:
            # Several servers of one site: separated by commas, tried in turn when one stops answering.
            server = format_servers(parse_servers(self.server_edit.text()))
        except ValueError as exc:
            self.show_error(f"Enter the server address: ws://host:port or wss://host, several separated by commas ({exc}).")
            self.server_edit.setFocus()
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
            self._task = asyncio.ensure_future(self._attempt(server, username, password))
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


def remember_server(settings: Settings | None, url: str, username: str) -> None:
    """Keep the server and user signed in with, for the next start (newest first in the history).

    ``url`` is one line: a site's several servers are separated by commas.
    """
    if settings is None:
        return
    startup = settings.preferences.startup
    startup.backend = StartupBackend.SERVER
    startup.server_url = url
    startup.user = username
    startup.recent_servers = [url, *(u for u in startup.recent_servers if u != url)][:MAX_RECENT_SERVERS]
    try:
        settings.save()
    except OSError as exc:
        log.error("could not save the server signed in to: %s", exc)


async def sign_in(backend: WebSocketBackend, parent: QWidget | None = None, *, message: str = "", settings: Settings | None = None) -> bool:
    """Ask for the password and sign ``backend`` in; False if the rep cancelled.

    The first sign-in may change the server (from the history in
    ``settings``) and the username, and remembers both; signing in again
    after the server ended the session keeps them (the window shows that
    rep's work on that server).
    """
    again = backend.rep is not None
    recent = settings.preferences.startup.recent_servers if settings is not None else []
    servers = format_servers(backend.servers.urls)
    dialog = LoginDialog(
        servers, backend.username, message=message, username_editable=not again, server_editable=not again, recent_servers=recent, parent=parent
    )

    async def attempt(server: str, username: str, password: str) -> None:
        if not again and server != format_servers(backend.servers.urls):
            backend.set_url(server)
        await backend.login(password, username=username)
        if not again:
            remember_server(settings, format_servers(backend.servers.urls), username)

    try:
        return await dialog.run(attempt)
    finally:
        dialog.deleteLater()


class EarlyFeed:
    """What a backend signed in from the dialog delivers before the window listens (its snapshot).

    A listener that keeps batches until :meth:`hand_over` gives them to the
    window, and passes nothing on after that (the window listens itself).
    """

    def __init__(self) -> None:
        self.batches: list[FeedBatch] = []
        self._open = True

    def __call__(self, batch: FeedBatch) -> None:
        if self._open:
            self.batches.append(batch)

    def hand_over(self, listener: Callable[[FeedBatch], None]) -> None:
        self._open = False
        batches, self.batches = self.batches, []
        for batch in batches:
            listener(batch)


async def choose_backend(
    settings: Settings,
    simulator: Callable[[], Backend],
    *,
    url: str = "",
    username: str = "",
    early: EarlyFeed | None = None,
    opened: Callable[[LoginDialog], object] | None = None,
) -> Backend | None:
    """The sign-in dialog with the simulator as a choice; the backend the rep chose, signed in, or None.

    Prefilled from the preferences: the last choice, server and user (``url``
    and ``username`` override them).  ``simulator()`` makes the simulator.
    A server's first batches go to ``early`` (the window does not exist yet).
    ``opened(dialog)`` is called once the dialog is open.
    """
    startup = settings.preferences.startup
    dialog = LoginDialog(
        url or startup.server_url,
        username or startup.user,
        server_editable=True,
        recent_servers=startup.recent_servers,
        offer_simulator=True,
        simulator=startup.backend is StartupBackend.SIMULATOR and not url,
    )
    signed_in: list[WebSocketBackend] = []

    async def attempt(server: str, user: str, password: str) -> None:
        backend = WebSocketBackend(server, user)
        if early is not None:
            backend.add_event_listener(early)
        try:
            await backend.login(password)
        except BaseException:
            await backend.stop()
            raise
        signed_in[:] = [backend]
        remember_server(settings, format_servers(backend.servers.urls), user)

    if opened is not None:
        QTimer.singleShot(0, lambda: opened(dialog))
    try:
        if not await dialog.run(attempt):
            return None
    finally:
        dialog.deleteLater()
    if dialog.chose_simulator:
        startup.backend = StartupBackend.SIMULATOR
        try:
            settings.save()
        except OSError as exc:
            log.error("could not save the startup choice: %s", exc)
        return simulator()
    return signed_in[0]
