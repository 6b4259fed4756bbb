"""Console ▸ Canned messages… (Ctrl+Shift+M): the rep's personal and team snippets, to add, edit and delete (issue 14).

The list shows every snippet the rep may insert, personal ones first.  The
form beside it edits the one selected, or a new one ("New").  Personal
snippets are the rep's own (saved in the settings file at once); a team's
can be changed only by a lead of the team (the server says who), and those
of the site file by nobody here: for those the form is read-only and says
why.  A team snippet's change goes to the server, which tells every member
(this dialog too: :meth:`SnippetDialog.reload`); a refusal shows in the
dialog, and the form keeps what the rep typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.protocol import SNIPPET_NAME_LIMIT, SNIPPET_TEXT_LIMIT
from repconsole.snippets import PERSONAL, PLACEHOLDERS, Snippet
from repconsole.ui import theme

__all__ = ["SnippetDialog", "SnippetStore"]


class SnippetStore(Protocol):
    """What the dialog edits through (the window's :class:`~repconsole.ui.snippetdesk.SnippetDesk`)."""

    def all(self) -> list[Snippet]: ...
    def lead_teams(self) -> list[tuple[str, str]]: ...
    def save_personal(self, index: int | None, name: str, text: str) -> None: ...
    def delete_personal(self, index: int) -> None: ...
    def team_add(self, team: str, name: str, text: str) -> Awaitable[Any]: ...
    def team_edit(self, snippet_id: str, name: str, text: str) -> Awaitable[Any]: ...
    def team_delete(self, snippet_id: str) -> Awaitable[Any]: ...


# run(coro, done): runs a server command, then done(its error, or None).
Runner = Callable[[Awaitable[Any], Callable[[BaseException | None], None]], None]


class SnippetDialog(QDialog):
    """List, add, edit and delete canned messages.

    Signals:
        failed(str): a change was refused or could not be saved (also shown in ``error_label``).

    Attributes:
        list: every snippet (personal first); its items hold the :class:`Snippet`.
        where: Personal, or a team the rep leads (for a new snippet only).
        name_edit, text_edit: the snippet's name (what follows "/") and text.
        reason_label: why the snippet shown cannot be changed here ("" when it can).
        error_label: the last refusal or failure.
    """

    failed = Signal(str)

    def __init__(self, store: SnippetStore, run: Runner, parent: QWidget | None = None) -> None:
        """``run(coro, done)`` runs a server command and calls ``done(error or None)`` when it ends."""
        super().__init__(parent)
        self.setWindowTitle("Canned messages")
        self.setAccessibleName("Canned messages")
        self._store = store
        self._run = run
        self._new = False  # the form holds a new snippet, not yet saved
        self._want: tuple[str, str] | None = None  # (team, name) to select once listed

        self.list = QListWidget()
        self.list.setAccessibleName("Your snippets")
        self.list.setMinimumWidth(260)
        self.where = QComboBox()
        self.where.setAccessibleName("Snippet for")
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(SNIPPET_NAME_LIMIT)
        self.name_edit.setAccessibleName("Snippet name (typed after /)")
        self.text_edit = QPlainTextEdit()
        self.text_edit.setTabChangesFocus(True)
        self.text_edit.setAccessibleName("Snippet text")
        help_text = ", ".join(f"{{{k}}} {v}" for k, v in PLACEHOLDERS.items())
        self.text_edit.setToolTip(f"Filled in when inserted: {help_text}")
        self.text_edit.setAccessibleDescription(f"Placeholders filled in when inserted: {help_text}")
        self.help_label = QLabel(f"Placeholders: {help_text}.")
        self.help_label.setWordWrap(True)
        self.reason_label = QLabel()
        self.reason_label.setWordWrap(True)
        theme.set_style(self.reason_label, "color: $notice_text;")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        theme.set_style(self.error_label, "color: $error_text;")
        self.new_button = QPushButton("&New")
        self.save_button = QPushButton("&Save")
        self.delete_button = QPushButton("&Delete")
        for b in (self.new_button, self.save_button, self.delete_button):
            b.setAutoDefault(False)

        form = QFormLayout()
        form.addRow("&For:", self.where)
        form.addRow("N&ame:", self.name_edit)
        form.addRow("&Text:", self.text_edit)
        right = QVBoxLayout()
        right.addLayout(form, 1)
        right.addWidget(self.help_label)
        right.addWidget(self.reason_label)
        right.addWidget(self.error_label)
        row = QHBoxLayout()
        row.addWidget(self.new_button)
        row.addStretch(1)
        row.addWidget(self.delete_button)
        row.addWidget(self.save_button)
        right.addLayout(row)
        body = QHBoxLayout()
        body.addWidget(self.list, 1)
        body.addLayout(right, 2)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        outer = QVBoxLayout(self)
        outer.addLayout(body, 1)
        outer.addWidget(close)
        # Sized once, with room for the reason and error lines: they come and go and must not change
        # the dialog's size constraints once shown.
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.setMinimumSize(720, 440)
        self.resize(760, 460)

        self.list.currentRowChanged.connect(self._on_list_currentRowChanged)
        self.new_button.clicked.connect(self.start_new)
        self.save_button.clicked.connect(self.save)
        self.delete_button.clicked.connect(self.delete)
        self.reload()

    # ------------------------------------------------------------ showing

    def reload(self, select: tuple[str, str] | None = None) -> None:
        """List the snippets as they are now; keep the one selected (or select ``select``: (team, name))."""
        if select is not None:
            self._want = select  # a team's change shows once the server's new list has it
        current = self.selected()
        keep = self._want or ((current.team, current.name) if current is not None else None)
        where = self.where.currentData()
        self.list.blockSignals(True)
        self.list.clear()
        for s in self._store.all():
            suffix = "" if s.editable else " (read-only)"
            item = QListWidgetItem(f"/{s.name} — {s.where}{suffix}")
            item.setData(Qt.ItemDataRole.UserRole, s)
            item.setToolTip(s.text)
            self.list.addItem(item)
        self.list.blockSignals(False)
        rows = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
        found = next((i for i, s in enumerate(rows) if keep and (s.team, s.name) == keep), None)
        row = found if found is not None else (0 if rows and not self._new else -1)
        if found is not None and keep == self._want:
            self._want = None
        self.where.clear()
        self.where.addItem("Personal", PERSONAL)
        for team, name in self._store.lead_teams():
            self.where.addItem(f"Team: {name}", team)
        self.where.setCurrentIndex(max(0, self.where.findData(where)))  # a new one's choice survives a reload
        if self._new:
            self._show_form(None)
        else:
            self.list.setCurrentRow(row)
            self._show_form(self.selected())

    def selected(self) -> Snippet | None:
        item = self.list.currentItem()
        value = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return value if isinstance(value, Snippet) else None

    def _on_list_currentRowChanged(self, _row: int) -> None:
        self._new = False
        self.error_label.clear()
        self._show_form(self.selected())

    def _show_form(self, s: Snippet | None) -> None:
        editable = s is None or s.editable
        if s is not None:
            self.name_edit.setText(s.name)
            self.text_edit.setPlainText(s.text)
            index = self.where.findData(s.team)
            if index < 0:
                self.where.addItem(f"Team: {s.where}", s.team)
                index = self.where.count() - 1
            self.where.setCurrentIndex(index)
        self.where.setEnabled(self._new)  # a snippet stays where it was made
        self.name_edit.setReadOnly(not editable)
        self.text_edit.setReadOnly(not editable)
        self.save_button.setEnabled(editable)
        self.delete_button.setEnabled(s is not None and s.editable)
        self.reason_label.setText(s.why_not if s is not None else "")
        self.reason_label.setVisible(s is not None and bool(s.why_not))

    # ------------------------------------------------------------ changing

    def start_new(self) -> None:
        """An empty form for a new snippet (Personal unless the rep picks a team they lead)."""
        self._new = True
        self.list.clearSelection()
        self.list.setCurrentRow(-1)
        self._new = True
        self.name_edit.clear()
        self.text_edit.clear()
        self.where.setCurrentIndex(0)
        self.error_label.clear()
        self._show_form(None)
        self.name_edit.setFocus()

    def _fail(self, text: str) -> None:
        self.error_label.setText(text)
        self.failed.emit(text)

    def save(self) -> None:
        """Save the form: a new snippet, or the one selected changed."""
        name, text = self.name_edit.text().strip(), self.text_edit.toPlainText().strip()
        if not name or not text:
            self._fail("A snippet needs a name and a text.")
            return
        if len(text) > SNIPPET_TEXT_LIMIT:
            self._fail(f"The text is {len(text):,} characters: at most {SNIPPET_TEXT_LIMIT:,}.")
            return
        s = None if self._new else self.selected()
        team = self.where.currentData() if s is None else s.team
        if s is not None and not s.editable:
            self._fail(s.why_not)
            return
        self.error_label.clear()
        if team == PERSONAL:
            index = None if s is None else self._personal_index(s)
            try:
                self._store.save_personal(index, name, text)
            except (OSError, ValueError) as exc:
                self._fail(f"Could not save the snippet: {exc}")
                return
            self._new = False
            self.reload(select=(PERSONAL, name))
        elif s is None:
            self._call(self._store.team_add(team, name, text), (team, name))
        else:
            self._call(self._store.team_edit(s.id, name, text), (team, name))

    def delete(self) -> None:
        """Delete the snippet selected (personal: at once; a team's: on the server)."""
        s = self.selected()
        if s is None or not s.editable:
            return
        self.error_label.clear()
        if s.personal:
            try:
                self._store.delete_personal(self._personal_index(s))
            except OSError as exc:
                self._fail(f"Could not save the change: {exc}")
                return
            self.reload()
        else:
            self._call(self._store.team_delete(s.id), None)

    def _personal_index(self, s: Snippet) -> int:
        personal = [x for x in self._store.all() if x.personal]
        return next(i for i, x in enumerate(personal) if x.name == s.name and x.text == s.text)

    def _call(self, coro: Awaitable[Any], select: tuple[str, str] | None) -> None:
        def done(error: BaseException | None) -> None:
            if error is not None:
                self._fail(str(getattr(error, "detail", error)))  # the form keeps what was typed
            else:
                self._new = False
                self.reload(select=select)

        self._run(coro, done)
