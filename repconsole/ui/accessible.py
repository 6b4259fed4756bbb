"""Widgets whose parts Qt's stock accessibility misreports, fixed at the widget.

Qt builds a widget's accessibility object from its class; a Python
interface factory would replace that, but one crashes QtWebEngine, so the
fixes here change the widgets themselves and leave Qt's interfaces alone:

* A splitter handle is Qt's ``Grip``, which AT-SPI calls "unknown", on a
  mouse-only part no screen reader can use.  :class:`Splitter` gives its
  handles the object name Qt gives the resize separators of a
  ``QMainWindow``, the same kind of part, which Qt's accessibility leaves
  out of the tree for that reason.  Dragging them works as before.
"""

from __future__ import annotations

from PySide6.QtWidgets import QSplitter, QWidget

__all__ = ["HIDDEN_PART", "Splitter"]

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
