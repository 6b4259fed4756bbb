"""One console per settings directory: a second launch raises the first window.

Two consoles on one settings directory would overwrite each other's saved
layout and play every alert twice.  The first console holds a lock file in
the settings directory (:class:`QLockFile`: a crashed console's stale lock
is taken over, since the PID in it is gone) and listens on a local socket
whose name is derived from the directory.  A later launch on the same
directory finds the lock held, connects, asks the first console to show
itself, and exits with status 0.

The lock decides who is first, not the socket: two launches at the same
moment cannot both become the listener.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, Qt, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QWidget

__all__ = ["LOCK_NAME", "SingleInstance", "ask_to_raise", "bring_to_front", "server_name"]

log = logging.getLogger(__name__)

LOCK_NAME = "console.lock"
_RAISE = b"raise\n"
_WAIT_MS = 2000


def server_name(settings_dir: Path) -> str:
    """The local socket's name for ``settings_dir``: the same for every spelling of the same directory."""
    key = os.path.realpath(settings_dir)
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    # Per user too: on Windows and macOS the name is global to the machine.
    user = os.environ.get("USER") or os.environ.get("USERNAME") or ""
    user_digest = hashlib.sha256(user.encode()).hexdigest()[:6]
    return f"repconsole-{user_digest}-{digest}"


class SingleInstance(QObject):
    """The first console's claim on a settings directory.

    Use :meth:`claim`: it returns the claim for the first console, or None
    for a later one (after asking the first to raise its window).

    Signals:
        raiseRequested(): another launch on the same settings directory
            asked this console to show its window.
    """

    raiseRequested = Signal()

    def __init__(self, settings_dir: Path, lock: QLockFile, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings_dir = settings_dir
        self.name = server_name(settings_dir)
        self._lock = lock
        self.server = QLocalServer(self)
        # Only this user may ask (the socket file is in a shared /tmp on Unix).
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        # A crashed console leaves its socket file behind; the lock says it is dead.
        QLocalServer.removeServer(self.name)
        if not self.server.listen(self.name):
            log.warning("cannot listen on %s: %s (a second launch will not find this console)", self.name, self.server.errorString())
        self.server.newConnection.connect(self._on_server_newConnection)

    @classmethod
    def claim(cls, settings_dir: Path) -> SingleInstance | None:
        """Claim ``settings_dir`` for this process, or ask its console to raise its window and return None.

        Never blocks for long: the wait for the first console's answer is
        bounded (:data:`_WAIT_MS`).  When the directory cannot be locked at all
        (read-only), the console runs without a claim rather than not at all.
        """
        settings_dir.mkdir(parents=True, exist_ok=True)
        lock = QLockFile(str(settings_dir / LOCK_NAME))
        # The default is 30 s; a console's lock is never stale while it runs.
        lock.setStaleLockTime(0)
        if lock.tryLock(0):
            return cls(settings_dir, lock)
        if lock.error() != QLockFile.LockError.LockFailedError:
            log.warning("cannot lock %s (%s): running without the single-instance check", settings_dir, lock.error().name)
            return cls(settings_dir, lock)
        if ask_to_raise(server_name(settings_dir)):
            return None
        # Locked, but nobody answers: a console that is starting (not listening
        # yet) or hung.  Do not start a second one on the same settings.
        log.warning("another console holds %s but did not answer", settings_dir / LOCK_NAME)
        return None

    def release(self) -> None:
        """Stop listening and give the directory up (at exit).  Safe to call twice."""
        if self.server.isListening():
            self.server.close()
        if self._lock.isLocked():
            self._lock.unlock()

    def _on_server_newConnection(self) -> None:
        while (socket := self.server.nextPendingConnection()) is not None:
            socket.setParent(self)
            socket.readyRead.connect(lambda s=socket: self._on_socket_readyRead(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._on_socket_readyRead(socket)

    def _on_socket_readyRead(self, socket: QLocalSocket) -> None:
        data = bytes(socket.readAll().data())
        if _RAISE.strip() in data:
            self.raiseRequested.emit()
        socket.disconnectFromServer()


def ask_to_raise(name: str) -> bool:
    """Ask the console listening on ``name`` to raise its window; whether it was there."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(_WAIT_MS):
        return False
    socket.write(_RAISE)
    socket.flush()
    socket.waitForBytesWritten(_WAIT_MS)
    # Wait until the first console has read it (it closes the connection),
    # so that this process can exit at once.
    if socket.state() == QLocalSocket.LocalSocketState.ConnectedState:
        socket.waitForDisconnected(_WAIT_MS)
    return True


def bring_to_front(window: QWidget) -> None:
    """Show ``window`` in front of the others, un-minimised (a second launch asked for it)."""
    if window.isMinimized():
        window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    # The window manager may refuse the focus to a background process; then
    # it usually marks the window as wanting attention, which is what we want.
    window.activateWindow()
