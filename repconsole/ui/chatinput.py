"""The chat input row shared by the session tabs and the team chat."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget

from repconsole.core.engine import CHAT_LIMIT

__all__ = ["ChatInput"]


class ChatInput(QWidget):
    """The chat line being written and its Send button, in a row.

    Enter or the button submits the line, stripped, unless it is blank or
    the button is disabled; the input is cleared right after.

    Signals:
        submitted(str): the rep sent a line (stripped, never empty).

    Attributes:
        input_edit: the line being written (at most the engine's chat limit).
        send_button: sends the input.
    """

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(8, 8, 8, 8)
        self._row.setSpacing(8)
        self.input_edit = QLineEdit()
        self.input_edit.setMaxLength(CHAT_LIMIT)
        self.input_edit.setMinimumHeight(30)
        self.input_edit.returnPressed.connect(self._submit)
        self.send_button = QPushButton("Send")
        self.send_button.setAutoDefault(False)
        self.send_button.setMinimumHeight(30)
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self._on_send_button_clicked)
        self._row.addWidget(self.input_edit, 1)
        self._row.addWidget(self.send_button)
        self.setFocusProxy(self.input_edit)

    def add_option(self, widget: QWidget) -> None:
        """Put ``widget`` (e.g. a check box) between the input and the Send button, also in the Tab order."""
        self._row.insertWidget(self._row.count() - 1, widget)
        QWidget.setTabOrder(widget, self.send_button)

    def _submit(self) -> None:
        if not self.send_button.isEnabled():
            return
        text = self.input_edit.text().strip()
        if not text:
            return
        self.submitted.emit(text)
        self.input_edit.clear()

    def _on_send_button_clicked(self) -> None:
        self._submit()
        self.input_edit.setFocus()
