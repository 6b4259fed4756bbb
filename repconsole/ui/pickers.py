"""Pick a rep or a team: the Transfer and Share dialogs of a session tab.

Both dialogs list every team and every rep but yourself, with a filter box
on top that takes the keyboard: type to narrow the list (case and accents
do not matter, so "lucia" finds "Lucía"), Up/Down to move, Enter to
confirm.  A rep whose console is not connected is listed greyed out as
"(offline)" and cannot be picked: a session sent there would only wait for
the fallback rules.

The dialogs never talk to a backend.  The session tab opens one, and when
it is accepted reads :meth:`TargetPicker.selected_target` (a queue key such
as ``rep:priya`` or ``team:network``) and, for a transfer,
:meth:`TransferDialog.note` and :meth:`TransferDialog.stay`.
"""

from __future__ import annotations

import html
import unicodedata

from PySide6.QtCore import QEvent, QModelIndex, QObject, QSize, Qt
from PySide6.QtGui import QBrush, QFont, QIcon, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from repconsole.core.engine import CHAT_LIMIT
from repconsole.core.state import ConsoleState
from repconsole.protocol import RepView, SessionView
from repconsole.ui import theme
from repconsole.ui.theme import Role

__all__ = ["ShareDialog", "TargetPicker", "TransferDialog", "fold", "status_icon"]

# How long a transfer note may be: the engine's limit on any chat text.
NOTE_LIMIT = CHAT_LIMIT

_TARGET_ROLE = Qt.ItemDataRole.UserRole
_SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1

# Presence colours, theme roles: the dot, and the word beside the rep.
_STATUS_COLOURS = {
    "available": Role.STATUS_AVAILABLE,
    "busy": Role.STATUS_BUSY,
    "away": Role.STATUS_AWAY,
}


