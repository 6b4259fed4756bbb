"""The "/" list of canned messages in a chat input (issue 14).

Typing ``/`` at the very start of a session's chat input opens a list of the
rep's snippets over the input, filtered by what follows (``/vpn``).  The
focus stays in the input, so it is worked from the keyboard alone: Up and
Down choose, Enter (or Tab) inserts, Esc closes it (it stays closed until
the ``/`` is typed again).  The chosen snippet replaces the ``/…`` with its
text, its placeholders filled in (:func:`repconsole.snippets.fill`); a
placeholder it cannot fill stays as written, in the input, and
:attr:`SnippetCompleter.problem` says which, so the rep fixes it before
sending: nothing is sent by inserting, nothing is lost.

A screen reader hears the choice through the input's accessible
description ("vpn-restart, Networking, 1 of 3: Hi Liam, please…"), which the
completer sets while the list is open and puts back when it closes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QAbstractListModel, QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QFrame, QLabel, QListView, QPlainTextEdit, QVBoxLayout, QWidget

from repconsole.snippets import Snippet, fill, matching

__all__ = ["SnippetCompleter", "SnippetListModel", "SnippetPopup", "describe"]

_ROWS_SHOWN = 7
# The keys the open list takes from the input.
_KEYS = (Qt.Key.Key_Escape, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab)
_Index = QModelIndex | QPersistentModelIndex


def describe(s: Snippet) -> str:
    """A snippet in words, as a screen reader reads a row: ``"vpn-restart, Networking: Hi {customer}, …"``."""
    return f"{s.name}, {s.where}: {s.text}"


class SnippetListModel(QAbstractListModel):
    """The snippets the popup lists: ``/name — first line … (where)``; the whole text as the tooltip."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.snippets: list[Snippet] = []

    def set_snippets(self, snippets: list[Snippet]) -> None:
        self.beginResetModel()
        self.snippets = list(snippets)
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's own signature
        return 0 if parent.isValid() else len(self.snippets)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.snippets) or index.column() != 0:
            return None
        s = self.snippets[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            first = s.text.splitlines()[0] if s.text else ""
            first = first if len(first) <= 70 else first[:69] + "…"
            return f"/{s.name}  —  {first}  ({s.where})"
        if role == Qt.ItemDataRole.ToolTipRole:
            return s.text
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return describe(s)
        if role == Qt.ItemDataRole.UserRole:
            return s
        return None


class SnippetPopup(QFrame):
    """The list over the chat input, and a line that says how to work it (or that nothing matches).

    Attributes:
        view: the list (it never takes the focus: the input keeps it).
        hint: "3 snippets — ↑↓ choose, Enter inserts, Esc closes", or "No snippet matches …".
    """

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("snippetPopup")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setAccessibleName("Canned messages")
        self.model = SnippetListModel(self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setUniformItemSizes(True)
        self.view.setAccessibleName("Canned messages")
        self.hint = QLabel()
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hint)
        self.hide()

    def show_matches(self, snippets: list[Snippet], query: str) -> None:
        self.model.set_snippets(snippets)
        if snippets:
            self.view.setCurrentIndex(self.model.index(0, 0))
            n = len(snippets)
            self.hint.setText(f"{n} snippet{'s' if n != 1 else ''} — ↑↓ choose, Enter inserts, Esc closes")
        else:
            self.hint.setText(f"No snippet matches “{query}” — Esc closes (Console ▸ Canned messages… to add one)")
        self.view.setVisible(bool(snippets))

    def current(self) -> Snippet | None:
        index = self.view.currentIndex()
        value = self.model.data(index, Qt.ItemDataRole.UserRole) if index.isValid() else None
        return value if isinstance(value, Snippet) else None

    def step(self, step: int) -> None:
        """Choose the row ``step`` rows down (up when negative), round the ends."""
        n = self.model.rowCount()
        if n:
            row = (self.view.currentIndex().row() + step) % n
            self.view.setCurrentIndex(self.model.index(row, 0))

    def place_over(self, edit: QWidget) -> None:
        """Just above ``edit``, as wide as it is, tall enough for a few rows."""
        parent = self.parentWidget()
        if parent is None:
            return
        rows = min(_ROWS_SHOWN, max(1, self.model.rowCount())) if self.view.isVisibleTo(self) else 0
        height = rows * (self.view.sizeHintForRow(0) if rows else 0) + self.hint.sizeHint().height() + 12
        top_left = edit.mapTo(parent, edit.rect().topLeft())
        self.setGeometry(top_left.x(), max(0, top_left.y() - height), max(320, edit.width()), height)
        self.raise_()


class SnippetCompleter(QObject):
    """Opens :class:`SnippetPopup` for ``/…`` at the start of ``edit`` and inserts what the rep picks.

    ``snippets()`` and ``values()`` (the placeholders' values) are asked each
    time, so a snippet changed meanwhile, or the customer's new name, counts.

    Signals:
        inserted(str): a snippet's text went into the input (filled in).
        problem(str): what the rep must fix in the inserted text ("" when nothing).
    """

    inserted = Signal(str)
    problem = Signal(str)

    def __init__(
        self,
        edit: QPlainTextEdit,
        snippets: Callable[[], list[Snippet]],
        values: Callable[[], dict[str, str]],
        popup_parent: QWidget,
    ) -> None:
        super().__init__(edit)
        self.edit = edit
        self._snippets = snippets
        self._values = values
        self.popup = SnippetPopup(popup_parent)
        self._dismissed = False  # Esc closed it: closed until the "/" is typed again
        self._description = edit.accessibleDescription()
        edit.installEventFilter(self)
        edit.textChanged.connect(self._on_edit_textChanged)

    @property
    def open(self) -> bool:
        return self.popup.isVisible()

    def query(self) -> str | None:
        """What follows the "/" while the input holds only ``/word`` (None otherwise)."""
        text = self.edit.toPlainText()
        if not text.startswith("/") or any(c.isspace() for c in text):
            return None
        return text[1:]

    def refresh(self) -> None:
        """Open, filter or close the list as the input now reads."""
        query = self.query()
        if query is None:
            self._dismissed = False
        if query is None or self._dismissed:
            self.close()
            return
        if not self.popup.isVisible():
            self._description = self.edit.accessibleDescription()  # put back when it closes
        self.popup.show_matches(matching(self._snippets(), query), query)
        self.popup.show()
        self.popup.place_over(self.edit)
        self._describe()

    def close(self) -> None:
        if self.popup.isVisible():
            self.popup.hide()
            self.edit.setAccessibleDescription(self._description)

    def move(self, step: int) -> None:
        self.popup.step(step)
        self._describe()

    def insert(self, snippet: Snippet | None = None) -> bool:
        """Put ``snippet`` (default: the one chosen) in the input instead of ``/…``; False if there is none."""
        s = snippet or self.popup.current()
        if s is None:
            return False
        text, unknown = fill(s.text, self._values())
        self.close()
        self.edit.setPlainText(text)
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)
        self.inserted.emit(text)
        if unknown:
            names = ", ".join(unknown)
            self.problem.emit(
                f"The snippet “{s.name}” has {'a placeholder' if len(unknown) == 1 else 'placeholders'} this console cannot fill: "
                f"{names}. It is left in the message: replace it before sending ({{customer}}, {{rep}} and {{key}} are filled in)."
            )
        else:
            self.problem.emit("")
        return True

    def _describe(self) -> None:
        s = self.popup.current()
        n = self.popup.model.rowCount()
        if s is None:
            self.edit.setAccessibleDescription(self.popup.hint.text())
        else:
            row = self.popup.view.currentIndex().row() + 1
            self.edit.setAccessibleDescription(f"{describe(s)} ({row} of {n}; Enter inserts, Esc closes)")

    def _on_edit_textChanged(self) -> None:
        self.refresh()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.edit and event.type() == QEvent.Type.ShortcutOverride and self.popup.isVisible():
            # The window's own Esc (close the details pane) must not take the key from the open list.
            assert isinstance(event, QKeyEvent)
            if event.key() in _KEYS:
                event.accept()
                return True
        if watched is self.edit and event.type() == QEvent.Type.KeyPress and self.popup.isVisible():
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key == Qt.Key.Key_Escape:
                self._dismissed = True
                self.close()
                return True
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                self.move(-1 if key == Qt.Key.Key_Up else 1)
                return True
            if key in _KEYS:  # Return, Enter, Tab
                self.insert()  # with nothing matching, nothing happens: "/xyz" is not sent by mistake
                return True
        return super().eventFilter(watched, event)
