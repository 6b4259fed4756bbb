"""Widgets whose parts Qt's stock accessibility misreports, fixed at the widget.

Qt builds a widget's accessibility object from its class; a Python
interface factory would replace that, but one crashes QtWebEngine, so the
fixes here change the widgets themselves and leave Qt's interfaces alone:

* A splitter handle is Qt's ``Grip``, which AT-SPI calls "unknown", on a
  mouse-only part no screen reader can use.  :class:`Splitter` gives its
  handles the object name Qt gives the resize separators of a
  ``QMainWindow``, the same kind of part, which Qt's accessibility leaves
  out of the tree for that reason.  Dragging them works as before.
* A scroll area's viewport has the area as its focus proxy, and a widget
  whose proxy has the focus reports it has the focus: a focused text box
  reported its inside ("filler") as focused beside itself.
  :func:`quiet_viewport` drops the proxy; a click in the viewport still
  focuses the area, which is the first widget up from it that takes
  focus by click.
* A tab widget has its tab bar as focus proxy: with the bar focused, the
  whole tab widget reported the focus too.  :class:`TabWidget` drops the
  proxy and takes no focus itself; Tab reaches the bar as before.
* An item view's current item reports the focus whether or not the view
  has it: with the rep in the search field, the current queue and the
  table's current row claimed the focus too.  :class:`CurrentWhileFocused`
  keeps a view's current index only while the view has the focus.

Not fixed here: Qt marks the current page tab of every tab bar focused
(``QAccessibleTabButton::state``), and no widget setting changes that.
Only a replacement interface for the tab bar could, made of Python objects
that Qt's accessibility cache owns and deletes, at exit too: the trouble a
factory has.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QAbstractScrollArea, QSplitter, QTabWidget, QWidget

__all__ = ["HIDDEN_PART", "CurrentWhileFocused", "Splitter", "TabWidget", "quiet_viewport"]

_NO_UPDATE = QItemSelectionModel.SelectionFlag.NoUpdate

HIDDEN_PART = "qt_qmainwindow_extended_splitter"
"""The object name Qt's accessibility skips as an implementation detail (``_q_ac_childWidgets``)."""


class Splitter(QSplitter):
    """A ``QSplitter`` whose handles (mouse-only) are not in the accessibility tree."""

    def addWidget(self, widget: QWidget) -> None:
        super().addWidget(widget)
        self._hide_handles()

    def insertWidget(self, index: int, widget: QWidget) -> None:
        super().insertWidget(index, widget)
        self._hide_handles()

    def _hide_handles(self) -> None:
        # After Qt names a new handle ("qt_splithandle_...", once createHandle has returned).
        for i in range(self.count()):
            self.handle(i).setObjectName(HIDDEN_PART)


class TabWidget(QTabWidget):
    """A ``QTabWidget`` that does not report its tab bar's focus as its own."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusProxy(None)  # type: ignore[arg-type]  # None clears it; the stubs miss that
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)


def quiet_viewport(area: QAbstractScrollArea) -> None:
    """Make ``area``'s viewport stop reporting the focus its area has."""
    area.viewport().setFocusProxy(None)  # type: ignore[arg-type]  # None clears it; the stubs miss that


class CurrentWhileFocused(QObject):
    """Gives an item view a current index only while it has the focus.

    When the view loses the focus (or is given a current index while it
    has not), the current index is kept aside, as a persistent index that
    follows its row, and given back when the focus comes in, before the
    view handles that: keys move on from where the rep was.  The selection
    is untouched, so the views read what is selected from their selection,
    never from their current index.  Call :meth:`follow` with the view's
    selection model, again after each ``setModel``.
    """

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        self._view = view
        self._kept = QPersistentModelIndex()
        self._selection: QItemSelectionModel | None = None
        view.installEventFilter(self)

    def follow(self, selection: QItemSelectionModel) -> None:
        if self._selection is not None:
            self._selection.currentChanged.disconnect(self._on_selection_currentChanged)
        self._selection = selection
        self._kept = QPersistentModelIndex()
        selection.currentChanged.connect(self._on_selection_currentChanged)
        self._set_aside()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._view and self._selection is not None:
            if event.type() == QEvent.Type.FocusIn and self._kept.isValid():
                kept, self._kept = self._kept, QPersistentModelIndex()
                self._selection.setCurrentIndex(kept, _NO_UPDATE)
            elif event.type() == QEvent.Type.FocusOut:
                self._set_aside()
        return False

    def _on_selection_currentChanged(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid() and not self._view.hasFocus():
            self._set_aside()

    def _set_aside(self) -> None:
        selection = self._selection
        if selection is None or self._view.hasFocus() or not selection.currentIndex().isValid():
            return
        self._kept = QPersistentModelIndex(selection.currentIndex())
        selection.setCurrentIndex(QModelIndex(), _NO_UPDATE)
