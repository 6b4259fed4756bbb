"""The chat input shared by the session tabs and the team chat: multi-line, never cut."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from repconsole.core.engine import CHAT_LIMIT
from repconsole.ui.accessible import quiet_viewport

__all__ = ["COUNT_FROM", "ChatEdit", "ChatInput"]

# The character count shows from here on: far from the limit it is noise.
COUNT_FROM = CHAT_LIMIT - 500
_MAX_LINES = 6  # the input grows with its text up to this many lines, then scrolls


class ChatEdit(QPlainTextEdit):
    """A multi-line plain-text input where Enter sends, or adds a line.

    With ``enter_sends()`` true: Enter sends, Shift+Enter adds a line.  False:
    Enter adds a line, Shift+Enter sends.  Ctrl+Enter always sends.  The
    choice is asked for at each key press, so a changed preference applies
    at once.

    Signals:
        sendPressed(): the rep pressed the key that sends.
    """

    sendPressed = Signal()

    def __init__(self, enter_sends: Callable[[], bool], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._enter_sends = enter_sends
        self.setTabChangesFocus(True)
        quiet_viewport(self)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def text(self) -> str:
        return self.toPlainText()

    def setText(self, text: str) -> None:  # QLineEdit's name, which callers and tests use
        self.setPlainText(text)
        self.moveCursor(self.textCursor().MoveOperation.End)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers()
            shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
            ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
            if ctrl or shift != self._enter_sends():
                self.sendPressed.emit()
                return
            # A new line; the modifier-free insert (Shift+Enter would insert a line separator).
            self.insertPlainText("\n")
            return
        super().keyPressEvent(event)

    def _fit(self) -> None:
        # Grow with the text, one to _MAX_LINES lines, so a long message stays readable.
        lines = max(1, min(_MAX_LINES, int(self.document().size().height()) or 1))
        line_height = self.fontMetrics().lineSpacing()
        margins = self.contentsMargins()
        frame = int(self.document().documentMargin() * 2) + margins.top() + margins.bottom() + 2 * self.frameWidth() + 2
        self.setFixedHeight(max(30, lines * line_height + frame))


class ChatInput(QWidget):
    """The message being written, its Send button and its character count.

    Enter (or Shift+Enter, by preference) or the button submits the text,
    stripped, unless it is blank, longer than the chat limit, or sending is
    not allowed; the input is cleared right after.  Nothing is ever cut:
    over the limit, the count says by how much and Send is disabled.

    Signals:
        submitted(str): the rep sent a message (stripped, never empty, never over the limit).

    Attributes:
        input_edit: the message being written.
        send_button: sends the input.
        count_label: "3,612 / 4,000", shown near and over the limit.
    """

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, enter_sends: Callable[[], bool] = lambda: True) -> None:
        super().__init__(parent)
        self._sendable = True
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.setSpacing(2)
        self._row = QHBoxLayout()
        self._row.setSpacing(8)
        outer.addLayout(self._row)
        self.input_edit = ChatEdit(enter_sends)
        self.input_edit.sendPressed.connect(self._submit)
        self.input_edit.textChanged.connect(self._on_input_edit_textChanged)
        self.send_button = QPushButton("Send")
        self.send_button.setAutoDefault(False)
        self.send_button.setMinimumHeight(30)
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self._on_send_button_clicked)
        self._row.addWidget(self.input_edit, 1)
        self._row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.count_label = QLabel()
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.count_label.hide()
        outer.addWidget(self.count_label)
        # No focus proxy: Qt then reports this box as focused too (two focused
        # objects to a screen reader), and a proxy in the Tab chain skips widgets.

    def add_option(self, widget: QWidget) -> None:
        """Put ``widget`` (e.g. a check box) between the input and the Send button, also in the Tab order."""
        self._row.insertWidget(self._row.count() - 1, widget, 0, Qt.AlignmentFlag.AlignBottom)
        QWidget.setTabOrder(widget, self.send_button)

    def set_sendable(self, sendable: bool) -> None:
        """Whether the owner lets the rep send now (the length is checked here too)."""
        self._sendable = sendable
        self._update_send()

    def over_limit(self) -> int:
        """How many characters the stripped text is over the chat limit (0 if within)."""
        return max(0, len(self.input_edit.text().strip()) - CHAT_LIMIT)

    def _update_send(self) -> None:
        self.send_button.setEnabled(self._sendable and not self.over_limit())

    def _on_input_edit_textChanged(self) -> None:
        size = len(self.input_edit.text().strip())
        over = size - CHAT_LIMIT
        if over > 0:
            self.count_label.setText(f"{size:,} / {CHAT_LIMIT:,} — {over:,} too many: shorten the message to send it")
            self.count_label.setForegroundRole(QPalette.ColorRole.WindowText)
            self.count_label.setStyleSheet("font-weight: 600;")
        else:
            self.count_label.setText(f"{size:,} / {CHAT_LIMIT:,}")
            self.count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            self.count_label.setStyleSheet("")
        self.count_label.setVisible(size >= COUNT_FROM)
        self._update_send()

    def _submit(self) -> None:
        if not self.send_button.isEnabled():
            return
        text = self.input_edit.text().strip()
        if not text or len(text) > CHAT_LIMIT:
            return
        self.submitted.emit(text)
        self.input_edit.clear()

    def _on_send_button_clicked(self) -> None:
        self._submit()
        self.input_edit.setFocus()
