"""The queue table: the view over a :class:`~repconsole.ui.queuemodel.QueueTableModel`.

Built to stay fast at 100,000 rows: every row is one fixed height (the
vertical header's ``Fixed`` mode with a default section size means Qt never
measures a row), columns have interactive widths (never
``ResizeToContents``, which reads every cell), and sorting goes straight to
the model's Python sort.

Its layout is saved *per column key* (order, width, visibility, sort), like
Picard's, not as opaque ``saveState`` bytes: a layout saved by an older
version restores into a newer one, columns it does not know are ignored,
and new columns get their defaults (:mod:`~repconsole.ui.columnlayout`).
The header neither hides nor moves sections: the model exposes the shown
columns in the rep's order, because Qt's table accessibility reads the
model, and would read hidden columns out and moved ones in model order.
A header the rep drags moves the model's column.

Rows that stay put: while a row is selected, or the pointer is over the
table, a feed batch that inserts, removes or moves rows above it scrolls by
as much as it moved, so the row the rep is looking at (the selected one,
else the one under the pointer) keeps its place on screen.  A double-click
accepts the row the pointer *pressed*, never one that slid there since.
When the row the rep reached for (selected, pressed, or asked to accept)
is taken by another rep, :meth:`QueueTableView.show_lost` says so where it
was, for a few seconds.

Saved layout format (what :meth:`QueueTableView.save_layout` returns and
:class:`repconsole.settings.Settings` stores as ``table``)::

    {"columns": [{"key": "customer", "visible": true, "width": 210}, ...],   # the rep's order
     "sort": {"key": "waited", "order": "desc"}}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QEvent, QItemSelection, QItemSelectionModel, QModelIndex, QPersistentModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableView, QWidget

from repconsole.ui.accessible import CurrentWhileFocused
from repconsole.ui.columnlayout import MAX_COLUMN_WIDTH, MIN_COLUMN_WIDTH, ColumnLayout
from repconsole.ui.columns import DEFAULT_SORT_DESCENDING, DEFAULT_SORT_KEY
from repconsole.ui.queuemodel import QueueTableModel
from repconsole.ui.racenotice import LOST_RACE_SECONDS, RaceNotice
from repconsole.ui.spoken import spoken_sort

__all__ = ["MAX_COLUMN_WIDTH", "MIN_COLUMN_WIDTH", "QueueTableView"]

_ASC = "asc"
_DESC = "desc"
_SELECT_ROW = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
_ACCEPT_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


class QueueTableView(QTableView):
    """A queue's entries: one row each, single selection, sortable, arrangeable.

    Clicking an entry selects it and asks for its details; clicking the
    selected entry again closes the details; selecting another entry
    (mouse or arrow keys) switches the details to it.  Double-click,
    Enter or Return ask to accept the selected entry.  The selection stays
    on the same entry (by row id) through sorting, feed updates and
    :meth:`QueueTableModel.set_rows`.

    Signals:
        acceptRequested(str): accept the entry with this row id.
        detailsToggled(object): show the details of this row id, or close
            the details pane (``None``).

    Attributes:
        details_row_id: the row id whose details the view last asked to
            show, or None when it last asked to close them.
    """

    acceptRequested = Signal(str)
    detailsToggled = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self.details_row_id: str | None = None
        # Where the pointer is over the viewport (None: elsewhere), and the
        # row a press landed on: a double-click accepts that one.
        self._pointer: QPoint | None = None
        self._press_row_id: str | None = None
        # The row kept in place through a model change: (row id, its top in the viewport).
        self._anchor: tuple[str, int] | None = None
        # A scroll range past the last row, while keeping a row in place needs
        # it (a short queue has nothing to scroll); 0 when not needed.
        self._overscroll = 0
        self._sort_before: tuple[str, Qt.SortOrder] | None = None
        # Rows the rep asked to accept, and where reached-for rows were when they vanished.
        self._reaching: list[str] = []
        self._vanished: dict[str, int] = {}
        self._layout_tops: dict[str, int] = {}
        self.lost_notice = RaceNotice(self.viewport(), clock)
        self.viewport().setMouseTracking(True)
        # The rep's columns (order, visibility, widths by key); the model shows them.
        self._layout = ColumnLayout(())
        # True while the view changes columns, sizes or the sort indicator itself (not the rep).
        self._arranging = False
        # The current row is there only while the table has the focus (a screen reader would
        # hear it as focused): the view reads its selection, never its current index.
        self._current_while_focused = CurrentWhileFocused(self)
        self._restoring_selection = False
        self._reselect: str | None = None
        self._closed_by_press: str | None = None

        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setCornerButtonEnabled(False)
        self.setTabKeyNavigation(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSortingEnabled(False)  # the header's indicator drives the model's own sort

        rows = self.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        height = self.fontMetrics().height() + 10
        rows.setMinimumSectionSize(height)
        rows.setDefaultSectionSize(height)

        header = self.horizontalHeader()
        header.setSectionsMovable(True)
        header.setSectionsClickable(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setSortIndicatorShown(True)
        header.setMinimumSectionSize(MIN_COLUMN_WIDTH)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._on_header_customContextMenuRequested)
        header.sortIndicatorChanged.connect(self._on_header_sortIndicatorChanged)
        header.sectionResized.connect(self._on_header_sectionResized)
        header.sectionMoved.connect(self._on_header_sectionMoved)
        self.verticalScrollBar().valueChanged.connect(self._on_vbar_valueChanged)

    # ---------------------------------------------------------------- model

    def queue_model(self) -> QueueTableModel | None:
        model = self.model()
        return model if isinstance(model, QueueTableModel) else None

    def setModel(self, model: QAbstractItemModel | None) -> None:
        """Show ``model`` (a :class:`QueueTableModel`) with the default layout."""
        if model is not None and not isinstance(model, QueueTableModel):
            raise TypeError("QueueTableView shows a QueueTableModel")
        old = self.queue_model()
        if old is not None:
            old.modelAboutToBeReset.disconnect(self._on_model_modelAboutToBeReset)
            old.modelReset.disconnect(self._on_model_modelReset)
            old.layoutChanged.disconnect(self._on_model_layoutChanged)
            old.rowsRemoved.disconnect(self._on_model_rowsRemoved)
            old.layoutAboutToBeChanged.disconnect(self._on_model_layoutAboutToBeChanged)
            old.rowsAboutToBeInserted.disconnect(self._on_model_rowsAboutToChange)
            old.rowsAboutToBeMoved.disconnect(self._on_model_rowsAboutToChange)
            old.rowsInserted.disconnect(self._keep_anchor)
            old.rowsMoved.disconnect(self._keep_anchor)
        super().setModel(model)
        if model is None:
            return
        self._describe_sort()
        model.modelAboutToBeReset.connect(self._on_model_modelAboutToBeReset)
        model.modelReset.connect(self._on_model_modelReset)
        model.layoutChanged.connect(self._on_model_layoutChanged)
        model.rowsRemoved.connect(self._on_model_rowsRemoved)
        model.layoutAboutToBeChanged.connect(self._on_model_layoutAboutToBeChanged)
        model.rowsAboutToBeInserted.connect(self._on_model_rowsAboutToChange)
        model.rowsAboutToBeMoved.connect(self._on_model_rowsAboutToChange)
        model.rowsInserted.connect(self._keep_anchor)
        model.rowsMoved.connect(self._keep_anchor)
        self.selectionModel().selectionChanged.connect(self._on_selection_selectionChanged)
        self._current_while_focused.follow(self.selectionModel())
        self.reset_layout()

    # ------------------------------------------------------------ selection

    def current_row_id(self) -> str | None:
        """The id of the selected entry, or None."""
        model = self.queue_model()
        selection = self.selectionModel()
        if model is None or selection is None:
            return None
        for index in selection.selectedRows():
            row = model.row_for(index)
            if row is not None:
                return row.id
        return None

    def select_row_id(self, row_id: str) -> bool:
        """Select the entry ``row_id`` and scroll to it; False if it is not shown."""
        model = self.queue_model()
        if model is None:
            return False
        index = model.index_for(row_id)
        if not index.isValid():
            return False
        self.selectionModel().setCurrentIndex(index, _SELECT_ROW)
        self.scrollTo(index)
        return True

    def visible_rows(self) -> tuple[int, int]:
        """The first and last row (inclusive) the viewport shows; ``(0, -1)`` when none."""
        model = self.queue_model()
        n = model.rowCount() if model is not None else 0
        if n == 0:
            return (0, -1)
        first = self.rowAt(0)
        last = self.rowAt(self.viewport().height() - 1)
        return (max(first, 0), last if last >= 0 else n - 1)

    def tick(self) -> None:
        """Refresh the time columns of the visible rows, and let a lost-race notice expire (call once a second)."""
        model = self.queue_model()
        if model is not None:
            model.tick(*self.visible_rows())
        self.lost_notice.expire()

    # ------------------------------------------------------ rows that stay

    def _anchor_row_id(self) -> str | None:
        """The row to keep in place: the selected one, else the one under the pointer."""
        row_id = self.current_row_id()
        if row_id is None and self._pointer is not None:
            row_id = self._row_id_at(self.indexAt(self._pointer))
        return row_id

    def _take_anchor(self) -> None:
        model = self.queue_model()
        if model is None or self._anchor is not None:
            return
        row_id = self._anchor_row_id()
        pos = model.position_of(row_id) if row_id is not None else -1
        top = self.rowViewportPosition(pos) if pos >= 0 else -1
        # Only a row on screen is kept in place (so the room ever needed past
        # the last row is less than a screenful).
        if row_id is not None and 0 <= top < self.viewport().height():
            self._anchor = (row_id, top)

    def _keep_anchor(self) -> None:
        """After rows moved: scroll so that the anchored row is where it was."""
        anchor, self._anchor = self._anchor, None
        model = self.queue_model()
        if anchor is None or model is None:
            return
        row_id, top = anchor
        pos = model.position_of(row_id)
        if pos < 0:
            return  # it went: nothing to keep in place
        # Qt lays the view out later; the scroll range must cover the new rows now.
        self.updateGeometries()
        shift = self.rowViewportPosition(pos) - top
        if shift:
            bar = self.verticalScrollBar()
            target = bar.value() + shift
            if target > bar.maximum():
                # Too few rows below to scroll that far: scroll past the last row.
                self._overscroll = target
                bar.setMaximum(target)
            bar.setValue(target)

    def updateGeometries(self) -> None:
        bar = self.verticalScrollBar()
        if not self._overscroll:
            super().updateGeometries()
            return
        # Qt sets the natural range, which would clamp the scroll back into
        # it: keep that clamp quiet, then restore the room and the position.
        value = bar.value()
        blocked = bar.blockSignals(True)
        try:
            super().updateGeometries()
            if self._overscroll > bar.maximum():
                bar.setMaximum(self._overscroll)
            bar.setValue(value)
        finally:
            bar.blockSignals(blocked)
        # The hidden vertical header follows the natural range by itself: put it back with the rows.
        self.verticalHeader().setOffset(bar.value())

    def _on_vbar_valueChanged(self, value: int) -> None:
        # Scrolling back up gives back the room past the last row.
        if self._overscroll and value < self._overscroll:
            natural = max(0, self.verticalHeader().length() - self.viewport().height())
            self._overscroll = value if value > natural else 0
            self.verticalScrollBar().setMaximum(max(natural, self._overscroll))

    def _reached_for(self) -> set[str]:
        """The rows the rep was reaching for: selected, pressed, or asked to accept."""
        ids = set(self._reaching)
        current = self.current_row_id()
        if current is not None:
            ids.add(current)
        if self._press_row_id is not None:
            ids.add(self._press_row_id)
        return ids

    def reach_for(self, row_id: str) -> None:
        """Note that the rep asked to accept ``row_id`` (if another rep takes it, :meth:`show_lost` can say so)."""
        self._reaching = [*self._reaching[-7:], row_id]

    def _on_model_rowsAboutToChange(self) -> None:
        self._take_anchor()

    def _on_model_layoutAboutToBeChanged(self) -> None:
        self._take_anchor()
        model = self.queue_model()
        self._sort_before = (model.sort_key(), model.sort_order()) if model is not None else None
        self._layout_tops = {}
        if model is not None:
            for row_id in self._reached_for():
                pos = model.position_of(row_id)
                if pos >= 0:
                    self._layout_tops[row_id] = self.rowViewportPosition(pos)

    def show_lost(self, row_id: str, text: str, seconds: float = LOST_RACE_SECONDS) -> bool:
        """Show ``text`` where the reached-for row ``row_id`` was; False if the rep was not reaching for it."""
        top = self._vanished.pop(row_id, None)
        self._reaching = [r for r in self._reaching if r != row_id]
        if top is None:
            return False
        self.lost_notice.show_at(row_id, text, top, self.verticalHeader().defaultSectionSize(), seconds)
        return True

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self.lost_notice.follow_scroll(dy)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self._pointer = None
        return super().viewportEvent(event)

    def _set_details(self, row_id: str | None) -> None:
        if row_id != self.details_row_id:
            self.details_row_id = row_id
            self.detailsToggled.emit(row_id)

    def _row_id_at(self, index: QModelIndex) -> str | None:
        model = self.queue_model()
        row = model.row_for(index) if model is not None else None
        return row.id if row is not None else None

    def _on_selection_selectionChanged(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        if self._restoring_selection:
            return
        row_id = self.current_row_id()
        if row_id is None:
            self._set_details(None)
        elif row_id != self.details_row_id:
            self._set_details(row_id)

    def _sync_details(self) -> None:
        """After rows went away: close the details of an entry that is no longer selected."""
        if self.details_row_id is not None and self.details_row_id != self.current_row_id():
            self._set_details(self.current_row_id())

    def rowsAboutToBeRemoved(self, parent: QModelIndex | QPersistentModelIndex, start: int, end: int) -> None:
        # In single selection Qt moves the selection to the next row when the
        # selected one is removed.  When a customer leaves or is taken, the
        # rep should not find another customer's details open instead: the
        # selection goes, and the details with it.
        selection = self.selectionModel()
        model = self.queue_model()
        if model is not None and not parent.isValid():
            if len(self._vanished) > 16:
                self._vanished.clear()
            for row_id in self._reached_for():
                pos = model.position_of(row_id)
                if start <= pos <= end:
                    self._vanished[row_id] = self.rowViewportPosition(pos)
                    if row_id == self._press_row_id:
                        self._press_row_id = None
        self._take_anchor()
        if selection is not None and not parent.isValid():
            doomed = any(start <= index.row() <= end for index in selection.selectedRows())
            current = self.currentIndex()
            if doomed or (current.isValid() and start <= current.row() <= end):
                selection.clear()
        super().rowsAboutToBeRemoved(parent, start, end)

    def _on_model_modelAboutToBeReset(self) -> None:
        self._reselect = self.current_row_id()
        # Another queue (or search): what the rep reached for here is not there.
        self._reaching = []
        self._vanished = {}
        self._press_row_id = None
        self._overscroll = 0
        self.lost_notice.dismiss()

    def _on_model_modelReset(self) -> None:
        row_id, self._reselect = self._reselect, None
        if row_id is not None:
            self._restoring_selection = True
            try:
                self.select_row_id(row_id)
            finally:
                self._restoring_selection = False
        self._sync_details()

    def _on_model_layoutChanged(self) -> None:
        model = self.queue_model()
        tops, self._layout_tops = self._layout_tops, {}
        for row_id, top in tops.items():
            if model is not None and model.position_of(row_id) < 0:
                self._vanished[row_id] = top
        if model is not None and self._sort_before != (model.sort_key(), model.sort_order()):
            self._anchor = None  # a new sort order, not new rows: the selection is scrolled to instead
        self._keep_anchor()
        self._sync_details()

    def _on_model_rowsRemoved(self) -> None:
        self._keep_anchor()
        self._sync_details()

    # ---------------------------------------------------------------- input

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self._pointer = event.position().toPoint()
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._pointer = event.position().toPoint()
        self.lost_notice.dismiss()
        index = self.indexAt(self._pointer)
        row_id = self._row_id_at(index)
        self._press_row_id = row_id
        was_selected = row_id is not None and row_id == self.current_row_id()
        self._closed_by_press = None
        super().mousePressEvent(event)
        if event.button() != Qt.MouseButton.LeftButton or not was_selected or self.current_row_id() != row_id:
            return
        # A click on the entry that was already selected toggles its details.
        if self.details_row_id == row_id:
            self._closed_by_press = row_id
            self._set_details(None)
        else:
            self._set_details(row_id)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseDoubleClickEvent(event)
            return
        # The row the press landed on, not the one under the pointer now: a
        # row may have slid there between the press and the double-click.
        row_id = self._press_row_id
        model = self.queue_model()
        if row_id is None or model is None or model.position_of(row_id) < 0:
            # Nothing pressed, or what was pressed is gone: a press, not an accept.
            self.mousePressEvent(event)
            return
        event.accept()
        self._on_double_click(row_id)

    def _on_double_click(self, row_id: str) -> None:
        if self._closed_by_press == row_id:
            # The first click of this double-click closed the details: undo that.
            self._set_details(row_id)
        self._closed_by_press = None
        self.reach_for(row_id)
        self.acceptRequested.emit(row_id)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in _ACCEPT_KEYS and not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            row_id = self.current_row_id()
            if row_id is not None:
                self.reach_for(row_id)
                self.acceptRequested.emit(row_id)
                event.accept()
                return
        super().keyPressEvent(event)

    # --------------------------------------------------------------- sorting

    def _on_header_sortIndicatorChanged(self, logical: int, order: Qt.SortOrder) -> None:
        model = self.queue_model()
        if model is None or self._arranging:
            return  # the view putting the indicator where the model's sort column is now
        model.sort(logical, order)
        self._describe_sort()
        self._scroll_to_selection()

    def sort_by(self, key: str, descending: bool = False) -> bool:
        """Sort by the column ``key`` (shown or not); False if there is no such column."""
        model = self.queue_model()
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        if model is None or not model.sort_by_key(key, order):
            return False
        self._show_sort_indicator()
        self._describe_sort()
        self._scroll_to_selection()
        return True

    def _scroll_to_selection(self) -> None:
        model = self.queue_model()
        row_id = self.current_row_id()
        if model is not None and row_id is not None:
            self.scrollTo(model.index_for(row_id))

    def sort_from_keyboard(self, key: str) -> bool:
        """Sort by column ``key`` in its natural order, or reverse it when already sorted by it; says so.

        The Sort menu's entries call this (headers take no keyboard focus);
        the new order is announced, politely, to assistive technology.
        """
        model = self.queue_model()
        if model is None or key not in self._layout.columns:
            return False
        if model.sort_key() == key:
            descending = model.sort_order() != Qt.SortOrder.DescendingOrder
        else:
            descending = model.column(key).descending_first
        self.sort_by(key, descending)
        event = QAccessibleAnnouncementEvent(self, self.accessibleDescription())
        event.setPoliteness(QAccessible.AnnouncementPoliteness.Polite)
        QAccessible.updateAccessibility(event)
        return True

    def reverse_sort(self) -> None:
        """Reverse the current sort order (Sort menu)."""
        model = self.queue_model()
        if model is not None:
            self.sort_from_keyboard(model.sort_key())

    def _show_sort_indicator(self) -> None:
        # On the sorted column when it is shown, else none: the model is sorted by a column it does not show.
        model = self.queue_model()
        if model is None:
            return
        self._arranging = True
        try:
            self.horizontalHeader().setSortIndicator(model.sort_column(), model.sort_order())
        finally:
            self._arranging = False

    def _describe_sort(self) -> None:
        # A screen reader reads the table's description with its name: "Queue, sorted by Waiting, descending".
        model = self.queue_model()
        if model is None:
            return
        text = spoken_sort(model.column(model.sort_key()).title, model.sort_order() == Qt.SortOrder.DescendingOrder)
        if self.accessibleDescription() != text:
            self.setAccessibleDescription(text)

    # ---------------------------------------------------------------- layout

    def _arrange(self) -> None:
        """Make the model show the layout's columns, and size them.

        The header never hides or moves a section itself: its sections are
        the model's columns, in order, so what a screen reader reads is
        what the rep sees.
        """
        model = self.queue_model()
        if model is None:
            return
        row_id = self.current_row_id()
        header = self.horizontalHeader()
        self._arranging = True
        self._restoring_selection = True
        try:
            model.set_columns(self._layout.shown())
            for logical, column in enumerate(model.columns):
                header.resizeSection(logical, self._layout.widths[column.key])
            if row_id is not None:
                # A column that came is not in the selected row's selection: select the whole row again.
                self.selectionModel().setCurrentIndex(model.index_for(row_id), _SELECT_ROW)
        finally:
            self._arranging = False
            self._restoring_selection = False
        self._show_sort_indicator()

    def _on_header_sectionMoved(self, logical: int, old: int, new: int) -> None:
        model = self.queue_model()
        if model is None or self._arranging:
            return
        # The rep dragged a header: the model moves the column, and the header goes back to showing it in model order.
        header = self.horizontalHeader()
        shown = [model.columns[header.logicalIndex(visual)].key for visual in range(header.count())]
        self._arranging = True
        try:
            header.moveSection(new, old)
        finally:
            self._arranging = False
        self._layout.arrange(shown)
        self._arrange()

    def _on_header_sectionResized(self, logical: int, old: int, new: int) -> None:
        model = self.queue_model()
        if model is None or self._arranging or new <= 0 or not 0 <= logical < len(model.columns):
            return
        header = self.horizontalHeader()
        if header.stretchLastSection() and logical == len(model.columns) - 1:
            return  # stretched to fill the view, not sized by the rep
        self._layout.widths[model.columns[logical].key] = new

    def column_width(self, key: str) -> int:
        """The width the rep gave column ``key`` (also while hidden or stretched)."""
        if self.queue_model() is None:
            raise LookupError("no model")
        return self._layout.widths[key]

    def is_column_visible(self, key: str) -> bool:
        """Whether column ``key`` is shown (for good or for now)."""
        model = self.queue_model()
        return model is not None and model.column_index(key) >= 0

    def show_column_for_now(self, key: str, shown: bool, at: int = 1) -> None:
        """Show column ``key`` at position ``at`` until called again with ``shown=False``; the saved layout does not change."""
        if self._layout.show_for_now(key, shown, at):
            self._arrange()

    def set_column_visible(self, key: str, visible: bool) -> bool:
        """Show or hide column ``key``.  The last visible column cannot be hidden (returns False)."""
        if self.queue_model() is None or not self._layout.set_visible(key, visible):
            return False
        self._arrange()
        return True

    def reset_layout(self) -> None:
        """Default column order, widths and visibility, and the default sort."""
        self.restore_layout({})

    def save_layout(self) -> dict[str, Any]:
        """The layout per column key, in the rep's order, and the sort (JSON-ready)."""
        model = self.queue_model()
        if model is None:
            return {}
        descending = model.sort_order() == Qt.SortOrder.DescendingOrder
        return {"columns": self._layout.saved(), "sort": {"key": model.sort_key(), "order": _DESC if descending else _ASC}}

    def restore_layout(self, layout: Mapping[str, Any] | None) -> None:
        """Apply a layout from :meth:`save_layout`, however old or damaged (see :meth:`ColumnLayout.from_saved`)."""
        model = self.queue_model()
        if model is None:
            return
        if not isinstance(layout, Mapping):
            layout = {}
        self._layout = ColumnLayout.from_saved(model.all_columns, layout)
        self._arrange()
        sort = layout.get("sort")
        key, descending = DEFAULT_SORT_KEY, DEFAULT_SORT_DESCENDING
        if isinstance(sort, Mapping) and sort.get("key") in self._layout.columns and sort.get("order") in (_ASC, _DESC):
            key, descending = sort["key"], sort["order"] == _DESC
        if not self.sort_by(key, descending):
            self.sort_by(model.all_columns[0].key)

    # ---------------------------------------------------------- column menu

    def column_menu(self) -> QMenu:
        """The header's context menu: a check box per column, and a reset."""
        menu = QMenu(self)
        model = self.queue_model()
        if model is None:
            return menu
        shown = model.columnCount()
        for column in model.all_columns:
            action = menu.addAction(column.title)
            action.setCheckable(True)
            visible = self.is_column_visible(column.key)
            action.setChecked(visible)
            action.setData(column.key)
            if column.description:
                action.setToolTip(column.description)
            if visible and shown <= 1:
                action.setEnabled(False)
            action.toggled.connect(partial(self._on_column_action_toggled, column.key))
        menu.addSeparator()
        reset = menu.addAction("Reset columns")
        reset.triggered.connect(self._on_reset_action_triggered)
        return menu

    def _on_header_customContextMenuRequested(self, pos: QPoint) -> None:
        menu = self.column_menu()
        menu.exec(self.horizontalHeader().mapToGlobal(pos))
        menu.deleteLater()

    def _on_column_action_toggled(self, key: str, checked: bool) -> None:
        self.set_column_visible(key, checked)

    def _on_reset_action_triggered(self) -> None:
        self.reset_layout()
