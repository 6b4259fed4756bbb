"""The queue table: the view over a :class:`~repconsole.ui.queuemodel.QueueTableModel`.

Built to stay fast at 100,000 rows: every row is one fixed height (the
vertical header's ``Fixed`` mode with a default section size means Qt never
measures a row), columns have interactive widths (never
``ResizeToContents``, which reads every cell), and sorting goes straight to
the model's Python sort.

Its layout is saved *per column key* (order, width, visibility, sort), like
Picard's, not as opaque ``saveState`` bytes: a layout saved by an older
version restores into a newer one, columns it does not know are ignored,
and new columns get their defaults.

Saved layout format (what :meth:`QueueTableView.save_layout` returns and
:class:`repconsole.settings.Settings` stores as ``table``)::

    {"columns": [{"key": "customer", "visible": true, "width": 210}, ...],   # visual order
     "sort": {"key": "waited", "order": "desc"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QItemSelection, QItemSelectionModel, QModelIndex, QPersistentModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableView, QWidget

from repconsole.ui.columns import DEFAULT_SORT_DESCENDING, DEFAULT_SORT_KEY
from repconsole.ui.queuemodel import QueueTableModel

__all__ = ["MAX_COLUMN_WIDTH", "MIN_COLUMN_WIDTH", "QueueTableView"]

MIN_COLUMN_WIDTH = 32
MAX_COLUMN_WIDTH = 2000

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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.details_row_id: str | None = None
        # Natural widths by column key: the stretched last section and
        # hidden sections report a size that is not the rep's choice.
        self._widths: dict[str, int] = {}
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
        self.doubleClicked.connect(self._on_view_doubleClicked)

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
        super().setModel(model)
        self._widths = {}
        if model is None:
            return
        model.modelAboutToBeReset.connect(self._on_model_modelAboutToBeReset)
        model.modelReset.connect(self._on_model_modelReset)
        model.layoutChanged.connect(self._on_model_layoutChanged)
        model.rowsRemoved.connect(self._on_model_rowsRemoved)
        self.selectionModel().selectionChanged.connect(self._on_selection_selectionChanged)
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
        index = model.index_for(row_id, self._first_visible_column())
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
        """Refresh the time columns of the visible rows (call once a second)."""
        model = self.queue_model()
        if model is not None:
            model.tick(*self.visible_rows())

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
        if selection is not None and not parent.isValid():
            doomed = any(start <= index.row() <= end for index in selection.selectedRows())
            current = self.currentIndex()
            if doomed or (current.isValid() and start <= current.row() <= end):
                selection.clear()
        super().rowsAboutToBeRemoved(parent, start, end)

    def _on_model_modelAboutToBeReset(self) -> None:
        self._reselect = self.current_row_id()

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
        self._sync_details()

    def _on_model_rowsRemoved(self) -> None:
        self._sync_details()

    # ---------------------------------------------------------------- input

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        row_id = self._row_id_at(index)
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

    def _on_view_doubleClicked(self, index: QModelIndex) -> None:
        row_id = self._row_id_at(index)
        if row_id is None:
            return
        if self._closed_by_press == row_id:
            # The first click of this double-click closed the details: undo that.
            self._set_details(row_id)
        self._closed_by_press = None
        self.acceptRequested.emit(row_id)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in _ACCEPT_KEYS and not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            row_id = self.current_row_id()
            if row_id is not None:
                self.acceptRequested.emit(row_id)
                event.accept()
                return
        super().keyPressEvent(event)

    # --------------------------------------------------------------- sorting

    def _on_header_sortIndicatorChanged(self, logical: int, order: Qt.SortOrder) -> None:
        model = self.queue_model()
        if model is None:
            return
        model.sort(logical, order)
        current = self.currentIndex()
        if current.isValid():
            self.scrollTo(current)

    def sort_by(self, key: str, descending: bool = False) -> bool:
        """Sort by the column ``key``; False if there is no such column."""
        model = self.queue_model()
        logical = model.column_index(key) if model is not None else -1
        if logical < 0:
            return False
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.horizontalHeader().setSortIndicator(logical, order)
        # setSortIndicator only signals a change; make sure the model follows.
        model.sort(logical, order)  # type: ignore[union-attr]
        return True

    # ---------------------------------------------------------------- layout

    def _first_visible_column(self) -> int:
        header = self.horizontalHeader()
        for visual in range(header.count()):
            logical = header.logicalIndex(visual)
            if not header.isSectionHidden(logical):
                return logical
        return 0

    def _last_visible_column(self) -> int:
        header = self.horizontalHeader()
        for visual in range(header.count() - 1, -1, -1):
            logical = header.logicalIndex(visual)
            if not header.isSectionHidden(logical):
                return logical
        return -1

    def _on_header_sectionResized(self, logical: int, old: int, new: int) -> None:
        model = self.queue_model()
        if model is None or new <= 0 or not 0 <= logical < len(model.columns):
            return
        header = self.horizontalHeader()
        if header.stretchLastSection() and logical == self._last_visible_column():
            return  # stretched to fill the view, not sized by the rep
        self._widths[model.columns[logical].key] = new

    def column_width(self, key: str) -> int:
        """The width the rep gave column ``key`` (also while hidden or stretched)."""
        model = self.queue_model()
        if model is None:
            raise LookupError("no model")
        logical = model.column_index(key)
        if logical < 0:
            raise KeyError(key)
        return self._widths.get(key, model.columns[logical].default_width)

    def is_column_visible(self, key: str) -> bool:
        model = self.queue_model()
        logical = model.column_index(key) if model is not None else -1
        return logical >= 0 and not self.horizontalHeader().isSectionHidden(logical)

    def set_column_visible(self, key: str, visible: bool) -> bool:
        """Show or hide column ``key``.  The last visible column cannot be hidden (returns False)."""
        model = self.queue_model()
        logical = model.column_index(key) if model is not None else -1
        if logical < 0:
            return False
        header = self.horizontalHeader()
        if not visible and not header.isSectionHidden(logical) and header.count() - header.hiddenSectionCount() <= 1:
            return False
        header.setSectionHidden(logical, not visible)
        if visible:
            header.resizeSection(logical, self.column_width(key))
        return True

    def reset_layout(self) -> None:
        """Default column order, widths and visibility, and the default sort."""
        self.restore_layout({})

    def save_layout(self) -> dict[str, Any]:
        """The layout per column key, in visual order, and the sort (JSON-ready)."""
        model = self.queue_model()
        if model is None:
            return {}
        header = self.horizontalHeader()
        columns = []
        for visual in range(header.count()):
            logical = header.logicalIndex(visual)
            key = model.columns[logical].key
            columns.append({"key": key, "visible": not header.isSectionHidden(logical), "width": self.column_width(key)})
        section = header.sortIndicatorSection()
        sort = None
        if 0 <= section < len(model.columns):
            descending = header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
            sort = {"key": model.columns[section].key, "order": _DESC if descending else _ASC}
        return {"columns": columns, "sort": sort}

    def restore_layout(self, layout: Mapping[str, Any] | None) -> None:
        """Apply a layout from :meth:`save_layout`, however old or damaged.

        Unknown column keys and malformed entries are ignored; columns the
        layout does not mention keep their defaults and come after the
        ones it orders.  If it would hide every column, the default
        visibility is used.
        """
        model = self.queue_model()
        if model is None:
            return
        if not isinstance(layout, Mapping):
            layout = {}
        columns = model.columns
        logical_of = {c.key: i for i, c in enumerate(columns)}
        order: list[str] = []
        visible = {c.key: c.default_visible for c in columns}
        widths = {c.key: c.default_width for c in columns}
        entries = layout.get("columns")
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, Mapping):
                continue
            key = entry.get("key")
            if not isinstance(key, str) or key not in logical_of or key in order:
                continue
            order.append(key)
            shown = entry.get("visible")
            if isinstance(shown, bool):
                visible[key] = shown
            width = entry.get("width")
            if isinstance(width, int) and not isinstance(width, bool) and width > 0:
                widths[key] = min(max(width, MIN_COLUMN_WIDTH), MAX_COLUMN_WIDTH)
        order += [c.key for c in columns if c.key not in order]
        if not any(visible.values()):
            visible = {c.key: c.default_visible for c in columns}

        header = self.horizontalHeader()
        for visual, key in enumerate(order):
            current = header.visualIndex(logical_of[key])
            if current != visual:
                header.moveSection(current, visual)
        for key, logical in logical_of.items():
            header.setSectionHidden(logical, not visible[key])
        for key, logical in logical_of.items():
            header.resizeSection(logical, widths[key])
        self._widths = dict(widths)

        sort = layout.get("sort")
        logical = -1
        descending = False
        if isinstance(sort, Mapping) and isinstance(sort.get("key"), str) and sort.get("order") in (_ASC, _DESC):
            logical = logical_of.get(sort["key"], -1)
            descending = sort["order"] == _DESC
        if logical < 0:
            logical = logical_of.get(DEFAULT_SORT_KEY, 0)
            descending = DEFAULT_SORT_DESCENDING if DEFAULT_SORT_KEY in logical_of else False
        self.sort_by(columns[logical].key, descending)

    # ---------------------------------------------------------- column menu

    def column_menu(self) -> QMenu:
        """The header's context menu: a check box per column, and a reset."""
        menu = QMenu(self)
        model = self.queue_model()
        if model is None:
            return menu
        header = self.horizontalHeader()
        shown = header.count() - header.hiddenSectionCount()
        for logical, column in enumerate(model.columns):
            action = menu.addAction(column.title)
            action.setCheckable(True)
            visible = not header.isSectionHidden(logical)
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
