"""What a session tab shows of lines on their way, and of a lost connection.

During an outage the backend keeps ``say`` commands and sends them, once
and in order, after the reconnect.  The rep must see that: each line sent
shows at once in the chat as *pending* (:class:`PendingLines`), and becomes
a normal line when the server confirms it (the command's result, or its
chat event, whichever comes first).  A refused line leaves the chat and goes
back to the input, so nothing typed is lost.  :class:`OutageBanner` says, in
the tab, that the connection is down.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QWidget

from repconsole.protocol import LineView, Visibility
from repconsole.ui.chatlog import ChatLog

__all__ = ["OutageBanner", "PendingLines"]

_keys = itertools.count(1)


@dataclass(slots=True)
class _Pending:
    key: int
    text: str
    reps_only: bool


class PendingLines:
    """The lines one session tab sent that the server has not confirmed yet.

    Attributes:
        last_key: the key of the line most recently added (for :meth:`confirming`).
    """

    def __init__(self, chat: ChatLog, rep_id: Callable[[], str], restore: Callable[[str], None]) -> None:
        self._chat = chat
        self._rep_id = rep_id
        self._restore = restore
        self._lines: list[_Pending] = []
        self.last_key = 0

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, text: str, reps_only: bool) -> int:
        """Show ``text`` as pending; its key."""
        key = next(_keys)
        self._lines.append(_Pending(key, text, reps_only))
        self._chat.add_pending(key, text, reps_only=reps_only)
        self.last_key = key
        return key

    def arrived(self, line: LineView) -> None:
        """A chat line came from the server: if it is one of ours still pending, it is pending no more.

        Called before the line is added, so the confirmed line replaces the
        pending one and is never shown twice.
        """
        if line.author != self._rep_id():
            return
        reps_only = line.visibility is Visibility.REPS
        for p in self._lines:
            if p.text == line.text and p.reps_only == reps_only:
                self._drop(p)
                return

    async def confirming(self, key: int, call: Awaitable[LineView]) -> LineView:
        """Await the ``say`` of pending line ``key``: confirmed, the line shows as sent; refused, its text goes back to the input."""
        try:
            line = await call
        except BaseException:
            p = self._find(key)
            if p is not None:
                self._drop(p)
                self._restore(p.text)
            raise
        p = self._find(key)
        if p is not None:
            self._drop(p)
        self._chat.add_line(line)
        return line

    def _find(self, key: int) -> _Pending | None:
        return next((p for p in self._lines if p.key == key), None)

    def _drop(self, p: _Pending) -> None:
        self._lines.remove(p)
        self._chat.remove_pending(p.key)


class OutageBanner(QLabel):
    """"Not connected to the server", across the top of a session tab, while the connection is down.

    Uses the palette's tooltip colours (a note over the tab, in both themes)
    rather than a fixed colour.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("outageBanner")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.setContentsMargins(10, 6, 10, 6)
        self.setStyleSheet("QLabel#outageBanner { font-weight: 600; }")
        self.hide()

    def set_outage(self, detail: str | None) -> None:
        """Show the banner (``detail``: why, e.g. "reconnecting…"), or hide it (None)."""
        if detail is None:
            self.hide()
            return
        self.setText(
            f"Not connected to the server ({detail}). This session may have changed meanwhile. "
            "Lines you send are kept and shown as pending; they are sent once the connection is back."
        )
        self.show()