def _children(group: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    return [child for i in range(group.childCount()) if (child := group.child(i)) is not None]


def fold(text: str) -> str:
    """Lower-case ``text`` and strip its accents, for forgiving type-ahead."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def status_icon(status: str, connected: bool = True, size: int = 10) -> QIcon:
    """A small round presence dot: green available, amber busy, grey away, a ring when offline."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if connected:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.colour(_STATUS_COLOURS.get(status, Role.STATUS_OFFLINE)))
        painter.drawEllipse(1, 1, size - 2, size - 2)
    else:
        painter.setPen(theme.colour(Role.STATUS_OFFLINE))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(1, 1, size - 3, size - 3)
    painter.end()
    return QIcon(pixmap)


class TargetPicker(QDialog):
    """A dialog that picks one rep or one team, with type-ahead filtering.

    The base of :class:`TransferDialog` and :class:`ShareDialog`.  Subclasses
    add their own fields below the list with :meth:`_add_field`.

    Signals:
        accepted: inherited from QDialog; emitted when the rep confirms a
            target (the confirm button is disabled until one is picked).

    Attributes:
        filter_edit: the type-ahead box; it has the focus when the dialog opens.
        tree: the list of teams and reps, in two groups.
        buttons: the dialog's button box; its Ok button carries the verb.
        empty_label: says so when the filter matches nothing.
    """

    def __init__(
        self,
        state: ConsoleState,
        *,
        title: str,
        prompt: str,
        verb: str,
        unavailable: dict[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``unavailable`` maps rep ids to the reason they cannot be picked (e.g. "in session")."""
        super().__init__(parent)
        self._state = state
        self._unavailable = dict(unavailable or {})
        self.setWindowTitle(title)
        self.setMinimumSize(QSize(440, 480))

        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(16, 14, 16, 14)
        self._layout.setSpacing(8)

        prompt_label = QLabel(prompt)
        prompt_label.setWordWrap(True)
        self._layout.addWidget(prompt_label)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Type to filter reps and teams")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter_edit_textChanged)
        self.filter_edit.returnPressed.connect(self._on_filter_edit_returnPressed)
        self.filter_edit.installEventFilter(self)
        self._layout.addWidget(self.filter_edit)

        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setItemsExpandable(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setIndentation(12)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.currentItemChanged.connect(self._on_tree_currentItemChanged)
        self.tree.itemActivated.connect(self._on_tree_itemActivated)
        self._layout.addWidget(self.tree, 1)

        self.empty_label = QLabel()
        self.empty_label.setStyleSheet("color: palette(placeholder-text);")
        self.empty_label.hide()
        self._layout.addWidget(self.empty_label)

        self._fields_at = self._layout.count()

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText(verb)
        ok.setDefault(True)
        ok.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._layout.addWidget(self.buttons)

        # Ctrl+Enter confirms from anywhere, including a multi-line note.
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self._on_confirm_shortcut_activated)

        self._teams_group = self._group("Teams")
        self._reps_group = self._group("Reps")
        self._fill()
        row = QSize(0, self.tree.fontMetrics().height() + 10)
        for group in (self._teams_group, self._reps_group):
            group.setSizeHint(0, row)
            for item in _children(group):
                item.setSizeHint(0, row)
        self.tree.expandAll()
        self._select_first_visible()
        self.filter_edit.setFocus()

    # ------------------------------------------------------------ public API

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def selected_target(self) -> str | None:
        """The picked queue key (``rep:<id>`` or ``team:<id>``), or None."""
        item = self.tree.currentItem()
        if item is None or item.isHidden() or not self._pickable(item):
            return None
        target = item.data(0, _TARGET_ROLE)
        return str(target) if target else None

    def select_target(self, target: str) -> bool:
        """Make ``target`` the current pick if it is listed and pickable; clears the filter if it hides it."""
        for item in self._items():
            if item.data(0, _TARGET_ROLE) == target and self._pickable(item):
                if item.isHidden():
                    self.filter_edit.clear()
                self.tree.setCurrentItem(item)
                return True
        return False

    def targets(self) -> list[str]:
        """Every pickable target currently shown (after filtering), in display order."""
        return [str(i.data(0, _TARGET_ROLE)) for i in self._items() if not i.isHidden() and self._pickable(i)]

    # -------------------------------------------------------------- building

    def _add_field(self, widget: QWidget) -> None:
        self._layout.insertWidget(self._fields_at, widget)
        self._fields_at += 1

    def _group(self, title: str) -> QTreeWidgetItem:
        group = QTreeWidgetItem(self.tree, [title.upper(), ""])
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)
        font = QFont(self.tree.font())
        font.setBold(True)
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        group.setFont(0, font)
        group.setForeground(0, self.palette().brush(self.palette().ColorRole.PlaceholderText))
        group.setFirstColumnSpanned(True)
        return group

    def _fill(self) -> None:
        state = self._state
        online = {rid for rid, r in state.reps.items() if r.connected}
        for team in sorted(state.teams.values(), key=lambda t: fold(t.name or t.id)):
            members = [m for m in team.members if m != state.rep_id]
            here = sum(1 for m in members if m in online)
            name = team.name or team.id
            item = QTreeWidgetItem(self._teams_group, [name, f"{here} of {len(members)} online"])
            item.setData(0, _TARGET_ROLE, f"team:{team.id}")
            item.setData(0, _SEARCH_ROLE, fold(f"{name} {team.id}"))
            if team.id in state.my_teams:
                item.setToolTip(0, f"{name} — your team")
            item.setForeground(1, self.palette().brush(self.palette().ColorRole.PlaceholderText))

        def order(rep: RepView) -> tuple[bool, str]:
            return (not rep.connected, fold(rep.name or rep.id))

        for rep in sorted((r for r in state.reps.values() if r.id != state.rep_id), key=order):
            name = rep.name or rep.id
            connected = rep.connected
            status = str(rep.status)
            reason = self._unavailable.get(rep.id)
            if not connected:
                detail = "(offline)"
            elif reason:
                detail = f"({reason})"
            else:
                detail = status.capitalize()
            item = QTreeWidgetItem(self._reps_group, [name, detail])
            item.setIcon(0, status_icon(status, connected))
            item.setData(0, _TARGET_ROLE, f"rep:{rep.id}")
            item.setData(0, _SEARCH_ROLE, fold(f"{name} {rep.id}"))
            teams = ", ".join(state.queue_name(f"team:{t}") for t in rep.teams)
            if teams:
                item.setToolTip(0, f"{name} — {teams}")
            if not connected or reason:
                item.setFlags(Qt.ItemFlag.NoItemFlags)  # drawn in the palette's disabled text colour
            else:
                item.setForeground(1, QBrush(theme.colour(_STATUS_COLOURS.get(status, Role.STATUS_AWAY))))

    def _items(self) -> list[QTreeWidgetItem]:
        return [*_children(self._teams_group), *_children(self._reps_group)]

    @staticmethod
    def _pickable(item: QTreeWidgetItem) -> bool:
        return bool(item.flags() & Qt.ItemFlag.ItemIsSelectable) and item.data(0, _TARGET_ROLE) is not None

    def _select_first_visible(self) -> None:
        for item in self._items():
            if not item.isHidden() and self._pickable(item):
                self.tree.setCurrentItem(item)
                return
        self.tree.setCurrentIndex(QModelIndex())

    # ----------------------------------------------------------------- slots

    def _on_filter_edit_textChanged(self, text: str) -> None:
        needle = fold(text.strip())
        shown = 0
        for group in (self._teams_group, self._reps_group):
            visible = 0
            for item in _children(group):
                match = not needle or needle in str(item.data(0, _SEARCH_ROLE))
                item.setHidden(not match)
                visible += match
            group.setHidden(visible == 0)
            shown += visible
        current = self.tree.currentItem()
        if current is None or current.isHidden() or not self._pickable(current):
            self._select_first_visible()
        if shown == 0:
            self.empty_label.setText(f"No rep or team matches “{text.strip()}”.")
        self.empty_label.setVisible(shown == 0)
        self._on_tree_currentItemChanged(self.tree.currentItem(), None)

    def _on_filter_edit_returnPressed(self) -> None:
        if self.selected_target() is not None:
            self.accept()

    def _on_tree_currentItemChanged(self, current: QTreeWidgetItem | None, previous: QTreeWidgetItem | None) -> None:
        ok = current is not None and not current.isHidden() and self._pickable(current)
        self.ok_button.setEnabled(ok)
        if ok and current is not None:
            current.setSelected(True)

    def _on_tree_itemActivated(self, item: QTreeWidgetItem, column: int) -> None:
        if self._pickable(item):
            self.tree.setCurrentItem(item)
            self.accept()

    def _on_confirm_shortcut_activated(self) -> None:
        if self.selected_target() is not None:
            self.accept()

    # ------------------------------------------------------------ overrides

    def accept(self) -> None:
        if self.selected_target() is None:
            return
        super().accept()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Up, Down, Page Up and Page Down in the filter box move through the list."""
        if watched is self.filter_edit and event.type() == QEvent.Type.KeyPress:
            key = event.key()  # type: ignore[attr-defined]
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
                self._step(key)
                return True
        return super().eventFilter(watched, event)

    def _step(self, key: Qt.Key) -> None:
        """Move the current pick, skipping group headers, hidden and offline rows."""
        candidates = [i for i in self._items() if not i.isHidden() and self._pickable(i)]
        if not candidates:
            return
        current = self.tree.currentItem()
        index = candidates.index(current) if current in candidates else -1
        jump = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1, Qt.Key.Key_PageUp: -8, Qt.Key.Key_PageDown: 8}[key]
        if index < 0:
            index = 0 if jump > 0 else len(candidates) - 1
        else:
            index = max(0, min(len(candidates) - 1, index + jump))
        self.tree.setCurrentItem(candidates[index])
        self.tree.scrollToItem(candidates[index])


class TransferDialog(TargetPicker):
    """Transfer a session to a rep or a team, with a note and the choice to stay.

    Signals:
        accepted: inherited; the rep confirmed a target.

    Attributes:
        note_edit: the note for the receiver, pinned at the top of their tab.
        stay_check: "Stay in the session as a participant".
    """

    def __init__(self, state: ConsoleState, session: SessionView | None = None, parent: QWidget | None = None) -> None:
        customer = (session.customer_name if session else "") or "this customer"
        super().__init__(
            state,
            title="Transfer session",
            prompt=f"Transfer <b>{html.escape(customer)}</b> to a rep or a team. They will see your note pinned above the chat.",
            verb="Transfer",
            parent=parent,
        )
        note_label = QLabel("&Note for the receiver")
        self.note_edit = QPlainTextEdit()
        self.note_edit.setPlaceholderText("What you tried, what the customer needs next…")
        self.note_edit.setTabChangesFocus(True)
        self.note_edit.setFixedHeight(self.note_edit.fontMetrics().lineSpacing() * 4 + 14)
        self.note_edit.textChanged.connect(self._on_note_edit_textChanged)
        note_label.setBuddy(self.note_edit)
        self.stay_check = QCheckBox("S&tay in the session as a participant")
        self._add_field(note_label)
        self._add_field(self.note_edit)
        self._add_field(self.stay_check)

    def note(self) -> str:
        """The note, stripped."""
        return self.note_edit.toPlainText().strip()

    def stay(self) -> bool:
        return self.stay_check.isChecked()

    def _on_note_edit_textChanged(self) -> None:
        text = self.note_edit.toPlainText()
        if len(text) > NOTE_LIMIT:
            self.note_edit.setPlainText(text[:NOTE_LIMIT])
            self.note_edit.moveCursor(self.note_edit.textCursor().MoveOperation.End)


class ShareDialog(TargetPicker):
    """Invite a rep or a team to join a session; the owner keeps it.

    Reps already in the session are listed greyed out as "(in session)".

    Signals:
        accepted: inherited; the rep confirmed a target.
    """

    def __init__(self, state: ConsoleState, session: SessionView | None = None, parent: QWidget | None = None) -> None:
        inside = dict.fromkeys(session.participants, "in session") if session else {}
        if session and session.owner:
            inside[session.owner] = "in session"
        customer = (session.customer_name if session else "") or "this customer"
        super().__init__(
            state,
            title="Share session",
            prompt=f"Invite a rep or a team to join your session with <b>{html.escape(customer)}</b>. You stay the owner.",
            verb="Invite",
            unavailable=inside,
            parent=parent,
        )

