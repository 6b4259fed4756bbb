"""The console moved to another server of its site (issue 15): tell the rep.

A site that runs several server processes gives the console their addresses;
when the one it is on stops answering, the backend reconnects to another
(:mod:`repconsole.backend.endpoints`).  The status bar's backend label always
names the server in use (``Server ws://b:8765 · live``); when it changes,
:class:`ServerSwitch` also shows a notice and announces it to a screen
reader (politely: the work goes on, nothing is lost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from repconsole.backend.base import BackendState
from repconsole.ui.announce import Kind

if TYPE_CHECKING:
    from repconsole.backend.websocket import WebSocketBackend
    from repconsole.ui.mainwindow import MainWindow

__all__ = ["ServerSwitch", "switch_text"]


def switch_text(old: str, new: str) -> str:
    """What the rep is told: ``"Now on the server ws://b:8765 (ws://a:8765 stopped answering)."``."""
    return f"Now on the server {new} ({old} stopped answering)."


class ServerSwitch(QObject):
    """Watches which server ``backend`` is live on, and tells the rep when it changes.

    Signals:
        switched(str, str): the console went live on another server (the old address, the new one).
    """

    switched = Signal(str, str)

    def __init__(self, window: MainWindow, backend: WebSocketBackend) -> None:
        super().__init__(window)
        self._window = window
        self._backend = backend
        # The server of the last live connection (None before the first).
        self._live: str | None = backend.url if backend.state is BackendState.LIVE else None
        backend.add_state_listener(self._on_backend_state)

    def _on_backend_state(self, state: BackendState, detail: str) -> None:
        if state is not BackendState.LIVE:
            return
        old, self._live = self._live, self._backend.url
        if old is None or old == self._live:
            return
        text = switch_text(old, self._live)
        self._window.show_notice(text)
        self._window.announcer.announce(Kind.CONNECTION, text)
        self.switched.emit(old, self._live)
