"""Which columns a queue table shows, in what order and how wide: per column key, as data.

The table does not hide columns in its header: the model exposes only the
columns shown, in the order shown (Qt's table accessibility reads the
model, so a hidden column would still be read out).  This class is the
rep's arrangement the model's columns are made from, and what settings
store (:meth:`ColumnLayout.saved`)::

    {"columns": [{"key": "customer", "visible": true, "width": 210}, ...],   # the rep's order
     "sort": {"key": "waited", "order": "desc"}}

The order covers every column, shown or not: a hidden column keeps its
place, and comes back there when shown again.  A column can also be shown
*for now* at a given position (the Queue column over search results): it
is never saved as shown, and its place in the order does not change.

No Qt here: the arrangement and the reading of saved layouts, however old
or damaged, are tested without a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from repconsole.ui.columns import Column

__all__ = ["MAX_COLUMN_WIDTH", "MIN_COLUMN_WIDTH", "ColumnLayout"]

MIN_COLUMN_WIDTH = 32
MAX_COLUMN_WIDTH = 2000


class ColumnLayout:
    """The rep's arrangement of ``columns``: order, visibility and width per key, and columns shown for now.

    Attributes:
        order: every column key, in the rep's order (hidden ones keep their place).
        visible: whether the rep shows each column.
        widths: the width the rep gave each column.
        for_now: columns shown for now, by the position they are shown at.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = {c.key: c for c in columns}
        self.order = [c.key for c in columns]
        self.visible = {c.key: c.default_visible for c in columns}
        self.widths = {c.key: c.default_width for c in columns}
        self.for_now: dict[str, int] = {}

    @classmethod
    def from_saved(cls, columns: Sequence[Column], layout: object) -> ColumnLayout:
        """The arrangement ``layout`` (from :meth:`saved`) describes, however old or damaged.

        Unknown keys and malformed entries are ignored; columns it does not
        mention keep their defaults and come after the ones it orders.  If
        it would hide every column, the default visibility is used.
        """
        self = cls(columns)
        entries = layout.get("columns") if isinstance(layout, Mapping) else None
        order: list[str] = []
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, Mapping):
                continue
            key = entry.get("key")
            if not isinstance(key, str) or key not in self.columns or key in order:
                continue
            order.append(key)
            shown = entry.get("visible")
            if isinstance(shown, bool):
                self.visible[key] = shown
            width = entry.get("width")
            if isinstance(width, int) and not isinstance(width, bool) and width > 0:
                self.widths[key] = min(max(width, MIN_COLUMN_WIDTH), MAX_COLUMN_WIDTH)
        self.order = order + [key for key in self.order if key not in order]
        if not any(self.visible.values()):
            self.visible = {key: c.default_visible for key, c in self.columns.items()}
        return self

    def saved(self) -> list[dict[str, Any]]:
        """Every column in the rep's order, as settings store it (columns shown for now are saved as they were)."""
        return [{"key": key, "visible": self.visible[key], "width": self.widths[key]} for key in self.order]

    def shown(self) -> list[str]:
        """The keys of the columns shown, in the order shown."""
        keys = [key for key in self.order if self.visible[key] and key not in self.for_now]
        for key, at in sorted(self.for_now.items(), key=lambda item: item[1]):
            keys.insert(min(at, len(keys)), key)
        return keys

    def arrange(self, shown: Sequence[str]) -> None:
        """The rep put the shown columns in the order ``shown`` (a permutation of :meth:`shown`).

        The rep's columns take the places the shown ones had in the order, so
        hidden columns stay where they were; a column shown for now keeps its
        new position until it goes.
        """
        for key in self.for_now:
            if key in shown:
                self.for_now[key] = list(shown).index(key)
        moved = iter([key for key in shown if key not in self.for_now])
        self.order = [next(moved) if self.visible[key] and key not in self.for_now else key for key in self.order]

    def set_visible(self, key: str, visible: bool) -> bool:
        """Show or hide column ``key`` for good; False if there is no such column or it is the last one shown."""
        if key not in self.columns:
            return False
        shown = self.shown()
        if not visible and shown == [key]:
            return False
        if key in self.for_now:
            del self.for_now[key]
            self.visible[key] = visible
            if visible:
                self.arrange(shown)  # kept for good where it is shown now
            return True
        self.visible[key] = visible
        return True

    def show_for_now(self, key: str, shown: bool, at: int) -> bool:
        """Show column ``key`` at position ``at`` until called with ``shown=False``; False if nothing changes."""
        if key not in self.columns:
            return False
        if shown and key not in self.shown():
            self.for_now[key] = at
            return True
        if not shown and key in self.for_now:
            del self.for_now[key]
            return True
        return False
