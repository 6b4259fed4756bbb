"""The table model of one queue, or of a search across queues.

A Python list of :class:`~repconsole.core.state.Row` objects, always sorted.  There
is no ``QSortFilterProxyModel``: at 100,000 rows a proxy sort makes half a
million Python ``data()`` calls.  Here a sort is a ``list.sort`` over cached
sort keys, announced with one layout change that moves the persistent
indexes (selection, current row) along, and makes no ``data()`` call.

Keeping the order:

* every row's sort key for the sorted column is cached (per column, for
  the last few columns sorted by; built with the column's bulk key
  function), so sorting again by a column costs one C-level ``list.sort``;
* ties are in *canonical* order (arrival time, then row id), which the
  model keeps as a second list so that a stable sort reproduces it;
* a batch from the feed (:meth:`QueueTableModel.apply`) puts each new or
  changed row at its sorted position by binary search.  A small batch is
  announced precisely (rows inserted / removed / moved, one changed row's
  cells); past :data:`PRECISE_LIMIT` row operations one layout change is
  cheaper than hundreds of precise signals, each of which costs the view
  O(rows).

Columns: the model exposes only the columns the rep shows, in the order
shown (:meth:`QueueTableModel.set_columns`), rather than every column with
the header hiding some and moving others.  Qt's table accessibility reads
the model, not the header: a hidden column would still be read out, and
moved ones in the wrong order.  Which columns there are is
:attr:`QueueTableModel.all_columns`; the sort is by a column of those, shown
or not.

Painting: non-live cells' text is cached per row object (a changed row is a
new object, so the cache cannot go stale), roles are compared with plain
ints, and unused roles cost one comparison chain.  Time columns are
recomputed at paint time; :meth:`QueueTableModel.tick` repaints them for the
visible rows only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import compress, filterfalse
from operator import is_
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from repconsole.core.model import Priority
from repconsole.core.state import QueueDelta, Row, RowKind
from repconsole.ui import theme
from repconsole.ui.columns import (
    CENTER,
    DEFAULT_SORT_DESCENDING,
    DEFAULT_SORT_KEY,
    RIGHT,
    Column,
    QueueNameFn,
    RepNameFn,
    canonical_key,
    column_index,
    make_columns,
)
from repconsole.ui.icons import bubble_icon
from repconsole.ui.spoken import BLANK, spoken_row
from repconsole.ui.theme import Role

__all__ = ["PRECISE_LIMIT", "ROW_ID_ROLE", "QueueTableModel"]

# Role numbers as plain ints: ``Qt.ItemDataRole.DisplayRole`` is an
# attribute lookup on an enum (~4 µs); a module constant is free, and
# data() runs ~7 times per visible cell on every repaint.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole.value)
_FONT = int(Qt.ItemDataRole.FontRole.value)
_DECORATION = int(Qt.ItemDataRole.DecorationRole.value)
_USER = int(Qt.ItemDataRole.UserRole.value)
_INITIAL_SORT = int(Qt.ItemDataRole.InitialSortOrderRole.value)
_A11Y_TEXT = int(Qt.ItemDataRole.AccessibleTextRole.value)
_A11Y_DESCRIPTION = int(Qt.ItemDataRole.AccessibleDescriptionRole.value)

ROW_ID_ROLE = _USER
"""``index.data(ROW_ID_ROLE)`` is the row id."""

_HORIZONTAL = Qt.Orientation.Horizontal
_DESCENDING = Qt.SortOrder.DescendingOrder
_ASCENDING = Qt.SortOrder.AscendingOrder
_VERTICAL_SORT = QAbstractItemModel.LayoutChangeHint.VerticalSortHint
# The overload of layout(AboutToBe)Changed that carries a hint: a hinted
# vertical change leaves the horizontal header (column sizes, order,
# hidden columns) alone.
_WITH_HINT = "QList<QPersistentModelIndex>,QAbstractItemModel::LayoutChangeHint"
_ROOT = QModelIndex()
_DISPLAY_ONLY = [_DISPLAY]
_ALL_ROLES: list[int] = []

_VCENTER = Qt.AlignmentFlag.AlignVCenter
_ALIGNMENTS = {
    RIGHT: int((Qt.AlignmentFlag.AlignRight | _VCENTER).value),
    CENTER: int((Qt.AlignmentFlag.AlignHCenter | _VCENTER).value),
}
_ALIGN_LEFT = int((Qt.AlignmentFlag.AlignLeft | _VCENTER).value)

_INVITATION = RowKind.INVITATION
_URGENT = int(Priority.URGENT)

# The row colours are theme roles (light or dark), looked up at each call:
# a scheme change repaints the table with the new ones.

PRECISE_LIMIT = 128
"""Row operations in one batch above which :meth:`QueueTableModel.apply`
announces a single layout change instead of precise insert/remove/move
signals.  Measured with a shown view at 10,000 and 100,000 rows: precise
signals cost the view about 50 µs per operation at 100,000 rows, a layout
change 5-10 ms flat; they break even between 100 and 300 operations."""

# Sort key caches kept, in keys (rows x columns): every column up to ~33,000
# rows, the last six columns sorted by at 100,000 rows (~10 MB each there).
_KEY_CACHE_BUDGET = 600_000
_KEY_CACHE_MIN_COLUMNS = 2
_is_none = partial(is_, None)


class _SortKeys:
    """One column's sort key for every row, and the rows whose key is empty."""

    __slots__ = ("empty", "fn", "keys")

    def __init__(self, column: Column, rows: list[Row]) -> None:
        self.fn = column.sort_key
        keys = column.sort_keys(rows)
        self.keys: dict[Row, Any] = dict(zip(rows, keys, strict=False))
        self.empty: set[Row] = set(compress(rows, map(_is_none, keys)))

    def add(self, row: Row) -> None:
        k = self.keys[row] = self.fn(row)
        if k is None:
            self.empty.add(row)

    def discard(self, row: Row) -> None:
        if self.keys.pop(row, 0) is None:
            self.empty.discard(row)


