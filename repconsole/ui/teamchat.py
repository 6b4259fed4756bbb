"""Team chat: one team's running conversation, for the window's dialog or dock.

The view draws the lines it is given and reports two things: a line the rep
wants to send, and how far the rep has read.  "Read" means the view was on
screen: when it is shown or its window activated with unread lines, and
whenever a line arrives while it is on screen, it emits
:attr:`TeamChatView.readUpTo` with the last line number, so the window can
send ``team_read`` and the team's orange chat bubble goes away.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QFont, QPalette, QShowEvent
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from repconsole.core.state import ConsoleState
from repconsole.protocol import LineView
from repconsole.ui import theme
from repconsole.ui.chatinput import ChatInput
from repconsole.ui.chatlog import ChatLog
from repconsole.ui.theme import Role
from repconsole.ui.widgets import rule

__all__ = ["TeamChatDialog", "TeamChatView"]


class TeamChatView(QWidget):
    """One team's chat: the lines, who is online, and an input to write.

    Signals:
        sendRequested(str): the rep sent a line (stripped, never empty); the
            input is cleared right after.
        readUpTo(int): the rep has seen the team's lines up to this number.
            Emitted only when it moves past what the state already records
            as read.

    Attributes:
        chat_view: the transcript.
        input_edit: the line being written (Enter sends).
        send_button: sends the input.
        members_label: the team's name and how many members are online.
        error_label: an inline error (hidden until :meth:`show_error`).
    """

    sendRequested = Signal(str)
    readUpTo = Signal(int)

    def __init__(
        self, team_id: str, state: ConsoleState, parent: QWidget | None = None, *, enter_sends: Callable[[], bool] = lambda: True
    ) -> None:
        super().__init__(parent)
        self._enter_sends = enter_sends  # the chat.enter_sends preference, read at each key press
        self._team_id = team_id
        self._state = state
        self._reported = 0
        self._divided = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        bar = QWidget()
        bar.setAutoFillBackground(True)
        bar.setBackgroundRole(QPalette.ColorRole.AlternateBase)  # a role: it follows a change of scheme
        bar_layout = QHBoxLayout(bar)
        bar_layout.setContentsMargins(12, 8, 12, 8)
        self.title_label = QLabel()
        bold = QFont(self.font())
        bold.setBold(True)
        self.title_label.setFont(bold)
        self.members_label = QLabel()
        self.members_label.setStyleSheet("color: palette(placeholder-text);")
        bar_layout.addWidget(self.title_label)
        bar_layout.addStretch(1)
        bar_layout.addWidget(self.members_label)
        layout.addWidget(bar)
        layout.addWidget(rule())

        self.chat_view = ChatLog(state)
        layout.addWidget(self.chat_view, 1)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        theme.set_style(self.error_label, "QLabel { background: $error_strip; color: $error_strip_text; padding: 5px 10px; }")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        layout.addWidget(rule())

        chat_input = ChatInput(enter_sends=self._enter_sends)
        chat_input.submitted.connect(self._on_chat_input_submitted)
        self.chat_input = chat_input
        self.input_edit = chat_input.input_edit
        self.send_button = chat_input.send_button
        layout.addWidget(chat_input)

        self.setFocusProxy(self.input_edit)
        self.refresh_members()
        self.reload()
        # A fixed minimum: the error line or a long team name never resizes the window around the view.
        self.setMinimumSize(self.minimumSizeHint().expandedTo(QSize(320, 260)) + QSize(0, 40))

    # ------------------------------------------------------------ public API

    @property
    def team_id(self) -> str:
        return self._team_id

    @property
    def team_name(self) -> str:
        return self._state.queue_name(f"team:{self._team_id}")

    def append_line(self, line: LineView) -> bool:
        """Add a line; one whose ``n`` is already shown is ignored (returns False)."""
        added = self.chat_view.add_line(line)
        if added:
            self._report_read()
        return added

    def reload(self) -> None:
        """Redraw every line from ``state.team_chat``, marking where the unread lines start."""
        chat = self._state.team_chat.get(self._team_id)
        self.chat_view.clear_lines()
        self._divided = False
        if chat is None:
            return
        marked = False
        for line in chat.lines:
            if not marked and chat.last_read and line.n > chat.last_read and line.author != self._state.rep_id:
                self.chat_view.add_divider("New messages", colour=Role.CHAT_NEW)
                marked = self._divided = True
            self.chat_view.add_line(line)
        self._report_read()

    def refresh_members(self) -> None:
        """Redraw the team name and the online count (call when a rep's entry changes)."""
        self.title_label.setText(self.team_name)
        self.input_edit.setPlaceholderText(f"Message to {self.team_name} — Enter to send")
        team = self._state.teams.get(self._team_id)
        members = team.members if team else []
        online = sum(1 for m in members if (rep := self._state.reps.get(m)) is not None and rep.connected)
        self.members_label.setText(f"{len(members)} members · {online} online")
        names = []
        for m in members:
            rep = self._state.reps.get(m)
            suffix = "" if rep is not None and rep.connected else " (offline)"
            names.append(self._state.rep_name(m) + suffix)
        self.members_label.setToolTip("\n".join(names))

    def set_busy(self, busy: bool) -> None:
        """Disable sending while a command is in flight."""
        self.chat_input.set_sendable(not busy)

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    # ----------------------------------------------------------------- reads

    def _on_screen(self) -> bool:
        window = self.window()
        return self.isVisible() and not window.isMinimized()

    def _report_read(self) -> None:
        if not self._on_screen():
            return
        last = self.chat_view.last_n
        chat = self._state.team_chat.get(self._team_id)
        known = max(self._reported, chat.last_read if chat is not None else 0)
        if last > known:
            self._reported = last
            self.readUpTo.emit(last)

    def _has_unread(self) -> bool:
        chat = self._state.team_chat.get(self._team_id)
        return chat is not None and chat.last_read < self.chat_view.last_n and self._reported < self.chat_view.last_n

    # ----------------------------------------------------------------- slots

    def _on_chat_input_submitted(self, text: str) -> None:
        self.clear_error()
        self.sendRequested.emit(text)

    # ------------------------------------------------------------ overrides

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._has_unread() or self._divided:
            self.reload()
        else:
            self._report_read()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ActivationChange, QEvent.Type.WindowStateChange) and self.isActiveWindow():
            self._report_read()

    def sizeHint(self) -> QSize:
        return QSize(520, 560)


class TeamChatDialog(QDialog):
    """A non-modal window around a :class:`TeamChatView`.

    Signals:
        (none of its own; connect to ``dialog.view``'s signals.)

    Attributes:
        view: the team chat view it shows.
    """

    def __init__(
        self, team_id: str, state: ConsoleState, parent: QWidget | None = None, *, enter_sends: Callable[[], bool] = lambda: True
    ) -> None:
        super().__init__(parent)
        self.setModal(False)
        self.view = TeamChatView(team_id, state, self, enter_sends=enter_sends)
        self.setWindowTitle(f"Team chat — {self.view.team_name}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        layout.activate()
        self.resize(self.view.sizeHint())

