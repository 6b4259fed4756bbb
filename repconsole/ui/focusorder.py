"""Keyboard and labels: the Tab order set out once, and captions linked to their controls.

Qt's default chain follows creation order, which put the Session Key
button before the queue table a rep works in.  The order here follows how
a rep works a queue: pick the queue, search, go through the table, act on
the selected entry, then the rarer actions, the details pane, the status
and the tabs.  Session tabs set their own order (:mod:`~repconsole.ui.sessiontab`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from PySide6.QtWidgets import QLabel, QWidget

__all__ = ["chain", "labelled"]


def chain(widgets: Sequence[QWidget]) -> None:
    """Make Tab go through ``widgets`` in this order (Shift+Tab backwards)."""
    for first, second in pairwise(widgets):
        QWidget.setTabOrder(first, second)


def labelled(text: str, control: QWidget) -> QLabel:
    """A caption for ``control``, linked to it (AT-SPI's labelled-by: a screen reader reads it with the control).

    On Linux Qt names a combo box by its current value; the caption is what
    says what the value is ("Your status: Available").
    """
    label = QLabel(text)
    label.setBuddy(control)
    return label
