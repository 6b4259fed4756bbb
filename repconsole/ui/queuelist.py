"""The list of queues on the left: Personal, then one entry per team.

Personal's badge reads "waiting / in session": customers waiting for the
rep, and the sessions the rep is working now.

Each team shows a star (gold when it is a favourite; click it to toggle).
When a team chat message arrives unread, an orange chat bubble takes the
star's place until the rep reads the chat.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QAccessible,
    QAccessibleAnnouncementEvent,
    QAccessibleEvent,
    QAction,
    QFont,
    QIcon,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPalette,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from repconsole.core.state import ConsoleState
from repconsole.ui import theme
from repconsole.ui.accessible import CurrentWhileFocused
from repconsole.ui.icons import bubble_icon, person_icon, star_icon
from repconsole.ui.theme import Role

__all__ = ["QueueEntry", "QueueList", "queue_entries"]

_ENTRY_ROLE = int(Qt.ItemDataRole.UserRole) + 1
_ICON = 18
_PAD = 8


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """What the list shows for one queue."""

    key: str  # "rep:<id>" or "team:<id>"
    name: str
    count: int
    team: str | None = None  # team id for a team queue
    favourite: bool = False
    unread: int = 0
    in_session: int | None = None  # Personal only: the rep's sessions in progress

    @property
    def badge(self) -> str:
        return str(self.count) if self.in_session is None else f"{self.count} / {self.in_session}"

    @property
    def spoken(self) -> str:
        """What a screen reader reads for it: "Networking, favourite, 13 waiting, 2 unread team messages"."""
        parts = [self.name]
        if self.favourite:
            parts.append("favourite")
        parts.append(f"{self.count} waiting")
        if self.in_session is not None:
            parts.append(f"{self.in_session} in session")
        if self.unread:
            parts.append(f"{self.unread} unread team message{'s' if self.unread != 1 else ''}")
        return ", ".join(parts)


def queue_entries(state: ConsoleState, favourites: set[str]) -> list[QueueEntry]:
    """What the list shows for ``state``: Personal (waiting / in session), then the rep's teams."""
    st = state
    entries = [QueueEntry(st.personal_queue, "Personal", st.waiting_count(st.personal_queue), in_session=st.in_progress())]
    for team in st.my_teams:
        key = f"team:{team}"
        chat = st.team_chat.get(team)
        unread = chat.unread if chat else 0
        entries.append(QueueEntry(key, st.queue_name(key), st.waiting_count(key), team=team, favourite=team in favourites, unread=unread))
    return entries