def _merge(base: list[Row], items: Sequence[Row], positions: Sequence[int]) -> list[Row]:
    """``base`` with ``items[i]`` inserted before ``base[positions[i]]`` (positions non-decreasing)."""
    out: list[Row] = []
    prev = 0
    for pos, item in zip(positions, items, strict=False):
        if pos > prev:
            out += base[prev:pos]
            prev = pos
        out.append(item)
    out += base[prev:]
    return out


class QueueTableModel(QAbstractTableModel):
    """The rows of one queue (or search results), sorted, as a Qt table model.

    Signals:
        Only those of ``QAbstractTableModel``.  Sorting and large batches
        emit ``layoutAboutToBeChanged``/``layoutChanged`` with
        ``VerticalSortHint`` (rows moved, columns untouched); small batches
        emit ``rowsInserted``/``rowsRemoved``/``rowsMoved`` and
        ``dataChanged`` for exactly the rows they touch; :meth:`tick` emits
        ``dataChanged`` for the time columns of the rows it is given.

    Attributes:
        all_columns: every column the table offers, in their default order.
        columns: the columns the model exposes, in order: model column
            ``i`` is ``columns[i]``.  All of them until :meth:`set_columns`.
        clock: returns "now" on the engine's clock; time columns use it.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rep_name: RepNameFn | None = None,
        queue_name: QueueNameFn | None = None,
        columns: Sequence[Column] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.all_columns: tuple[Column, ...] = tuple(columns) if columns is not None else make_columns(rep_name, queue_name)
        if not self.all_columns:
            raise ValueError("a queue table needs at least one column")
        self._by_key = {c.key: c for c in self.all_columns}
        self.clock = clock
        self._rep_name: RepNameFn = rep_name if rep_name is not None else (lambda rep_id: rep_id or "")
        self._queue_name: QueueNameFn = queue_name if queue_name is not None else str
        self._rows: list[Row] = []  # display order
        self._canon: list[Row] = []  # canonical order: (created_at, id)
        self._by_id: dict[str, Row] = {}
        self._cells: dict[Row, list[str | None]] = {}
        self._expose(self.all_columns)
        self._caches: dict[str, _SortKeys] = {}
        default = self._by_key.get(DEFAULT_SORT_KEY)
        self._sort: Column = default if default is not None else self.all_columns[0]
        self._desc = DEFAULT_SORT_DESCENDING if default is not None else False
        self._sk = self._sort_keys(self._sort)
        self._italic: QFont | None = None
        self._bold: QFont | None = None
        self.typing: set[str] = set()  # sessions whose customer is typing: see set_typing

    # ------------------------------------------------------------ Qt model

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else self._ncols

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        r = index.row()
        if r < 0:
            return None
        if role == _DISPLAY:
            c = index.column()
            row = self._rows[r]
            if self._live[c]:
                return self._display[c](row, self.clock())
            cells = self._cells.get(row)
            if cells is None:
                cells = self._cells[row] = [None] * self._ncols
            text = cells[c]
            if text is None:
                text = cells[c] = self._display[c](row, 0.0)
            return text
        if role == _ALIGN:
            return self._align[index.column()]
        if role == _FOREGROUND:
            row = self._rows[r]
            if row.kind is _INVITATION:
                return theme.colour(Role.INVITATION_TEXT)
            s = row.session
            if s.held:
                return theme.colour(Role.HELD_TEXT)
            if s.overdue and index.column() == self._time_left_col:
                return theme.colour(Role.OVERDUE_TEXT)
            return None
        if role == _BACKGROUND:
            return theme.colour(Role.OVERDUE_ROW) if self._rows[r].session.overdue else None
        if role == _FONT:
            return self._font(self._rows[r], index.column())
        if role == _USER:
            return self._rows[r].id
        if role == _TOOLTIP:
            c = index.column()
            if not self._tooltip[c]:
                return None
            return self.data(index, _DISPLAY) or None
        # Asked only while assistive technology reads the table, never to paint:
        # a blank cell reads "none", and every cell of a row describes the row.
        if role == _A11Y_TEXT:
            return self.data(index, _DISPLAY) or BLANK
        if role == _A11Y_DESCRIPTION:
            return self.spoken_row(r) + (", typing" if self._rows[r].session.id in self.typing else "")
        if role == _DECORATION and index.column() == self._customer_col and self._rows[r].session.id in self.typing:
            return bubble_icon()
        return None

    def set_typing(self, session_id: str, typing: bool) -> None:
        """Mark the row of ``session_id`` "the customer is typing" (a bubble by the name: issue 14), or not."""
        if (session_id in self.typing) == typing:
            return
        (self.typing.add if typing else self.typing.discard)(session_id)
        index = self.index_for(session_id, max(self._customer_col, 0))
        if index.isValid():
            self.dataChanged.emit(index, index, [_DECORATION])

    def spoken_row(self, position: int) -> str:
        """Row ``position`` in one sentence, for a screen reader ("Liam Smith, waiting 26 minutes, Networking, urgent")."""
        return spoken_row(self._rows[position], self.clock(), self._queue_name, self._rep_name)

    def _font(self, row: Row, c: int) -> QFont | None:
        if row.kind is _INVITATION:
            if self._italic is None:
                self._italic = QFont()
                self._italic.setItalic(True)
            return self._italic
        s = row.session
        if (c == self._time_left_col and s.overdue) or (c == self._priority_col and s.priority == _URGENT):
            if self._bold is None:
                self._bold = QFont()
                self._bold.setBold(True)
            return self._bold
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != _HORIZONTAL:
            # The vertical header is hidden; assistive technology reads its
            # sections as the rows' names.
            if role in (_DISPLAY, _A11Y_TEXT) and 0 <= section < len(self._rows):
                return self.spoken_row(section)
            return None
        if not 0 <= section < self._ncols:
            return None
        column = self.columns[section]
        if role == _DISPLAY:
            return column.title
        if role == _TOOLTIP:
            return column.description or column.title
        if role == _INITIAL_SORT:
            return (_DESCENDING if column.descending_first else _ASCENDING).value
        return None

    def sort(self, column: int, order: Qt.SortOrder = _ASCENDING) -> None:
        """Sort by the shown ``column`` in Python; persistent indexes follow their rows.

        Makes no ``data()`` call.  Sorting by the current column and order
        does nothing.
        """
        if 0 <= column < self._ncols:
            self.sort_by_key(self.columns[column].key, order)

    def sort_by_key(self, key: str, order: Qt.SortOrder = _ASCENDING) -> bool:
        """Sort by the column ``key``, shown or not; False if there is no such column."""
        column = self._by_key.get(key)
        if column is None:
            return False
        desc = order == _DESCENDING
        if column is self._sort and desc == self._desc:
            return True
        with self._reordering():
            self._sort, self._desc = column, desc
            self._sk = self._sort_keys(column)
            self._rows = self._sorted()
        return True

    def set_columns(self, keys: Iterable[str]) -> None:
        """Expose exactly the columns ``keys``, in this order (unknown keys are ignored).

        Columns come, go and move with precise column signals, so a view
        keeps its rows, scroll position and the cells' accessibility
        objects; rows, their order and the sort do not change.
        """
        target: list[Column] = []
        for key in keys:
            column = self._by_key.get(key)
            if column is not None and column not in target:
                target.append(column)
        if not target:
            raise ValueError("a queue table shows at least one column")
        wanted = set(target)
        shown = list(self.columns)
        for i in range(len(shown) - 1, -1, -1):
            if shown[i] not in wanted:
                self.beginRemoveColumns(_ROOT, i, i)
                del shown[i]
                self._expose(shown)
                self.endRemoveColumns()
        # Left to right, the columns before ``p`` are in place: each step moves or inserts one.
        for p, column in enumerate(target):
            if p < len(shown) and shown[p] is column:
                continue
            if column in shown:
                q = shown.index(column)
                self.beginMoveColumns(_ROOT, q, q, _ROOT, p)
                shown.insert(p, shown.pop(q))
                self._expose(shown)
                self.endMoveColumns()
            else:
                self.beginInsertColumns(_ROOT, p, p)
                shown.insert(p, column)
                self._expose(shown)
                self.endInsertColumns()

    # ------------------------------------------------------------- reading

    def column(self, key: str) -> Column:
        """The column ``key`` of :attr:`all_columns`, shown or not (KeyError if there is none)."""
        return self._by_key[key]

    def sort_key(self) -> str:
        """The key of the column the rows are sorted by (which may not be shown)."""
        return self._sort.key

    def sort_column(self) -> int:
        """The model column the rows are sorted by, or -1 when that column is not shown."""
        return column_index(self.columns, self._sort.key)

    def sort_order(self) -> Qt.SortOrder:
        return _DESCENDING if self._desc else _ASCENDING

    def column_index(self, key: str) -> int:
        """The model column of ``key``, or -1 when it is not shown."""
        return column_index(self.columns, key)

    def row_at(self, position: int) -> Row:
        return self._rows[position]

    def row_for(self, index: QModelIndex | QPersistentModelIndex) -> Row | None:
        """The row an index points at, or None for an invalid index."""
        if not index.isValid() or index.model() is not self:
            return None
        r = index.row()
        return self._rows[r] if 0 <= r < len(self._rows) else None

    def row_by_id(self, row_id: str) -> Row | None:
        return self._by_id.get(row_id)

    def position_of(self, row_id: str) -> int:
        """The row's position in the current order, or -1.  O(log n)."""
        row = self._by_id.get(row_id)
        return -1 if row is None else self._bisect(self._rows, row)

    def index_for(self, row_id: str, column: int = 0) -> QModelIndex:
        """The index of ``row_id`` in ``column``; invalid if the row is not here."""
        pos = self.position_of(row_id)
        return self.index(pos, column) if pos >= 0 else QModelIndex()

    def row_ids(self) -> list[str]:
        """Every row id, in display order."""
        return [r.id for r in self._rows]

    # ------------------------------------------------------------- writing

    def set_rows(self, rows: Iterable[Row]) -> None:
        """Show exactly ``rows`` (a queue, or search results), in the current sort order."""
        self.beginResetModel()
        self._by_id = {r.id: r for r in rows}
        self._canon = sorted(self._by_id.values(), key=canonical_key)
        self._resort_afresh()
        self.endResetModel()

    def refresh(self) -> None:
        """Recompute every cell and sort key (after reps or teams were renamed)."""
        with self._reordering():
            self._resort_afresh()
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, self._ncols - 1), _ALL_ROLES)

    def apply(self, delta: QueueDelta) -> None:
        """Apply one queue's changes from :meth:`ConsoleState.apply`, keeping the order.

        Tolerant of a delta that does not match what is shown: a change to
        an unknown row adds it, an addition of a known row changes it, and
        the removal of an unknown row is ignored.
        """
        by_id = self._by_id
        incoming = {**delta.changed, **delta.added}
        removed = [by_id[i] for i in delta.removed if i in by_id and i not in incoming]
        changed: list[tuple[Row, Row]] = []
        added: list[Row] = []
        for row in incoming.values():
            old = by_id.get(row.id)
            if old is None:
                added.append(row)
            elif old is not row:
                changed.append((old, row))
        if not (removed or changed or added):
            return
        if len(removed) + len(changed) + len(added) > PRECISE_LIMIT:
            self._apply_as_layout(removed, changed, added)
        else:
            self._apply_precisely(removed, changed, added)

    def tick(self, first: int = 0, last: int | None = None) -> None:
        """Repaint the time columns of rows ``first``..``last`` (inclusive; default: to the end).

        The view passes the rows it shows, so a tick costs the same at 100
        rows as at 100,000.  ``last < first`` does nothing.
        """
        n = len(self._rows)
        if last is None or last >= n:
            last = n - 1
        first = max(0, first)
        if first > last or not self._live_runs:
            return
        for a, b in self._live_runs:
            self.dataChanged.emit(self.index(first, a), self.index(last, b), _DISPLAY_ONLY)

    # ----------------------------------------------------------- internals

    @contextmanager
    def _reordering(self) -> Iterator[None]:
        """Announce the new ``_rows`` made inside as one vertical layout change; persistent indexes follow their rows."""
        # The signal's overload with the sort hint: the stubs cannot index signals.
        self.layoutAboutToBeChanged[_WITH_HINT].emit([], _VERTICAL_SORT)  # type: ignore[index]
        persistent = self.persistentIndexList()
        before = self._rows
        yield
        self._remap(persistent, before)
        self.layoutChanged[_WITH_HINT].emit([], _VERTICAL_SORT)  # type: ignore[index]

    def _expose(self, columns: Sequence[Column]) -> None:
        """Make ``columns`` the model's columns: the per-column lists ``data()`` reads by model column."""
        self.columns = tuple(columns)
        n = self._ncols = len(self.columns)
        self._display = [c.display for c in self.columns]
        self._live = [c.live for c in self.columns]
        self._tooltip = [c.tooltip for c in self.columns]
        self._align = [_ALIGNMENTS.get(c.align, _ALIGN_LEFT) for c in self.columns]
        self._time_left_col = column_index(self.columns, "time_left")
        self._priority_col = column_index(self.columns, "priority")
        self._customer_col = column_index(self.columns, "customer")
        # Contiguous runs of live columns: one dataChanged per run per tick.
        self._live_runs: list[tuple[int, int]] = []
        c = 0
        while c < n:
            if self._live[c]:
                start = c
                while c + 1 < n and self._live[c + 1]:
                    c += 1
                self._live_runs.append((start, c))
            c += 1
        # The cached texts are by model column: they are painted again as needed.
        self._cells = {}

    def _resort_afresh(self) -> None:
        """Drop every cached cell and sort key, and sort the canonical list again."""
        self._cells = {}
        self._caches = {}
        self._sk = self._sort_keys(self._sort)
        self._rows = self._sorted()

    def _sort_keys(self, column: Column) -> _SortKeys:
        """The sort key cache of ``column``, built if needed (LRU of a few columns)."""
        sk = self._caches.pop(column.key, None)
        if sk is None:
            sk = _SortKeys(column, self._canon)
        self._caches[column.key] = sk
        keep = max(_KEY_CACHE_MIN_COLUMNS, _KEY_CACHE_BUDGET // max(1, len(self._canon)))
        while len(self._caches) > keep:
            del self._caches[next(iter(self._caches))]
        return sk

    def _sorted(self) -> list[Row]:
        """Every row in display order, from the canonical list and the cached keys."""
        sk = self._sk
        empty = sk.empty
        canon = self._canon
        if not empty:
            return sorted(canon, key=sk.keys.__getitem__, reverse=self._desc)
        rows = list(filterfalse(empty.__contains__, canon))
        rows.sort(key=sk.keys.__getitem__, reverse=self._desc)
        rows += filter(empty.__contains__, canon)
        return rows

    def _order_subset(self, rows: list[Row]) -> list[Row]:
        """A few rows (already in the key caches) in display order."""
        rows = sorted(rows, key=canonical_key)
        sk = self._sk
        filled = [r for r in rows if r not in sk.empty]
        filled.sort(key=sk.keys.__getitem__, reverse=self._desc)
        if len(filled) < len(rows):
            filled += [r for r in rows if r in sk.empty]
        return filled

    def _bisect(self, rows: list[Row], row: Row, lo: int = 0) -> int:
        """The first position in ``rows`` (display order) whose row does not come before ``row``."""
        keys = self._sk.keys
        p = keys[row]
        s = row.session
        ck = (s.created_at, row.id)
        desc = self._desc
        hi = len(rows)
        while lo < hi:
            mid = (lo + hi) >> 1
            m = rows[mid]
            q = keys[m]
            if q is None:
                before = p is None and (m.session.created_at, m.id) < ck
            elif p is None:
                before = True
            elif q == p:
                before = (m.session.created_at, m.id) < ck
            elif desc:
                before = q > p
            else:
                before = q < p
            if before:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _insert_positions(self, rows: list[Row], ordered: list[Row]) -> list[int]:
        """Where each of ``ordered`` (in display order, not in ``rows``) goes in ``rows``: non-decreasing."""
        positions = []
        lo = 0
        for row in ordered:
            lo = self._bisect(rows, row, lo)
            positions.append(lo)
        return positions

    def _precedes(self, a: Row, b: Row) -> bool:
        keys = self._sk.keys
        p = keys[a]
        q = keys[b]
        if p is None:
            return q is None and canonical_key(a) < canonical_key(b)
        if q is None:
            return True
        if p == q:
            return canonical_key(a) < canonical_key(b)
        return p > q if self._desc else p < q

    def _remap(self, persistent: list[QModelIndex], before: list[Row]) -> None:
        """Point the persistent indexes taken on ``before`` at the same rows in the new order."""
        if not persistent:
            return
        targets: list[QModelIndex] = []
        by_id = self._by_id
        for index in persistent:
            r = index.row()
            row = by_id.get(before[r].id) if 0 <= r < len(before) else None
            targets.append(QModelIndex() if row is None else self.index(self._bisect(self._rows, row), index.column()))
        self.changePersistentIndexList(persistent, targets)

    def _forget(self, row: Row) -> None:
        self._cells.pop(row, None)
        for sk in self._caches.values():
            sk.discard(row)

    def _learn(self, row: Row) -> None:
        self._by_id[row.id] = row
        for sk in self._caches.values():
            sk.add(row)

    def _canon_remove(self, rows: list[Row]) -> None:
        canon = self._canon
        if len(rows) > 16:
            drop = set(rows)
            self._canon = list(filterfalse(drop.__contains__, canon))
            return
        for row in rows:
            i = bisect_left(canon, canonical_key(row), key=canonical_key)
            if i < len(canon) and canon[i] is row:
                del canon[i]
            else:  # not where its key says: fall back to a scan
                canon.remove(row)

    def _canon_add(self, rows: list[Row]) -> None:
        if not rows:
            return
        rows = sorted(rows, key=canonical_key)
        canon = self._canon
        if not canon or canonical_key(canon[-1]) < canonical_key(rows[0]):
            canon += rows  # the usual case: new arrivals are the newest
            return
        positions = [bisect_left(canon, canonical_key(r), key=canonical_key) for r in rows]
        self._canon = _merge(canon, rows, positions)

    def _canon_replace(self, old: Row, new: Row) -> None:
        canon = self._canon
        if canonical_key(old) == canonical_key(new):
            i = bisect_left(canon, canonical_key(old), key=canonical_key)
            if i < len(canon) and canon[i] is old:
                canon[i] = new
                return
        self._canon_remove([old])
        self._canon_add([new])

    def _apply_precisely(self, removed: list[Row], changed: list[tuple[Row, Row]], added: list[Row]) -> None:
        rows = self._rows
        if removed:
            positions = sorted((self._bisect(rows, r) for r in removed), reverse=True)
            # Contiguous runs, bottom-up so the positions above stay valid.
            i = 0
            while i < len(positions):
                hi = lo = positions[i]
                i += 1
                while i < len(positions) and positions[i] == lo - 1:
                    lo -= 1
                    i += 1
                self.beginRemoveRows(_ROOT, lo, hi)
                del rows[lo : hi + 1]
                self.endRemoveRows()
            for row in removed:
                del self._by_id[row.id]
                self._forget(row)
            self._canon_remove(removed)
        last_col = self._ncols - 1
        for old, new in changed:
            pos = self._bisect(rows, old)
            self._forget(old)
            self._learn(new)
            self._canon_replace(old, new)
            rows[pos] = new
            if (pos == 0 or self._precedes(rows[pos - 1], new)) and (pos == len(rows) - 1 or self._precedes(new, rows[pos + 1])):
                self.dataChanged.emit(self.index(pos, 0), self.index(pos, last_col), _ALL_ROLES)
                continue
            del rows[pos]
            target = self._bisect(rows, new)
            rows.insert(pos, new)
            self.beginMoveRows(_ROOT, pos, pos, _ROOT, target if target < pos else target + 1)
            del rows[pos]
            rows.insert(target, new)
            self.endMoveRows()
            self.dataChanged.emit(self.index(target, 0), self.index(target, last_col), _ALL_ROLES)
        if added:
            for row in added:
                self._learn(row)
            self._canon_add(added)
            ordered = self._order_subset(added)
            positions = self._insert_positions(rows, ordered)
            # Insert runs that share a position together, bottom-up so the
            # positions above stay valid.
            end = len(ordered)
            while end > 0:
                start = end - 1
                pos = positions[start]
                while start > 0 and positions[start - 1] == pos:
                    start -= 1
                self.beginInsertRows(_ROOT, pos, pos + end - start - 1)
                rows[pos:pos] = ordered[start:end]
                self.endInsertRows()
                end = start

    def _apply_as_layout(self, removed: list[Row], changed: list[tuple[Row, Row]], added: list[Row]) -> None:
        with self._reordering():
            drop = set(removed)
            drop.update(old for old, _ in changed)
            base = list(filterfalse(drop.__contains__, self._rows))
            for row in removed:
                del self._by_id[row.id]
                self._forget(row)
            self._canon_remove(removed)
            incoming = added + [new for _, new in changed]
            for old, new in changed:
                self._forget(old)
                self._canon_replace(old, new)
            for row in incoming:
                self._learn(row)
            self._canon_add(added)
            ordered = self._order_subset(incoming)
            self._rows = _merge(base, ordered, self._insert_positions(base, ordered))