class _Delegate(QStyledItemDelegate):
    """Paints icon, name and a count badge; rows are a fixed height."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(option.rect.width(), 30)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        entry: QueueEntry = index.data(_ENTRY_ROLE)
        self.initStyleOption(option, index)
        option.text = ""
        option.icon = QIcon()
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, option.widget)
        rect = option.rect
        icon_rect = QueueList.icon_rect(rect)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if entry.team is None:
            icon = person_icon(selected)
        elif entry.unread:
            icon = bubble_icon(selected)
        else:
            icon = star_icon(entry.favourite, selected)
        icon.paint(painter, icon_rect)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.save()
        font = QFont(option.font)
        if entry.team is None or entry.count:
            font.setBold(True)
        painter.setFont(font)
        painter.setPen(option.palette.color(role))
        badge = entry.badge
        metrics = painter.fontMetrics()
        badge_w = max(22, metrics.horizontalAdvance(badge) + 12)
        text_rect = QRect(icon_rect.right() + _PAD, rect.top(), rect.width() - badge_w - icon_rect.width() - 4 * _PAD, rect.height())
        name = metrics.elidedText(entry.name, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), name)
        badge_rect = QRect(rect.right() - badge_w - _PAD, rect.center().y() - 9, badge_w, 18)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        busy = bool(entry.count or entry.in_session)
        painter.setBrush(theme.colour(Role.COUNT_BADGE if busy else Role.EMPTY_BADGE))
        painter.drawRoundedRect(badge_rect, 9, 9)
        painter.setPen(theme.colour(Role.COUNT_BADGE_TEXT if busy else Role.EMPTY_BADGE_TEXT))
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(badge_rect, int(Qt.AlignmentFlag.AlignCenter), badge)
        painter.restore()


class QueueList(QListWidget):
    """Personal first, then the rep's teams, each with its waiting count.

    Signals:
        queueSelected(str): the rep chose a queue (its key).
        favouriteToggled(str, bool): a team's star was toggled (team id, now favourite).
        teamChatRequested(str): the rep asked for a team's chat (team id).

    Attributes:
        entries: the entries shown, by queue key.
    """

    queueSelected = Signal(str)
    favouriteToggled = Signal(str, bool)
    teamChatRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: dict[str, QueueEntry] = {}
        self.setItemDelegate(_Delegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setAccessibleName("Queues")
        # The current item is there only while the list has the focus (a screen reader
        # would hear it as focused): the selected queue is the selected item.
        self._current_while_focused = CurrentWhileFocused(self)
        self._current_while_focused.follow(self.selectionModel())
        self.itemSelectionChanged.connect(self._on_self_itemSelectionChanged)
        self.itemActivated.connect(self._on_self_itemActivated)
        self.customContextMenuRequested.connect(self._on_self_customContextMenuRequested)
        self._favourite_action = QAction("Toggle &favourite", self)
        self._favourite_action.setShortcut(QKeySequence("Ctrl+D"))
        self._favourite_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self._favourite_action.triggered.connect(self._on_favourite_action_triggered)
        self._chat_action = QAction("Open team &chat", self)
        self._chat_action.setShortcut(QKeySequence("Ctrl+T"))
        self._chat_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self._chat_action.triggered.connect(self._on_chat_action_triggered)
        self.addActions([self._favourite_action, self._chat_action])

    @staticmethod
    def icon_rect(row_rect: QRect) -> QRect:
        return QRect(row_rect.left() + _PAD, row_rect.center().y() - _ICON // 2 + 1, _ICON, _ICON)

    def set_entries(self, entries: list[QueueEntry]) -> None:
        """Show ``entries``; keeps the current queue when it is still there."""
        current = self.current_key()
        keys = [e.key for e in entries]
        if keys != [self.item(i).data(_ENTRY_ROLE).key for i in range(self.count())]:
            self.blockSignals(True)
            self.clear()
            for entry in entries:
                item = QListWidgetItem(entry.name)
                self._show_entry(item, entry)
                self.addItem(item)
            self.blockSignals(False)
        else:
            for i, entry in enumerate(entries):
                item = self.item(i)
                old: QueueEntry = item.data(_ENTRY_ROLE)
                if old != entry:
                    self._show_entry(item, entry)
                    self._tell_change(i, old, entry)
        self.entries = {e.key: e for e in entries}
        if current in self.entries:
            self.select(current)
        elif entries and self.current_key() is None:
            self.select(entries[0].key)

    def current_key(self) -> str | None:
        """The key of the selected queue."""
        items = self.selectedItems()
        return items[0].data(_ENTRY_ROLE).key if items else None

    def select(self, key: str) -> None:
        for i in range(self.count()):
            if self.item(i).data(_ENTRY_ROLE).key == key:
                if self.current_key() != key:
                    self.setCurrentRow(i)
                return

    def _show_entry(self, item: QListWidgetItem, entry: QueueEntry) -> None:
        item.setData(_ENTRY_ROLE, entry)
        item.setToolTip(self._tooltip(entry))
        # The star and the chat bubble are drawn: their meaning is in the text a screen reader reads.
        item.setData(Qt.ItemDataRole.AccessibleTextRole, entry.spoken)

    def _tell_change(self, row: int, old: QueueEntry, new: QueueEntry) -> None:
        """Tell assistive technology that an entry's spoken text changed; a favourite toggled is announced."""
        if old.spoken == new.spoken:
            return
        event = QAccessibleEvent(self, QAccessible.Event.NameChanged)
        event.setChild(row)
        QAccessible.updateAccessibility(event)
        if old.favourite != new.favourite:
            # The rep's own action (Ctrl+D or the star): say that it took effect.
            said = f"{new.name}: {'favourite' if new.favourite else 'no longer a favourite'}"
            announcement = QAccessibleAnnouncementEvent(self, said)
            QAccessible.updateAccessibility(announcement)

    @staticmethod
    def _tooltip(entry: QueueEntry) -> str:
        if entry.team is None:
            return f"Your personal queue: {entry.count} waiting, {entry.in_session or 0} in session"
        parts = [f"{entry.name}: {entry.count} waiting"]
        if entry.unread:
            parts.append(f"{entry.unread} unread team chat message(s) — click the bubble to read")
        else:
            parts.append("Favourite" if entry.favourite else "Click the star to mark as favourite")
        return "\n".join(parts)

    # ------------------------------------------------------------- input

    def mousePressEvent(self, event: QMouseEvent) -> None:
        item = self.itemAt(event.position().toPoint())
        if item is not None and event.button() == Qt.MouseButton.LeftButton:
            entry: QueueEntry = item.data(_ENTRY_ROLE)
            if entry.team is not None and self.icon_rect(self.visualItemRect(item)).adjusted(-4, -4, 4, 4).contains(event.position().toPoint()):
                if entry.unread:
                    self.teamChatRequested.emit(entry.team)
                else:
                    self.favouriteToggled.emit(entry.team, not entry.favourite)
                event.accept()
                return
        super().mousePressEvent(event)

    def _on_self_itemSelectionChanged(self) -> None:
        key = self.current_key()
        if key is not None:
            self.queueSelected.emit(key)

    def _on_self_itemActivated(self, item: QListWidgetItem) -> None:
        entry: QueueEntry = item.data(_ENTRY_ROLE)
        if entry.team is not None:
            self.teamChatRequested.emit(entry.team)

    def _on_self_customContextMenuRequested(self, pos: QPoint) -> None:
        item = self.itemAt(pos)
        if item is None or item.data(_ENTRY_ROLE).team is None:
            return
        self.setCurrentItem(item)
        menu = QMenu(self)
        menu.addAction(self._favourite_action)
        menu.addAction(self._chat_action)
        menu.exec(self.viewport().mapToGlobal(pos))

    def _current_team(self) -> QueueEntry | None:
        entry = self.entries.get(self.current_key() or "")
        return entry if entry is not None and entry.team is not None else None

    def _on_favourite_action_triggered(self) -> None:
        entry = self._current_team()
        if entry is not None and entry.team is not None:
            self.favouriteToggled.emit(entry.team, not entry.favourite)

    def _on_chat_action_triggered(self) -> None:
        entry = self._current_team()
        if entry is not None and entry.team is not None:
            self.teamChatRequested.emit(entry.team)
